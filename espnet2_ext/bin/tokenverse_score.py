"""Score TokenVerse++ hypotheses: WER, SCD/ENDP/NER F1, LID accuracy and inactive-task tokens (ITT).

    python -m espnet2_ext.bin.tokenverse_score --ref data/test/text --hyp exp/.../1best_recog/text \
        --task_activation asr,scd,endp,ner,lid --out_json exp/.../score.json [--utt2lang data/test/utt2lang]

Prints a table and writes JSON (metric values, per-language breakdown, raw counts). When the data dir has reference
turn times (``utt2turns`` next to ``--ref``) and the decode dir has ``1best_recog/events.jsonl``, the JSON also gets
a ``time`` section (``scoring/time_metrics.py``): SCD precision/recall/F1 at each ``--collars`` value, segment
purity/coverage (pyannote.metrics), endpoint latency EP50/EP90, early-cutoff and missed-endpoint rates, and with
``--ref_ctm`` the median word start error. With ``--train_text`` (the training references) the NER recall is split
into entities seen / unseen in training, with the count of wrong spans (``ner_by_seen``). With ``--utt2biasing``
(the lists the decode was biased with) the JSON gets a ``biasing`` section (``scoring/biasing_metrics.py``): U-WER,
B-WER (Le et al. 2021), false alarms and list-phrase recall.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.common import DataError, atomic_write_text, comma_list
from espnet2_ext.reporting.markdown import added_f1_columns, fmt, md_table
from espnet2_ext.scoring.metrics import METRIC_KEYS, read_text, read_utt2lang, score_corpus, unknown_tags
from espnet2_ext.task_spec import DEFAULT_LANGUAGES, TaskSpec


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", required=True, help="reference Kaldi text (with task tokens)")
    p.add_argument(
        "--hyp",
        required=True,
        help="hypothesis Kaldi text, e.g. ESPnet's 1best_recog/text (a decode dir holding it also works)",
    )
    p.add_argument("--task_activation", required=True, help="tasks active at inference, comma-separated")
    p.add_argument("--utt2lang", default=None, help="'<utt-id> <lang>' per line for the per-language breakdown")
    p.add_argument("--languages", default=",".join(DEFAULT_LANGUAGES), help="languages of the LID task tokens")
    p.add_argument(
        "--extra_tasks",
        action="append",
        default=[],
        metavar="NAME=TOKEN",
        help="a task added to the model (extend_model --add_task), e.g. 'qst=[Q]': scored by aligned tag "
        "matching like scd/endp (F1 as <name>_f1)",
    )
    p.add_argument(
        "--train_text",
        default=None,
        help="the training references (Kaldi text): NER recall is also split into entities whose words "
        "all occur there (seen) and the others (unseen), with the wrong spans (JSON 'ner_by_seen')",
    )
    p.add_argument(
        "--utt2biasing",
        default=None,
        help="the biasing lists of the decode (utt2biasing, text/biasing_list.py's format; recording ids "
        "through segments/orig_segments next to --ref or segments next to it): adds U-WER, B-WER, false alarms "
        "and list phrase recall (JSON 'biasing')",
    )
    p.add_argument("--out_json", required=True)
    p.add_argument("--model", default=None, help="model name stored in the JSON (for tokenverse_report)")
    p.add_argument("--test_set", default=None, help="test set name stored in the JSON (for tokenverse_report)")
    g = p.add_argument_group("time-based scoring")
    g.add_argument("--ref_turns", default=None, help="reference turn times (default: utt2turns next to --ref, if any)")
    g.add_argument(
        "--hyp_events", default=None, help="hypothesis times (default: events.jsonl next to the hypothesis text)"
    )
    g.add_argument(
        "--utt2tasks",
        default=None,
        help="which utterances are annotated for scd/endp (default: "
        "utt2tasks next to --ref; without it, those whose reference has the task's tokens)",
    )
    g.add_argument("--collars", default="0.25,0.5", help="SCD collars in seconds, comma-separated")
    g.add_argument(
        "--ref_ctm",
        default=None,
        help="reference word times (CTM, same file ids as the hypothesis ctm) for the word start error",
    )
    return p


def score_time_section(args, ref, hyp_path: Path, spec: TaskSpec, active) -> Optional[Dict[str, object]]:
    """The ``time`` section, or None when there are no reference times or no hypothesis times."""
    from espnet2_ext.scoring.time_metrics import read_ctm, read_utt2turns, score_times
    from espnet2_ext.text.time_outputs import EVENTS_NAME, read_events

    turns_path = Path(args.ref_turns) if args.ref_turns else Path(args.ref).parent / "utt2turns"
    events_path = Path(args.hyp_events) if args.hyp_events else hyp_path.parent / EVENTS_NAME
    if not turns_path.is_file():
        if args.ref_turns:
            raise DataError(f"{turns_path}: no such file (--ref_turns)")
        return None
    if not events_path.is_file():
        if args.hyp_events:
            raise DataError(f"{events_path}: no such file (--hyp_events)")
        print(
            f"warning: {turns_path} has reference times but {events_path} is missing: no time-based scores "
            f"(decode again with espnet2_ext.bin.asr_inference)",
            file=sys.stderr,
        )
        return None
    try:
        collars = [float(c) for c in comma_list(args.collars)]
    except ValueError:
        raise ValueError(f"--collars '{args.collars}': give seconds, e.g. 0.25,0.5") from None
    turns, events = read_utt2turns(turns_path), read_events(events_path)
    tasks_path = Path(args.utt2tasks) if args.utt2tasks else Path(args.ref).parent / "utt2tasks"
    if tasks_path.is_file():
        from espnet2_ext.data.utt2tasks import read_utt2tasks

        annotated = read_utt2tasks(tasks_path, spec, utt_ids=list(ref))
        has = lambda utt, task: task in annotated.get(utt, ())  # noqa: E731
    else:
        has = lambda utt, task: any(spec.task_of(w) == task for w in ref[utt])  # noqa: E731
    chosen = {
        task: [u for u in ref if u in turns and has(u, task)] if task in active else [] for task in ("scd", "endp")
    }
    ref_ctm = read_ctm(args.ref_ctm) if args.ref_ctm else None
    section = score_times(turns, events, chosen["scd"], chosen["endp"], collars, ref_ctm, hyp_name=str(events_path))
    section["ref_turns"], section["hyp_events"] = str(turns_path), str(events_path)
    return section


def score_biasing_section(utt2biasing: str, ref, hyp, ref_dir: Path, spec: TaskSpec) -> Dict[str, object]:
    """The ``biasing`` section: each utterance's list (its own line plus its recording's, recordings from the
    ``segments`` or ``orig_segments`` beside the reference, else a ``segments`` beside utt2biasing) scored by
    ``biasing_metrics.score_biasing``."""
    from espnet2_ext.data.kaldi_dir import read_table
    from espnet2_ext.scoring.biasing_metrics import score_biasing
    from espnet2_ext.text.biasing_list import lists_per_utterance, read_utt2biasing

    utt2rec: Dict[str, str] = {}
    # the data dir's recordings; asr_inference also takes a segments file beside utt2biasing
    for path in (ref_dir / "segments", ref_dir / "orig_segments", Path(utt2biasing).parent / "segments"):
        if path.is_file():
            utt2rec = {k: v.split()[0] for k, v in read_table(path, strict=False).values.items() if v.split()}
            break
    lists = lists_per_utterance(read_utt2biasing(utt2biasing), list(ref), utt2rec, source=utt2biasing)
    section = score_biasing(ref, hyp, lists, spec.is_task_token)
    section["utt2biasing"] = str(utt2biasing)
    return section


def resolve_hyp(path: Path) -> Path:
    """A decode dir is accepted for convenience: its 1best_recog/text is used."""
    if path.is_dir():
        for cand in (path / "1best_recog" / "text", path / "text"):
            if cand.is_file():
                return cand
        raise DataError(f"{path}: directory without 1best_recog/text; give the hypothesis text file")
    return path


def format_result(result: Dict[str, object]) -> str:
    extra = added_f1_columns([result])  # added tasks, e.g. qst_f1
    keys = list(METRIC_KEYS[:-1]) + [k for k, _ in extra] + [METRIC_KEYS[-1]]
    names = ["WER", "SCD F1", "ENDP F1", "NER F1", "LID acc"] + [name for _, name in extra] + ["ITT"]
    rows = [["all"] + [fmt(result[k]) for k in keys]]
    per_lang = result["per_language"]
    rows += [[lang] + [fmt(vals[k]) for k in keys] for lang, vals in per_lang.items()]  # type: ignore
    return md_table(["Language"] + names, rows)


def run(argv: Optional[Sequence[str]] = None) -> Dict[str, object]:
    args = get_parser().parse_args(argv)
    languages = comma_list(args.languages)
    if not languages:
        raise ValueError("--languages is empty; give e.g. en,de,es,fr")
    spec = TaskSpec.default(languages)
    if args.extra_tasks:
        from espnet2_ext.asr.extend import grow_spec, parse_task_arg

        spec = grow_spec(spec, dict(parse_task_arg(v) for v in args.extra_tasks), [])
    active = spec.parse_tasks(comma_list(args.task_activation), where="--task_activation")
    if not active:
        raise ValueError("--task_activation is empty; give e.g. asr,scd,endp,ner,lid")
    hyp_path = resolve_hyp(Path(args.hyp))
    ref, hyp = read_text(args.ref), read_text(hyp_path)
    utt2lang = read_utt2lang(args.utt2lang) if args.utt2lang else None
    for name, texts in (("reference", ref), ("hypothesis", hyp)):
        unknown = unknown_tags(texts, spec)
        if unknown:
            listed = ", ".join(f"{t} x{n}" for t, n in sorted(unknown.items()))
            print(
                f"warning: {name} has tags unknown to the task spec, scored as words: {listed} "
                f"(set --languages if these are language tokens)",
                file=sys.stderr,
            )
    result = score_corpus(
        ref,
        hyp,
        spec,
        active,
        utt2lang,
        ref_name=str(args.ref),
        hyp_name=str(hyp_path),
        utt2lang_name=str(args.utt2lang),
    )
    if args.train_text is not None:
        from espnet2_ext.scoring.metrics import entities_by_seen

        known = {w for words in read_text(args.train_text).values() for w in words if not spec.is_task_token(w)}
        result["ner_by_seen"] = entities_by_seen(ref, hyp, known)
    if args.utt2biasing is not None:
        result["biasing"] = score_biasing_section(args.utt2biasing, ref, hyp, Path(args.ref).parent, spec)
    time_section = score_time_section(args, ref, hyp_path, spec, active)
    if time_section is not None:
        result["time"] = time_section
    if args.model:
        result["model"] = args.model
    if args.test_set:
        result["test_set"] = args.test_set
    atomic_write_text(args.out_json, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    head = " ".join(x for x in (args.model, args.test_set) if x)
    print(f"{head + ': ' if head else ''}tasks {'+'.join(active)}, {result['counts']['n_utts']} utterances")
    print(format_result(result))
    if "time" in result:
        from espnet2_ext.scoring.time_metrics import TIME_COLUMNS, flat_time_scores

        flat = flat_time_scores(result["time"])  # type: ignore[arg-type]
        print(md_table([name for _, name in TIME_COLUMNS], [[fmt(flat[k]) for k, _ in TIME_COLUMNS]]))
    if "ner_by_seen" in result:
        b = result["ner_by_seen"]
        print(
            f"entities found exactly: seen in train {b['seen_found']}/{b['seen']}, unseen {b['unseen_found']}/"
            f"{b['unseen']}; wrong spans {b['wrong_spans']}"
        )
    if "biasing" in result:
        b = result["biasing"]
        print(
            f"biasing lists ({b['counts']['utts_with_list']} utterances, mean {fmt(b['mean_list_size'])} "
            f"phrases): U-WER {fmt(b['u_wer'])}, B-WER {fmt(b['b_wer'])}, phrase recall {fmt(b['phrase_recall'])}, "
            f"false alarms {b['counts']['false_alarms']} ({fmt(b['fa_rate'])} % of emitted list phrases)"
        )
    return result


main = cli_main(run, prog="tokenverse_score: error", errors=(ValueError,))  # DataError is a ValueError

if __name__ == "__main__":
    sys.exit(main())
