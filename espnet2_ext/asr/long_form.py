"""Long-form decoding: a recording of any length, in bounded memory, stitched back into the recording's clock.

Modes (``--long_form``):

* ``segment`` (WhisperX's cut and merge): a VAD (``asr/vad.py``, silero-vad) finds the speech regions (each at
  most ``max_segment_s``); neighbouring regions are merged into pieces while a piece stays within
  ``target_segment_s``; a cut lies in the pause between two pieces, each piece keeps up to ``pad_s`` of that pause
  on its side (the model was trained on turns with 0.15-0.5 s of silence around them). Pieces are decoded in
  batches (``batch_size``) and each is read from the file only when its batch is decoded
  (``data/audio_blocks.py``).
* ``stream``: the streaming chunked decoder (``asr/streaming.py``, a model trained multi-chunk) over the whole
  recording, fed block by block; the stream is closed and restarted at an ``[ENDP]`` once it has run
  ``target_segment_s`` (sherpa's endpoint rule), or after ``max_segment_s`` without one, so every segment gets its
  own language token and the search state stays small.
* ``auto``: a recording no longer than ``max_segment_s`` is decoded whole (one piece, no VAD: what per-utterance
  decoding does); a longer one streams when the decoder given is a streaming one for a multi-chunk-trained model,
  else it is segmented.

Tags across cuts (``cut_rule``): a piece decoded alone cannot see the speaker before the cut, so an ``[SCD]`` at a
cut is lost. ``context`` (default) also feeds the model the audio before the piece from the start of the previous
piece's last speech region (if that is at most 2 x ``context_s`` back, else ``context_s`` seconds): tokens
emitted for the context's words are dropped, and the ``[ENDP]``/``[SCD]`` between the context's last word and the
piece's first word replace the previous piece's trailing ``[ENDP]``/``[SCD]``: the boundary is tagged by the decode
that heard both sides. ``none`` decodes pieces alone (a piece's trailing ``[ENDP]`` is kept: cuts are at pauses);
``scd`` decodes them alone and puts an ``[SCD]`` at every cut. A cut forced inside speech (a region longer than
``max_segment_s``) drops the piece's trailing ``[ENDP]``. Measured on dev in the recipe's ``RESULTS.md``.

Each piece keeps its first language token (a call may switch language); the recording's token sequence repeats a
language token only where it changes. Token times are frame x frame shift + the piece's start (+ nothing else:
the test checks it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from espnet2_ext.asr.audio_input import pad_batch
from espnet2_ext.asr.vad import SAMPLE_RATE, VADConfig, speech_regions
from espnet2_ext.text.time_outputs import ENDP, SCD, surface

LONG_FORM_MODES = ("auto", "segment", "stream", "none")
CUT_RULES = ("context", "none", "scd")
MIN_SAMPLES = 400  # one wav2vec2 frame (25 ms at 16 kHz): shorter audio has no frame to decode
_FORCED_GAP_S = 0.1  # a cut with less pause than this is inside speech (a region split at max_segment_s)


@dataclass(frozen=True)
class LongFormOptions:
    mode: str = "segment"
    max_segment_s: float = 20.0  # hard bound on a piece (and on a VAD region)
    target_segment_s: float = 10.0  # merge regions while the piece stays this short
    pad_s: float = 0.4  # silence kept around a piece's speech (at most half the pause)
    cut_rule: str = "context"
    context_s: float = 2.0
    batch_size: int = 4
    vad: VADConfig = field(default_factory=VADConfig)

    def __post_init__(self):
        if self.mode not in LONG_FORM_MODES:
            raise ValueError(f"long_form '{self.mode}' is unknown: choose one of {', '.join(LONG_FORM_MODES)}")
        if self.cut_rule not in CUT_RULES:
            raise ValueError(f"cut rule '{self.cut_rule}' is unknown: choose one of {', '.join(CUT_RULES)}")
        if not 0 < self.target_segment_s <= self.max_segment_s:
            raise ValueError(
                f"need 0 < target segment length ({self.target_segment_s} s) <= --max_segment_s "
                f"({self.max_segment_s} s)"
            )
        if self.pad_s < 0 or self.context_s < 0 or self.batch_size < 1:
            raise ValueError("pad and context must be >= 0 s and the batch size >= 1")


@dataclass(frozen=True)
class Piece:
    """Samples [start, end) of the recording decoded as one utterance; ``context`` samples before ``start`` are
    fed too (their words are dropped); ``forced_end``: the piece ends inside speech (no pause at its cut)."""

    start: int
    end: int
    context: int = 0
    forced_end: bool = False


@dataclass
class Segment:
    """A decoded piece in the recording's clock: ``tokens`` and their ``times`` (seconds), its language token."""

    start: float
    end: float
    tokens: List[str]
    times: List[float]
    language: Optional[str] = None
    score: float = 0.0
    boundary_heard: bool = False  # its context had words: its leading [ENDP]/[SCD] decide the cut's tags


