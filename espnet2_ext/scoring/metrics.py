"""TokenVerse++ evaluation metrics from Kaldi-style text (``<utt-id> word word [TAG] ...``).

* WER: task tokens removed from both sides, corpus WER (S+D+I over reference words) via jiwer.
* SCD / ENDP F1: tags matched through a minimum edit-distance alignment of the full token sequences.
* NER F1: exact match of entity strings (multisets per utterance).
* LID accuracy: first language token of the hypothesis vs. the reference's language token.
* ITT: hypothesis tokens of tasks that were not active at inference.

All metrics are percentages except ITT (a count). A metric is None unless its task was active at inference
and the reference carries its tokens.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

import jiwer

from espnet2_ext.common import DataError
from espnet2_ext.task_spec import PRIMARY_TASK, TaskSpec
from espnet2_ext.text.strip_tasks import entities
from espnet2_ext.utils.text_io import utf8_errors

METRIC_KEYS = ("wer", "scd_f1", "endp_f1", "ner_f1", "lid_acc", "itt")
BOUNDARY_TASKS = ("scd", "endp")  # scored by aligned tag matching (and any other one-token task, e.g. qst)
PathLike = Union[str, Path]


# ---- reading -------------------------------------------------------------------------------------------
def read_text(path: PathLike) -> Dict[str, List[str]]:
    """Kaldi ``text``: utt-id -> tokens (an id alone on its line is an empty transcript)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; give a Kaldi-style text file ('<utt-id> words ...' per line)")
    out: Dict[str, List[str]] = {}
    with path.open(encoding="utf-8") as f, utf8_errors(path):
        for lineno, line in enumerate(f, 1):
            toks = line.split()
            if not toks:
                continue
            if toks[0] in out:
                raise DataError(f"{path}:{lineno}: duplicate utterance id {toks[0]}; keep one line per utterance")
            out[toks[0]] = toks[1:]
    return out


