"""Score TokenVerse++ hypotheses: WER, SCD/ENDP/NER F1, LID accuracy and inactive-task tokens (ITT).

    python -m espnet2_ext.bin.tokenverse_score --ref data/test/text --hyp exp/.../1best_recog/text \
        --task_activation asr,scd,endp,ner,lid --out_json exp/.../score.json [--utt2lang data/test/utt2lang]

Prints a table and writes JSON (metric values, per-language breakdown, raw counts).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

from espnet2_ext.data.utt2tasks import DataError
from espnet2_ext.scoring.metrics import METRIC_KEYS, read_text, read_utt2lang, score_corpus, unknown_tags
from espnet2_ext.scoring.report import atomic_write_text, fmt, md_table
from espnet2_ext.task_spec import DEFAULT_LANGUAGES, TaskSpec


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", required=True, help="reference Kaldi text (with task tokens)")
    p.add_argument("--hyp", required=True,
                   help="hypothesis Kaldi text, e.g. ESPnet's 1best_recog/text (a decode dir holding it also works)")
    p.add_argument("--task_activation", required=True, help="tasks active at inference, comma-separated")
    p.add_argument("--utt2lang", default=None, help="'<utt-id> <lang>' per line for the per-language breakdown")
    p.add_argument("--languages", default=",".join(DEFAULT_LANGUAGES), help="languages of the LID task tokens")
    p.add_argument("--out_json", required=True)
    p.add_argument("--model", default=None, help="model name stored in the JSON (for tokenverse_report)")
    p.add_argument("--test_set", default=None, help="test set name stored in the JSON (for tokenverse_report)")
    return p


def resolve_hyp(path: Path) -> Path:
    """A decode dir is accepted for convenience: its 1best_recog/text is used."""
    if path.is_dir():
        for cand in (path / "1best_recog" / "text", path / "text"):
            if cand.is_file():
                return cand
        raise DataError(f"{path}: directory without 1best_recog/text; give the hypothesis text file")
    return path


def format_result(result: Dict[str, object]) -> str:
    names = ["WER", "SCD F1", "ENDP F1", "NER F1", "LID acc", "ITT"]
    rows = [["all"] + [fmt(result[k]) for k in METRIC_KEYS]]
    per_lang = result["per_language"]
    rows += [[lang] + [fmt(vals[k]) for k in METRIC_KEYS] for lang, vals in per_lang.items()]  # type: ignore
    return md_table(["Language"] + names, rows)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, object]:
    args = get_parser().parse_args(argv)
    languages = [x.strip() for x in args.languages.split(",") if x.strip()]
    if not languages:
        raise ValueError("--languages is empty; give e.g. en,de,es,fr")
    spec = TaskSpec.default(languages)
    active = spec.parse_tasks(args.task_activation.split(","), where="--task_activation")
    if not active:
        raise ValueError("--task_activation is empty; give e.g. asr,scd,endp,ner,lid")
    hyp_path = resolve_hyp(Path(args.hyp))
    ref, hyp = read_text(args.ref), read_text(hyp_path)
    utt2lang = read_utt2lang(args.utt2lang) if args.utt2lang else None
    for name, texts in (("reference", ref), ("hypothesis", hyp)):
        unknown = unknown_tags(texts, spec)
        if unknown:
            listed = ", ".join(f"{t} x{n}" for t, n in sorted(unknown.items()))
            print(f"warning: {name} has tags unknown to the task spec, scored as words: {listed} "
                  f"(set --languages if these are language tokens)", file=sys.stderr)
    result = score_corpus(ref, hyp, spec, active, utt2lang, ref_name=str(args.ref), hyp_name=str(hyp_path),
                          utt2lang_name=str(args.utt2lang))
    if args.model:
        result["model"] = args.model
    if args.test_set:
        result["test_set"] = args.test_set
    atomic_write_text(args.out_json, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    head = " ".join(x for x in (args.model, args.test_set) if x)
    print(f"{head + ': ' if head else ''}tasks {'+'.join(active)}, {result['counts']['n_utts']} utterances")
    print(format_result(result))
    return result


if __name__ == "__main__":
    try:
        main()
    except (DataError, ValueError) as e:
        sys.exit(f"tokenverse_score: error: {e}")