@dataclass
class RecordingResult:
    recording: str
    duration: float
    segments: List[Segment]
    tokens: List[str] = field(default_factory=list)
    times: List[float] = field(default_factory=list)
    note: str = ""  # why the hypothesis is empty, when it is


# ---- planning ----------------------------------------------------------------------------------------------
def merge_regions(regions: Sequence[Tuple[int, int]], target: int) -> List[List[Tuple[int, int]]]:
    """Consecutive speech regions grouped while a group spans at most ``target`` samples (a region longer than
    that is a group of its own)."""
    groups: List[List[Tuple[int, int]]] = []
    for a, b in regions:
        if groups and b - groups[-1][0][0] <= target:
            groups[-1].append((a, b))
        else:
            groups.append([(a, b)])
    return groups


def plan_pieces(
    regions: Sequence[Tuple[int, int]], n_samples: int, opts: LongFormOptions, rate: int = SAMPLE_RATE
) -> List[Piece]:
    """Pieces of a recording from its speech regions (cut and merge). A cut between two groups lies in their
    pause; each side keeps at most ``pad_s`` and at most half of it."""
    groups = merge_regions(regions, int(opts.target_segment_s * rate))
    pad, ctx = int(opts.pad_s * rate), int(opts.context_s * rate) if opts.cut_rule == "context" else 0
    pieces: List[Piece] = []
    for k, g in enumerate(groups):
        s, e = g[0][0], g[-1][1]
        prev_end = groups[k - 1][-1][1] if k else 0
        next_start = groups[k + 1][0][0] if k + 1 < len(groups) else n_samples
        start = max(0, s - pad, (prev_end + s + 1) // 2 if k else 0)
        end = min(n_samples, e + pad, (e + next_start) // 2 if k + 1 < len(groups) else n_samples)
        context = _context(groups[k - 1], start, ctx, pad) if k and ctx else 0
        forced = k + 1 < len(groups) and next_start - e < int(_FORCED_GAP_S * rate)
        pieces.append(Piece(start, end, context, forced_end=forced))
    return pieces


def _context(prev_group: Sequence[Tuple[int, int]], start: int, ctx: int, pad: int) -> int:
    """Context samples before a piece starting at ``start``: from the start of the previous group's last speech
    region (so the model hears a turn from its beginning, as in training, and emits its language token first)
    when that is at most 2 x ``ctx`` back, else ``ctx``."""
    region_start = max(0, prev_group[-1][0] - pad)
    return start - region_start if 0 < start - region_start <= 2 * ctx else min(ctx, start)


# ---- decoding pieces ---------------------------------------------------------------------------------------
def decode_pieces(
    s2t,
    reader,
    pieces: Sequence[Piece],
    batch_size: int,
    task_mask: torch.Tensor,
    biasing=None,
) -> List[Tuple[List[str], List[float], float]]:
    """(tokens, times in seconds from the piece's fed start = start - context, score) of each piece; pieces are
    read and decoded ``batch_size`` at a time (the only audio in memory). ``task_mask`` [1, 1+K]: the tasks of
    every piece. ``biasing``: the recording's biasing list (every piece gets it; its graph is built once), or
    None."""
    out = []
    for i in range(0, len(pieces), batch_size):
        batch = pieces[i : i + batch_size]
        wavs = [torch.from_numpy(reader.read(p.start - p.context, p.end)) for p in batch]
        # padded to a whole number of seconds: few distinct tensor sizes, so freed memory is reused (the
        # valid frames do not depend on the padding: batched == one by one, tested)
        speech, lengths = pad_batch(wavs, SAMPLE_RATE)  # speech: [B, S], S <= piece + context + 1 s
        mask = task_mask.view(1, -1).expand(len(batch), -1)  # task_mask: [B, 1+K]
        one_each = None if biasing is None else [biasing] * len(batch)
        results = s2t.decode_masked(speech, lengths, mask, with_frames=True, biasing=one_each)
        for nbest in results:
            if not nbest:
                out.append(([], [], 0.0))
                continue
            _, tokens, _, hyp = nbest[0]
            out.append((list(tokens), [round(f * s2t.frame_shift, 6) for f in hyp.frames], float(hyp.score)))
        release_freed_memory()
    return out


def release_freed_memory() -> None:
    """Give memory freed by the last batch back to the OS (glibc keeps it in its arenas otherwise, and pieces of
    varying lengths fragment them: the 60-minute recording's RSS grew by ~7 MB a batch without this)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _is_tag(spec, token: str) -> bool:
    return spec.is_task_token(surface(token))


def _language_tokens(spec) -> set:
    return set(spec.aux_tokens.get("lid", ()))


def piece_segment(
    spec, piece: Piece, tokens: List[str], times: List[float], score: float, rate: int = SAMPLE_RATE
) -> Segment:
    """A decoded piece moved into the recording's clock: times + (start - context); the context's words (and the
    tags before them) are dropped; the first language token is kept, placed at the piece's start."""
    fed_start, ctx = (piece.start - piece.context) / rate, piece.context / rate
    langs = _language_tokens(spec)
    language = next((surface(t) for t in tokens if surface(t) in langs), None)
    keep = [(t, s) for t, s in zip(tokens, times) if surface(t) not in langs]
    words_before = [i for i, (t, s) in enumerate(keep) if s < ctx and not _is_tag(spec, t)] if ctx else []
    keep = keep[words_before[-1] + 1 :] if words_before else keep
    if piece.forced_end:
        last_word = max((i for i, (t, _) in enumerate(keep) if not _is_tag(spec, t)), default=-1)
        keep = [x for i, x in enumerate(keep) if i <= last_word or surface(x[0]) != ENDP]
    start_s, end_s = piece.start / rate, piece.end / rate
    toks = [t for t, _ in keep]
    secs = [round(min(fed_start + s, end_s), 6) for _, s in keep]  # boundary tags may lie in the pause before
    lang_tok = next((t for t in tokens if surface(t) == language), None)
    if lang_tok is not None:
        toks, secs = [lang_tok] + toks, [round(start_s, 6)] + secs
    return Segment(round(start_s, 6), round(end_s, 6), toks, secs, language, score, bool(words_before))


def inherit_language(segments: List[Segment]) -> List[Segment]:
    """A segment whose decode emitted no language token takes the previous segment's (its token leads it)."""
    prev: Optional[Segment] = None
    for seg in segments:
        if seg.language is None and prev is not None:
            seg.language = prev.language
            seg.tokens, seg.times = [prev.tokens[0]] + seg.tokens, [seg.start] + seg.times
        if seg.language is not None:
            prev = seg
    return segments


# ---- stitching ---------------------------------------------------------------------------------------------
_BOUNDARY = (ENDP, SCD)


def stitch(spec, segments: List[Segment], cut_rule: str, scd_token: str = SCD) -> Tuple[List[str], List[float]]:
    """The recording's tokens and times from its segments (in order), applying the cut rule at each cut."""
    tokens: List[str] = []
    times: List[float] = []
    language = None
    for k, seg in enumerate(segments):
        first = 1 if seg.language is not None else 0  # the language token leads a segment's tokens
        body, body_t = seg.tokens[first:], seg.times[first:]
        if k and seg.boundary_heard:
            # boundary tags from the decode that heard both sides: drop the previous piece's trailing ones
            while tokens and surface(tokens[-1]) in _BOUNDARY:
                tokens.pop()
                times.pop()
        elif k and cut_rule == "scd" and not any(surface(t) == SCD for t in body[:1]):
            body, body_t = [scd_token] + body, [seg.start] + body_t
        if seg.language is not None and seg.language != language:
            tokens.append(seg.tokens[0])
            times.append(seg.times[0])
            language = seg.language
        tokens += body
        times += body_t
    return tokens, times


# ---- whole recordings --------------------------------------------------------------------------------------
def decode_segmented(
    s2t, reader, recording: str, opts: LongFormOptions, task_mask: torch.Tensor, whole: bool = False, biasing=None
) -> RecordingResult:
    """Segment mode (``whole``: one piece = the recording, no VAD) for one ``RecordingReader``; ``task_mask``
    [1, 1+K]."""
    n = len(reader)
    result = RecordingResult(recording, n / float(reader.target_rate), [])
    if n < MIN_SAMPLES:
        result.note = f"{n} samples: shorter than one frame ({MIN_SAMPLES} samples), nothing to decode"
        return result
    if whole:
        pieces = [Piece(0, n)]
    else:
        regions = speech_regions(reader, opts.vad, opts.max_segment_s - 2 * opts.pad_s)
        if not regions:
            result.note = f"the VAD ({opts.vad.kind}) found no speech"
            return result
        pieces = plan_pieces(regions, n, opts, reader.target_rate)
    decoded = decode_pieces(s2t, reader, pieces, opts.batch_size, task_mask, biasing=biasing)
    result.segments = inherit_language(
        [piece_segment(s2t.spec, p, *d, rate=reader.target_rate) for p, d in zip(pieces, decoded)]
    )
    scd = next((t for t in s2t.token_list if surface(t) == SCD), SCD)
    result.tokens, result.times = stitch(s2t.spec, result.segments, opts.cut_rule, scd)
    logging.info(f"{recording}: {result.duration:.1f} s decoded as {len(pieces)} pieces")
    return result


def decode_streamed(
    stream_s2t,
    reader,
    recording: str,
    opts: LongFormOptions,
    task_mask: torch.Tensor,
    block_s: float = 1.0,
    biasing=None,
) -> RecordingResult:
    """Stream mode: the recording fed block by block to a ``TokenVerseStreamingSpeech2Text``; the stream restarts
    at an ``[ENDP]`` after ``target_segment_s``, or after ``max_segment_s`` without one. ``task_mask``: [1, 1+K]."""
    rate, n = reader.target_rate, len(reader)
    result = RecordingResult(recording, n / float(rate), [])
    if n < MIN_SAMPLES:
        result.note = f"{n} samples: shorter than one frame ({MIN_SAMPLES} samples), nothing to decode"
        return result
    stream_s2t.reset()
    seg_start, fed = 0, 0
    for start, x in reader.blocks(int(block_s * rate)):
        # the tasks and the list are taken on the first call of each restarted stream
        nbest = stream_s2t(x, is_final=False, task_mask=task_mask, biasing=biasing)
        fed = start + x.size
        run_s = (fed - seg_start) / rate
        last = surface(nbest[0][1][-1]) if nbest and nbest[0][1] else None
        if (run_s >= opts.target_segment_s and last == ENDP) or run_s >= opts.max_segment_s or fed >= n:
            final = stream_s2t(np.zeros(0, dtype=np.float32), is_final=True)
            _, tokens, _, hyp = final[0] if final else (None, [], None, None)
            times = [round(f * stream_s2t.frame_shift, 6) for f in (hyp.frames if hyp is not None else [])]
            piece = Piece(seg_start, fed, 0, forced_end=last != ENDP and fed < n)
            result.segments.append(
                piece_segment(stream_s2t.spec, piece, list(tokens), times, float(getattr(hyp, "score", 0.0)), rate)
            )
            seg_start = fed
    inherit_language(result.segments)
    result.tokens, result.times = stitch(stream_s2t.spec, result.segments, "none")
    return result
