"""Scores of a decode with biasing lists (issue #29): U-WER, B-WER, false alarms, list-phrase recall.

Le et al. 2021 (Interspeech, "Contextualized streaming end-to-end speech recognition with trie-based deep biasing
and shallow fusion"; their scorer is fbai-speech's ``is21_deep_bias/score.py``) split the WER by the words of each
utterance's biasing list:

* **B-WER**: errors on *biased* reference words / number of biased reference words. A reference word is biased
  when it lies inside an occurrence of one of its utterance's list phrases in the reference (for one-word phrases,
  their "reference word in the list"). Substitutions and deletions count where their reference word is.
* **U-WER**: the same over the other reference words.
* **Insertions** have no reference word. As Le et al. do, an inserted word counts toward B-WER when it is one of
  the utterance's *biasing words*, i.e. a word of a list phrase that occurs in the reference (their ground-truth
  biasing words); any other inserted word, an inserted distractor included, counts toward U-WER.

So U-errors + B-errors = the errors of the WER and U-words + B-words = its reference words: the alignment is the
WER's own (jiwer, task tokens removed from both sides; Le et al.'s scorer weighs substitutions 4 and
insertions/deletions 3, which can align a few words differently).

* **False alarms**: per utterance and list phrase, its occurrences in the hypothesis beyond those in the reference
  (what the bias pulled in that was not said). ``fa_rate`` = false alarms / list-phrase occurrences in the
  hypotheses (%, 1 - phrase precision); ``fa_per_100_utts`` normalises by utterances instead.
* **Phrase recall**: reference occurrences of list phrases that the hypothesis has too (per utterance and phrase,
  min of the two counts) / reference occurrences.

Utterances without a list (no ``utt2biasing`` line) count as all-unbiased.
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import jiwer

from espnet2_ext.text.biasing_list import BiasingList

Phrase = Tuple[str, ...]


def occurrences(words: Sequence[str], phrases: Iterable[Phrase]) -> List[Tuple[int, Phrase]]:
    """(start, phrase) of every occurrence of every phrase in ``words`` (overlaps included), by start then length."""
    by_len: Dict[int, set] = {}
    for p in phrases:
        if p:
            by_len.setdefault(len(p), set()).add(tuple(p))
    out = []
    for i in range(len(words)):
        for n in sorted(by_len):
            cand = tuple(words[i : i + n])
            if len(cand) == n and cand in by_len[n]:
                out.append((i, cand))
    return out


def _alignment(ref: Sequence[str], hyp: Sequence[str]):
    """jiwer's alignment chunks (the WER's) as (type, ref indices, hyp indices)."""
    if not ref:
        return [("insert", [], list(range(len(hyp))))] if hyp else []
    if not hyp:
        return [("delete", list(range(len(ref))), [])]
    chunks = jiwer.process_words(" ".join(ref), " ".join(hyp)).alignments[0]
    return [
        (c.type, list(range(c.ref_start_idx, c.ref_end_idx)), list(range(c.hyp_start_idx, c.hyp_end_idx)))
        for c in chunks
    ]


def score_biasing_utterance(ref: Sequence[str], hyp: Sequence[str], phrases: Iterable[Phrase]) -> Counter:
    """Counts of one utterance (words only, task tokens already removed); see the module doc for the rules."""
    phrases = {tuple(p) for p in phrases if p}
    ref_occ, hyp_occ = occurrences(ref, phrases), occurrences(hyp, phrases)
    biased = [False] * len(ref)
    for start, p in ref_occ:
        biased[start : start + len(p)] = [True] * len(p)
    biasing_words = {w for _, p in ref_occ for w in p}
    c: Counter = Counter()
    c["b_ref"] = sum(biased)
    c["u_ref"] = len(ref) - c["b_ref"]
    for kind, r_idx, h_idx in _alignment(ref, hyp):
        if kind == "insert":
            for j in h_idx:
                c["b_I" if hyp[j] in biasing_words else "u_I"] += 1
        elif kind in ("substitute", "delete"):
            for i in r_idx:
                c[("b_" if biased[i] else "u_") + ("S" if kind == "substitute" else "D")] += 1
    n_ref, n_hyp = Counter(p for _, p in ref_occ), Counter(p for _, p in hyp_occ)
    c["ref_phrases"], c["hyp_phrases"] = sum(n_ref.values()), sum(n_hyp.values())
    c["phrase_hits"] = sum((n_ref & n_hyp).values())
    c["false_alarms"] = sum((n_hyp - n_ref).values())
    return c


def _pct(num: int, den: int) -> Optional[float]:
    return 100.0 * num / den if den else None


def summarize_biasing(c: Counter, n_utts: int) -> Dict[str, object]:
    b_err, u_err = c["b_S"] + c["b_D"] + c["b_I"], c["u_S"] + c["u_D"] + c["u_I"]
    return {
        "u_wer": _pct(u_err, c["u_ref"]),
        "b_wer": _pct(b_err, c["b_ref"]),
        "fa_rate": _pct(c["false_alarms"], c["hyp_phrases"]),
        "fa_per_100_utts": _pct(c["false_alarms"], n_utts),
        "phrase_recall": _pct(c["phrase_hits"], c["ref_phrases"]),
        "counts": {
            k: c[k]
            for k in (
                "u_ref",
                "u_S",
                "u_D",
                "u_I",
                "b_ref",
                "b_S",
                "b_D",
                "b_I",
                "ref_phrases",
                "hyp_phrases",
                "phrase_hits",
                "false_alarms",
                "utts_with_list",
                "list_phrases",
            )
        },
    }


def score_biasing(
    ref: Mapping[str, Sequence[str]], hyp: Mapping[str, Sequence[str]], lists: Mapping[str, BiasingList], is_task_token
) -> Dict[str, object]:
    """Corpus scores (``summarize_biasing``) of ``hyp`` against ``ref`` (same utterances; the caller checks) with
    each utterance's list (``lists_per_utterance``); ``is_task_token`` tells the task tokens to drop."""
    total: Counter = Counter()
    for utt in sorted(ref):
        lst = lists.get(utt)
        phrases = [p.words for p in lst.phrases] if lst is not None else []
        words = lambda toks: [w for w in toks if not is_task_token(w)]  # noqa: E731
        total.update(score_biasing_utterance(words(ref[utt]), words(hyp[utt]), phrases))
        total["utts_with_list"] += lst is not None
        total["list_phrases"] += len(phrases)
    out = summarize_biasing(total, len(ref))
    out["mean_list_size"] = total["list_phrases"] / total["utts_with_list"] if total["utts_with_list"] else None
    return out
