"""Time-based scoring of speaker changes, endpoints and word times (when the data dir has reference times).

Reference: ``utt2turns`` (``data/ref_turns.py``), per utterance its turns (start, end, speaker) in the utterance's
clock. Hypothesis: ``1best_recog/events.jsonl`` (``text/time_outputs.py``), moved back to the utterance clock.

* SCD: the reference change points are the starts of the turns whose speaker differs from the previous turn's;
  the hypothesis change points are the emission times of ``[SCD]``. Precision/recall come from
  ``pyannote.metrics.segmentation.SegmentationPrecision``/``SegmentationRecall`` (one-to-one matching of
  boundaries at most ``collar`` seconds apart, closest pairs first) on the partitions of the utterance cut at
  those points; F1 = 2PR/(P+R) over the accumulated counts. Segment purity and coverage are pyannote's
  ``SegmentationPurity``/``SegmentationCoverage`` (reference = speaker turns, hypothesis = the utterance cut at
  the hypothesised changes; pyannote's default 0.5 s gap filling).
* Endpoints: every reference turn ends with an endpoint at its end of speech ``e``. The hypothesis endpoints are
  the ``[ENDP]`` emission times; turn k owns the window from the previous window's end up to
  ``max(e_k, start of turn k+1)`` (the first window starts at -inf, the last ends at +inf). The first hypothesised
  endpoint in its window gives the latency ``t - e`` (negative when it fired before the end of speech: an
  early cutoff). EP50/EP90 = median / 90th percentile (linear interpolation) of the latencies; a window without
  an endpoint is a missed endpoint; further endpoints in a window are counted as extra.
* Word timing (with a reference CTM): hypothesis and reference words of a recording are aligned (jiwer); the
  error is the median |hyp start - ref start| over the aligned identical words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from espnet2_ext.common import DataError
from espnet2_ext.data.ref_turns import RefTurn, parse_turns
from espnet2_ext.text.time_outputs import UttEvents

DEFAULT_COLLARS = (0.25, 0.5)
PathLike = Union[str, Path]


def read_utt2turns(path: PathLike) -> Dict[str, Tuple[RefTurn, ...]]:
    from espnet2_ext.data.kaldi_dir import read_table

    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: no such file; write '<utt-id> <start> <end> <speaker> ...' per utterance "
            f"(docs/data_formats.md, utt2turns)"
        )
    table = read_table(path, strict=False)
    return {utt: parse_turns(v, table.where(utt)) for utt, v in table.values.items()}


def ref_change_points(turns: Sequence[RefTurn]) -> List[float]:
    return [t.start for prev, t in zip(turns, turns[1:]) if t.speaker != prev.speaker]


def _partition(points: Sequence[float], end: float):
    """pyannote Timeline of [0, end] cut at ``points`` (duplicates collapse into one boundary)."""
    from pyannote.core import Segment, Timeline

    cuts = sorted({round(p, 6) for p in points if 0.0 < p < end})
    edges = [0.0] + cuts + [end]
    return Timeline([Segment(a, b) for a, b in zip(edges, edges[1:])])


def _turn_annotation(turns: Sequence[RefTurn]):
    from pyannote.core import Annotation, Segment

    ann = Annotation()
    for k, t in enumerate(turns):
        ann[Segment(t.start, t.end), k] = t.speaker
    return ann


@dataclass
class EndpointStats:
    latencies: List[float] = field(default_factory=list)
    n_ref: int = 0
    missed: int = 0
    early: int = 0
    extra: int = 0

    def add(self, other: "EndpointStats") -> None:
        self.latencies += other.latencies
        self.n_ref += other.n_ref
        self.missed += other.missed
        self.early += other.early
        self.extra += other.extra

    def summary(self) -> Dict[str, Optional[float]]:
        lat = np.asarray(self.latencies, dtype=float)
        pct = lambda n: 100.0 * n / self.n_ref if self.n_ref else None  # noqa: E731
        stat = lambda f: round(float(f(lat)), 6) if lat.size else None  # noqa: E731
        return {
            "ep50": stat(lambda x: np.percentile(x, 50)),
            "ep90": stat(lambda x: np.percentile(x, 90)),
            "mean_latency": stat(np.mean),
            "early_cutoff_rate": pct(self.early),
            "missed_rate": pct(self.missed),
            "n_ref": self.n_ref,
            "n_detected": len(self.latencies),
            "early_cutoffs": self.early,
            "missed": self.missed,
            "extra": self.extra,
        }


def endpoint_stats(turns: Sequence[RefTurn], hyp_endpoints: Sequence[float]) -> EndpointStats:
    """Latency of the first hypothesised endpoint in each reference turn's window (see the module docstring)."""
    out = EndpointStats(n_ref=len(turns))
    hyp = sorted(hyp_endpoints)
    lo = -math.inf
    for k, t in enumerate(turns):
        hi = max(t.end, turns[k + 1].start) if k + 1 < len(turns) else math.inf
        inside = [h for h in hyp if lo <= h < hi]
        if not inside:
            out.missed += 1
        else:
            latency = inside[0] - t.end
            out.latencies.append(round(latency, 6))
            out.early += latency < 0
            out.extra += len(inside) - 1
        lo = hi
    return out