def read_utt2lang(path: PathLike) -> Dict[str, str]:
    """``<utt-id> <lang>`` per line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; write one line '<utt-id> <lang>' per utterance")
    out: Dict[str, str] = {}
    with path.open(encoding="utf-8") as f, utf8_errors(path):
        for lineno, line in enumerate(f, 1):
            toks = line.split()
            if not toks:
                continue
            if len(toks) != 2:
                raise DataError(f"{path}:{lineno}: expected '<utt-id> <lang>', got {line.strip()!r}")
            if toks[0] in out:
                raise DataError(f"{path}:{lineno}: duplicate utterance id {toks[0]}; keep one line per utterance")
            out[toks[0]] = toks[1]
    return out


def _id_list(ids: Iterable[str], shown: int = 5) -> str:
    ids = sorted(ids)
    more = f" ... ({len(ids)} in total)" if len(ids) > shown else f" ({len(ids)} in total)"
    return ", ".join(ids[:shown]) + more


def check_same_utts(
    ref: Mapping[str, object], hyp: Mapping[str, object], ref_name: str = "reference", hyp_name: str = "hypothesis"
) -> None:
    """Both files must hold the same utterances; the error names the ids present in one file only."""
    only_ref = set(ref) - set(hyp)
    only_hyp = set(hyp) - set(ref)
    problems = []
    if only_ref:
        problems.append(f"in {ref_name} but missing from {hyp_name}: {_id_list(only_ref)}")
    if only_hyp:
        problems.append(f"in {hyp_name} but missing from {ref_name}: {_id_list(only_hyp)}")
    if problems:
        raise DataError(
            "utterance ids differ; "
            + "; ".join(problems)
            + ". Score the same set of utterances (decode all of them or subset the reference)"
        )


def unknown_tags(texts: Mapping[str, Sequence[str]], spec: TaskSpec) -> Counter:
    """Bracketed tokens the spec does not know (e.g. a language missing from ``--languages``)."""
    return Counter(w for toks in texts.values() for w in toks if spec.looks_like_tag(w) and not spec.is_task_token(w))


# ---- alignment -----------------------------------------------------------------------------------------
def align_matches(ref: Sequence[str], hyp: Sequence[str], is_tag: Callable[[str], bool]) -> List[Tuple[int, int]]:
    """Matched ``(ref_idx, hyp_idx)`` pairs of a minimum edit-distance alignment.

    Ties among minimum-cost alignments go to the most matched words, then the most matched task tokens, tag
    type by tag type in one fixed (sorted) order, so that the matches per type do not depend on which side is
    the reference: the cost (edits, -words, -tags of each type) is packed into one integer whose digits in base
    ``big`` are those counts (all below ``big``), so one edit outweighs any number of matches, one word any
    number of tags, and one tag of a type any number of tags of the types after it.
    """
    n, m = len(ref), len(hyp)
    big = n + m + 1
    weight = {t: big**k for k, t in enumerate(sorted({t for t in (*ref, *hyp) if is_tag(t)}, reverse=True))}
    word = big ** len(weight)
    unit = word * big
    back = [bytearray(m + 1) for _ in range(n + 1)]  # 0 diagonal, 1 deletion (ref only), 2 insertion (hyp only)
    prev = [j * unit for j in range(m + 1)]
    for j in range(1, m + 1):
        back[0][j] = 2
    for i in range(1, n + 1):
        r = ref[i - 1]
        bonus = weight[r] if r in weight else word
        cur = [i * unit] + [0] * m
        row = back[i]
        row[0] = 1
        for j in range(1, m + 1):
            best = prev[j - 1] - bonus if hyp[j - 1] == r else prev[j - 1] + unit
            step = 0
            if prev[j] + unit < best:
                best, step = prev[j] + unit, 1
            if cur[j - 1] + unit < best:
                best, step = cur[j - 1] + unit, 2
            cur[j] = best
            row[j] = step
        prev = cur
    pairs: List[Tuple[int, int]] = []
    i, j = n, m
    while i or j:
        step = back[i][j]
        if step == 0:
            if ref[i - 1] == hyp[j - 1]:
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


# ---- per-utterance counts ------------------------------------------------------------------------------
def word_errors(ref_words: Sequence[str], hyp_words: Sequence[str]) -> Tuple[int, int, int]:
    """(substitutions, deletions, insertions) of one utterance; jiwer does the alignment."""
    if not ref_words:
        return 0, 0, len(hyp_words)
    if not hyp_words:
        return 0, len(ref_words), 0
    out = jiwer.process_words(" ".join(ref_words), " ".join(hyp_words))
    return out.substitutions, out.deletions, out.insertions


class Counts:
    """Additive error counts over a set of utterances, plus the tasks their references carry."""

    def __init__(self) -> None:
        self.c: Counter = Counter()
        self.carried: Set[str] = set()

    def add(self, other: "Counts") -> None:
        self.c.update(other.c)
        self.carried |= other.carried


def point_tasks(spec: TaskSpec) -> Tuple[str, ...]:
    """Tasks whose one tag marks a position (scd, endp, and e.g. an added qst): F1 by aligned tag matching."""
    return tuple(t for t, toks in spec.aux_tokens.items() if t not in ("ner", "lid") and len(toks) == 1)


def _point_tasks_counted(c: Counter) -> List[str]:
    """scd, endp, then any other point task that has counts (in the order they were counted)."""
    extra = [k[:-3] for k in c if k.endswith("_tp") and k != "ner_tp" and k[:-3] not in BOUNDARY_TASKS]
    return list(BOUNDARY_TASKS) + extra


def _first_of_task(tokens: Sequence[str], task: str, spec: TaskSpec) -> Optional[str]:
    return next((w for w in tokens if spec.task_of(w) == task), None)


def score_utterance(ref: Sequence[str], hyp: Sequence[str], spec: TaskSpec, active: Iterable[str]) -> Counts:
    active = set(active)
    out = Counts()
    c = out.c
    c["n_utts"] = 1
    ref_words = [w for w in ref if not spec.is_task_token(w)]
    hyp_words = [w for w in hyp if not spec.is_task_token(w)]
    out.carried = {spec.task_of(w) for w in ref if spec.is_task_token(w)}
    if ref_words:
        out.carried.add(PRIMARY_TASK)
    c["n_ref_words"] = len(ref_words)
    c["S"], c["D"], c["I"] = word_errors(ref_words, hyp_words)

    # Boundary tags: a hyp tag counts only where the alignment matches it to the same ref tag.
    boundary = point_tasks(spec)
    n_ref = Counter(spec.task_of(w) for w in ref if spec.task_of(w) in boundary)
    n_hyp = Counter(spec.task_of(w) for w in hyp if spec.task_of(w) in boundary)
    tp: Counter = Counter()
    if n_ref and n_hyp:  # the alignment can only add TPs when both sides have tags
        for i, _ in align_matches(ref, hyp, spec.is_task_token):
            if spec.task_of(ref[i]) in boundary:
                tp[spec.task_of(ref[i])] += 1
    for task in boundary:
        c[f"{task}_tp"] = tp[task]
        c[f"{task}_fp"] = n_hyp[task] - tp[task]
        c[f"{task}_fn"] = n_ref[task] - tp[task]

    if "ner" in spec.aux_tokens:
        ref_ents, hyp_ents = Counter(entities(ref)), Counter(entities(hyp))
        c["ner_tp"] = sum((ref_ents & hyp_ents).values())
        c["ner_hyp"] = sum(hyp_ents.values())
        c["ner_ref"] = sum(ref_ents.values())

    if "lid" in spec.aux_tokens:
        ref_lang = _first_of_task(ref, "lid", spec)
        if ref_lang is not None:
            c["lid_total"] = 1
            c["lid_correct"] = int(_first_of_task(hyp, "lid", spec) == ref_lang)

    c["itt"] = sum(1 for w in hyp if spec.is_task_token(w) and spec.task_of(w) not in active)
    return out


# ---- corpus summaries ----------------------------------------------------------------------------------
def _pct(num: int, den: int) -> Optional[float]:
    return 100.0 * num / den if den else None


def summarize(counts: Counts, active: Iterable[str]) -> Dict[str, Optional[float]]:
    """Metric values (see the module docstring) from aggregated counts."""
    active = set(active)
    c, carried = counts.c, counts.carried

    def on(task: str) -> bool:
        return task in active and task in carried

    out: Dict[str, Optional[float]] = {
        "wer": _pct(c["S"] + c["D"] + c["I"], c["n_ref_words"]) if on(PRIMARY_TASK) else None,
    }
    for task in _point_tasks_counted(c):
        tp, fp, fn = c[f"{task}_tp"], c[f"{task}_fp"], c[f"{task}_fn"]
        out[f"{task}_f1"] = _pct(2 * tp, 2 * tp + fp + fn) if on(task) else None
    # 2PR/(P+R) with P = tp/hyp, R = tp/ref reduces to 2tp/(hyp+ref).
    out["ner_f1"] = _pct(2 * c["ner_tp"], c["ner_hyp"] + c["ner_ref"]) if on("ner") else None
    out["lid_acc"] = _pct(c["lid_correct"], c["lid_total"]) if on("lid") else None
    out["itt"] = c["itt"]
    return out


def counts_json(counts: Counts) -> Dict[str, object]:
    c = counts.c
    out: Dict[str, object] = {
        "n_utts": c["n_utts"],
        "n_ref_words": c["n_ref_words"],
        "wer": {"S": c["S"], "D": c["D"], "I": c["I"]},
    }
    for task in _point_tasks_counted(c):
        out[task] = {"tp": c[f"{task}_tp"], "fp": c[f"{task}_fp"], "fn": c[f"{task}_fn"]}
    out["ner"] = {"tp": c["ner_tp"], "hyp": c["ner_hyp"], "ref": c["ner_ref"]}
    out["lid"] = {"correct": c["lid_correct"], "total": c["lid_total"]}
    out["itt"] = c["itt"]
    return out


def utterance_language(
    utt: str, ref: Sequence[str], spec: TaskSpec, utt2lang: Optional[Mapping[str, str]] = None
) -> str:
    if utt2lang is not None:
        return utt2lang[utt]
    tok = _first_of_task(ref, "lid", spec)
    return tok[1:-1].lower() if tok is not None else "unk"


def score_corpus(
    ref: Mapping[str, Sequence[str]],
    hyp: Mapping[str, Sequence[str]],
    spec: TaskSpec,
    active: Sequence[str],
    utt2lang: Optional[Mapping[str, str]] = None,
    ref_name: str = "reference",
    hyp_name: str = "hypothesis",
    utt2lang_name: str = "utt2lang",
) -> Dict[str, object]:
    """Scores of ``hyp`` against ``ref`` (utt-id -> tokens): overall, per language, and the raw counts."""
    check_same_utts(ref, hyp, ref_name, hyp_name)
    if utt2lang is not None:
        missing = set(ref) - set(utt2lang)
        if missing:
            raise DataError(
                f"{utt2lang_name}: no language for utterance(s) {_id_list(missing)}; add a line "
                f"'<utt-id> <lang>' for each"
            )
    total = Counts()
    by_lang: Dict[str, Counts] = defaultdict(Counts)
    for utt in sorted(ref):
        uc = score_utterance(ref[utt], hyp[utt], spec, active)
        total.add(uc)
        by_lang[utterance_language(utt, ref[utt], spec, utt2lang)].add(uc)
    result: Dict[str, object] = dict(summarize(total, active))
    result["per_language"] = {
        lang: {**summarize(by_lang[lang], active), "n_utts": by_lang[lang].c["n_utts"]}
        for lang in sorted(by_lang, key=lambda x: (x == "unk", x))
    }
    result["counts"] = counts_json(total)
    result["task_activation"] = list(active)
    return result


def entities_by_seen(
    ref: Mapping[str, Sequence[str]], hyp: Mapping[str, Sequence[str]], known_words: Iterable[str]
) -> Dict[str, int]:
    """NER recall split by whether the training text had the entity's words (``known_words``): a reference entity
    is *seen* when every word of it occurs there, *unseen* otherwise; found = matched exactly, per utterance (the
    ``ner_tp`` rule). ``wrong_spans`` = hypothesis entities that match no reference entity (the NER false
    positives). Keys: seen_found, seen, unseen_found, unseen, wrong_spans."""
    known = set(known_words)
    out = dict.fromkeys(("seen_found", "seen", "unseen_found", "unseen", "wrong_spans"), 0)
    for utt, ref_words in ref.items():
        ref_ents, hyp_ents = Counter(entities(ref_words)), Counter(entities(hyp.get(utt, ())))
        for ent, n in ref_ents.items():
            kind = "seen" if all(w in known for w in ent.split()) else "unseen"
            out[kind] += n
            out[f"{kind}_found"] += min(n, hyp_ents[ent])
        out["wrong_spans"] += sum((hyp_ents - ref_ents).values())
    return out