def word_timing_errors(ref_words: Sequence[Tuple[str, float]], hyp_words: Sequence[Tuple[str, float]]) -> List[float]:
    """|hyp start - ref start| of the aligned identical words of one recording (each list in time order)."""
    import jiwer

    if not ref_words or not hyp_words:
        return []
    out = jiwer.process_words(" ".join(w for w, _ in ref_words), " ".join(w for w, _ in hyp_words))
    errors = []
    for chunk in out.alignments[0]:
        if chunk.type == "equal":
            for i, j in zip(
                range(chunk.ref_start_idx, chunk.ref_end_idx), range(chunk.hyp_start_idx, chunk.hyp_end_idx)
            ):
                errors.append(abs(hyp_words[j][1] - ref_words[i][1]))
    return errors


def read_ctm(path: PathLike) -> Dict[str, List[Tuple[str, float]]]:
    """NIST CTM ``<file> <channel> <start> <dur> <word> [<conf>]`` -> file -> [(word, start)] in time order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; give a CTM '<file> <channel> <start> <dur> <word>' per line")
    out: Dict[str, List[Tuple[str, float]]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        f = line.split()
        if not f or f[0].startswith(";;"):
            continue
        if len(f) < 5:
            raise DataError(f"{path}:{lineno}: expected '<file> <channel> <start> <dur> <word> [<conf>]'")
        try:
            start = float(f[2])
        except ValueError:
            raise DataError(f"{path}:{lineno}: start '{f[2]}' is not a number") from None
        out.setdefault(f[0], []).append((f[4], start))
    return {k: sorted(v, key=lambda x: x[1]) for k, v in out.items()}


def score_times(
    ref_turns: Mapping[str, Sequence[RefTurn]],
    hyp: Mapping[str, UttEvents],
    scd_utts: Sequence[str],
    endp_utts: Sequence[str],
    collars: Sequence[float] = DEFAULT_COLLARS,
    ref_ctm: Optional[Mapping[str, List[Tuple[str, float]]]] = None,
    hyp_name: str = "events.jsonl",
) -> Dict[str, object]:
    """Time-based scores. ``scd_utts``/``endp_utts``: the utterances annotated for each task (they must have
    reference turns and hypothesis events)."""
    from pyannote.metrics.segmentation import (
        SegmentationCoverage,
        SegmentationPrecision,
        SegmentationPurity,
        SegmentationRecall,
    )

    for utt in sorted(set(scd_utts) | set(endp_utts)):
        if utt not in hyp:
            raise DataError(f"{hyp_name}: no record for utterance {utt}; decode every utterance of the test set")
        if utt not in ref_turns:
            raise DataError(f"utt2turns: no turns for utterance {utt}")
    result: Dict[str, object] = {}
    if scd_utts:
        prec = {c: SegmentationPrecision(tolerance=c) for c in collars}
        rec = {c: SegmentationRecall(tolerance=c) for c in collars}
        purity, coverage = SegmentationPurity(), SegmentationCoverage()
        for utt in sorted(scd_utts):
            turns, ev = ref_turns[utt], hyp[utt]
            end = max([ev.duration] + [t.end for t in turns]) + 1e-3
            ref_tl = _partition(ref_change_points(turns), end)
            hyp_tl = _partition(ev.speaker_changes, end)
            for c in collars:
                prec[c](ref_tl, hyp_tl)
                rec[c](ref_tl, hyp_tl)
            ref_ann = _turn_annotation(turns)
            hyp_ann = hyp_tl.to_annotation(generator="string")
            purity(ref_ann, hyp_ann)
            coverage(ref_ann, hyp_ann)
        scd: Dict[str, object] = {"n_utts": len(scd_utts)}
        for c in collars:
            p_det, r_det = prec[c].accumulated_, rec[c].accumulated_
            matches, n_hyp, n_ref = (
                p_det["number of matches"],
                p_det["number of boundaries"],
                r_det["number of boundaries"],
            )
            p = matches / n_hyp if n_hyp else None
            r = matches / n_ref if n_ref else None
            f1 = 2 * matches / (n_hyp + n_ref) if n_hyp + n_ref else None
            scd[f"collar_{c:g}"] = {
                "precision": _pct(p),
                "recall": _pct(r),
                "f1": _pct(f1),
                "matches": int(matches),
                "n_hyp": int(n_hyp),
                "n_ref": int(n_ref),
            }
        scd["purity"] = _pct(abs(purity))
        scd["coverage"] = _pct(abs(coverage))
        result["scd"] = scd
    if endp_utts:
        stats = EndpointStats()
        for utt in sorted(endp_utts):
            stats.add(endpoint_stats(ref_turns[utt], hyp[utt].endpoints))
        result["endp"] = {**stats.summary(), "n_utts": len(endp_utts)}
    if ref_ctm is not None:
        by_rec: Dict[str, List[Tuple[str, float]]] = {}
        for ev in sorted(hyp.values(), key=lambda e: (e.recording, e.offset)):
            by_rec.setdefault(ev.recording, []).extend((w, s + ev.offset) for w, s, _ in ev.words)
        errors: List[float] = []
        for recording, words in ref_ctm.items():
            errors += word_timing_errors(words, by_rec.get(recording, []))
        result["word_timing"] = {
            "median_abs_start_error": float(np.median(errors)) if errors else None,
            "n_matched_words": len(errors),
        }
    return result


def _pct(x: Optional[float]) -> Optional[float]:
    return None if x is None else 100.0 * float(x)


TIME_COLUMNS = (
    ("scd_f1_0.25", "SCD F1 @0.25 s"),
    ("scd_f1_0.5", "SCD F1 @0.5 s"),
    ("purity", "Purity"),
    ("coverage", "Coverage"),
    ("ep50_ms", "EP50 (ms)"),
    ("ep90_ms", "EP90 (ms)"),
    ("early_cutoff", "Early cutoff (%)"),
    ("missed", "Missed EP (%)"),
    ("word_ms", "Word start err (ms)"),
)


def flat_time_scores(time: Mapping[str, object]) -> Dict[str, Optional[float]]:
    """The table columns (``TIME_COLUMNS``) from a score.json ``time`` section."""
    scd = time.get("scd") or {}
    endp = time.get("endp") or {}
    word = time.get("word_timing") or {}
    ms = lambda x: None if x is None else 1000.0 * x  # noqa: E731
    return {
        "scd_f1_0.25": (scd.get("collar_0.25") or {}).get("f1"),
        "scd_f1_0.5": (scd.get("collar_0.5") or {}).get("f1"),
        "purity": scd.get("purity"),
        "coverage": scd.get("coverage"),
        "ep50_ms": ms(endp.get("ep50")),
        "ep90_ms": ms(endp.get("ep90")),
        "early_cutoff": endp.get("early_cutoff_rate"),
        "missed": endp.get("missed_rate"),
        "word_ms": ms(word.get("median_abs_start_error")),
    }
