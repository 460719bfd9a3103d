"""``asr_inference --long_form``: every recording of a ``wav.scp`` decoded long-form (``asr/long_form.py``) into
ESPnet's ``<output_dir>/1best_recog`` layout, in the recording's clock.

Written (the whole ``1best_recog`` dir appears at once, complete, when every recording was tried):

* ``text``, ``token``, ``token_int``, ``score``: one line per recording (a language token wherever it changes);
* ``segments``: ESPnet/Kaldi ``<segment-id> <recording-id> <start> <end>`` of the decoded pieces, and
  ``segment_text`` (``<segment-id> <text>``, its language token first), so per-segment scoring works;
* ``ctm``, ``rttm``, ``events.jsonl``: as for utterances (``text/time_outputs.py``), one record per recording;
* ``long_form.json``: per recording the mode, pieces, audio and wall seconds.

Bad input: a recording that cannot be read (missing, corrupt, a pipe) is reported in one log line and left out;
the others are decoded, then a ``DataError`` names how many failed and the first reason (the CLI prints it as
one line and exits 1). An empty, all-silent or sub-frame recording gets an empty hypothesis and a log line.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Dict, List, Optional

from espnet2_ext.asr.long_form import LongFormOptions, RecordingResult, decode_segmented, decode_streamed
from espnet2_ext.asr.vad import VADConfig
from espnet2_ext.common import DataError, atomic_dir
from espnet2_ext.data.audio_blocks import RecordingReader


def options_of(args) -> LongFormOptions:
    """Long-form options from ``asr_inference``'s arguments."""
    return LongFormOptions(
        mode=args.long_form,
        max_segment_s=args.max_segment_s,
        target_segment_s=args.target_segment_s,
        cut_rule=args.cut_rule,
        context_s=args.context_s,
        batch_size=max(1, args.batch_size),
        vad=VADConfig(kind=args.vad),
    )


def sound_scp(args) -> Optional[Path]:
    scps = [Path(p) for p, _, kind in args.data_path_and_name_and_type if kind == "sound"]
    return scps[0] if scps else None


def wants_long_form(args) -> bool:
    """``segment``/``stream``: always; ``auto``: when a ``wav.scp`` recording (a plain file, in a dir without
    ``segments``) is longer than ``--max_segment_s``; ``none``: never."""
    mode = getattr(args, "long_form", "none")
    if mode in ("none", None):
        return False
    if mode != "auto":
        return True
    scp = sound_scp(args)
    if scp is None or (scp.parent / "segments").is_file():
        return False
    from espnet2_ext.data.audio_io import audio_duration, is_plain_path
    from espnet2_ext.data.kaldi_dir import read_table

    for entry in read_table(scp, strict=False).values.values():
        if not is_plain_path(entry) or not Path(entry).is_file():
            continue
        try:
            if audio_duration(entry) > args.max_segment_s:
                return True
        except Exception:  # unreadable: the chosen path reports it
            continue
    return False


def _streams(s2t) -> bool:
    """A streaming decoder whose model was trained with several chunk sizes (``multichunk_sizes_ms``)."""
    conf = getattr(s2t.asr_train_args, "frontend_conf", None) or {}
    return hasattr(s2t, "chunk_samples") and bool(conf.get("multichunk_sizes_ms"))


def decode_recording(
    s2t, reader: RecordingReader, recording: str, opts: LongFormOptions, task_mask, biasing=None
) -> RecordingResult:
    """One recording with the mode of ``opts`` (``auto`` resolved here by length and model), its tasks the mask
    ``task_mask`` [1, 1+K]; ``biasing``: the recording's biasing list (a call's CRM record), or None."""
    mode = opts.mode
    if mode == "auto":
        mode = "none" if reader.duration <= opts.max_segment_s else ("stream" if _streams(s2t) else "segment")
    if mode == "stream":
        if not hasattr(s2t, "chunk_samples"):
            raise ValueError(
                "--long_form stream needs the streaming decoder: add --streaming true --chunk_size_ms "
                "N (a model trained multi-chunk), or use --long_form segment"
            )
        return decode_streamed(s2t, reader, recording, opts, task_mask, biasing=biasing)
    return decode_segmented(s2t, reader, recording, opts, task_mask, whole=mode == "none", biasing=biasing)


def decode_recordings(s2t, entries: Dict[str, str], opts: LongFormOptions, task_mask, biasing_of=None):
    """(results, failures, stats): every recording tried with the tasks ``task_mask`` [1, 1+K]; failures are
    (recording, one-line reason). ``biasing_of``: recording id -> its biasing list (or None)."""
    results: List[RecordingResult] = []
    failures: List[tuple] = []
    stats = []
    for rec, entry in entries.items():
        t0 = time.perf_counter()
        try:
            reader = RecordingReader(entry, s2t.sample_rate)
            result = decode_recording(
                s2t, reader, rec, opts, task_mask, biasing=None if biasing_of is None else biasing_of(rec)
            )
        except DataError as e:
            logging.error(f"{rec}: not decoded: {e}")
            failures.append((rec, str(e)))
            continue
        if result.note:
            logging.warning(f"{rec}: empty hypothesis: {result.note}")
        results.append(result)
        stats.append(
            {
                "recording": rec,
                "audio_s": round(result.duration, 3),
                "pieces": len(result.segments),
                "wall_s": round(time.perf_counter() - t0, 3),
                "note": result.note,
            }
        )
    return results, failures, stats


def _lines(s2t, results: List[RecordingResult]) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {k: [] for k in ("text", "token", "token_int", "score", "segments", "segment_text")}
    text_of = (lambda toks: s2t.tokenizer.tokens2text(toks)) if s2t.tokenizer is not None else (" ".join)
    for r in results:
        out["text"].append(f"{r.recording} {text_of(r.tokens)}".rstrip())
        out["token"].append(f"{r.recording} {' '.join(r.tokens)}".rstrip())
        out["token_int"].append(f"{r.recording} {' '.join(map(str, s2t.converter.tokens2ids(r.tokens)))}".rstrip())
        out["score"].append(f"{r.recording} {sum(s.score for s in r.segments)}")
        for s in r.segments:
            seg_id = f"{r.recording}-{int(round(s.start * 100)):07d}-{int(round(s.end * 100)):07d}"
            out["segments"].append(f"{seg_id} {r.recording} {s.start:.3f} {s.end:.3f}")
            out["segment_text"].append(f"{seg_id} {text_of(s.tokens)}".rstrip())
    return out


def write_results(
    s2t, results: List[RecordingResult], out_dir: Path, stats, write_times: bool = True, labels: str = "alternate"
) -> None:
    """``out_dir`` (``<output_dir>/1best_recog``) written whole: a temporary sibling moved into place."""
    from espnet2_ext.data.kaldi_dir import c_sort_key
    from espnet2_ext.text.time_outputs import TimedUtterance, write_time_outputs

    results = sorted(results, key=lambda r: c_sort_key(r.recording))
    with atomic_dir(out_dir) as tmp:
        for name, lines in _lines(s2t, results).items():
            (tmp / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        (tmp / "long_form.json").write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
        if write_times:
            subword = getattr(s2t.asr_train_args, "token_type", "bpe") != "word"
            utts = [TimedUtterance(r.recording, r.tokens, r.times, s2t.frame_shift, r.duration) for r in results]
            write_time_outputs(tmp, utts, s2t.spec, subword, labels)


def decode_recordings_to_dir(s2t, args, output_dir: str, task_mask, biasing_of=None) -> List[RecordingResult]:
    """``asr_inference``'s long-form path: the ``wav.scp`` of ``--data_path_and_name_and_type`` decoded
    recording by recording into ``<output_dir>/1best_recog``, every recording with the tasks ``task_mask``
    [1, 1+K] (a tasks file names utterances, not recordings: not used here); ``biasing_of``: recording id ->
    biasing list."""
    from espnet2_ext.data.kaldi_dir import read_table

    scp = sound_scp(args)
    if scp is None:
        raise ValueError("--long_form needs a 'sound' input: --data_path_and_name_and_type data/x/wav.scp,speech,sound")
    entries = read_table(scp, strict=False).values
    results, failures, stats = decode_recordings(s2t, entries, options_of(args), task_mask, biasing_of)
    write_results(
        s2t,
        results,
        Path(output_dir) / "1best_recog",
        stats,
        getattr(args, "write_times", True),
        getattr(args, "rttm_labels", "alternate"),
    )
    if failures:
        rec, why = failures[0]
        raise DataError(
            f"{len(failures)} of {len(entries)} recordings could not be decoded (first: {rec}: {why}); "
            f"the other {len(entries) - len(failures)} are in {output_dir}/1best_recog"
        )
    return results


def add_long_form_arguments(parser) -> None:
    from espnet2_ext.asr.long_form import CUT_RULES, LONG_FORM_MODES
    from espnet2_ext.asr.vad import VADS

    g = parser.add_argument_group("Long-form decoding (whole recordings)")
    g.add_argument(
        "--long_form",
        default="auto",
        choices=LONG_FORM_MODES,
        help="segment: VAD cut and merge, pieces decoded batched; stream: the streaming decoder over the "
        "whole recording (--streaming true); auto: recordings longer than --max_segment_s are "
        "segmented (streamed for a multi-chunk model decoded with --streaming), shorter ones decoded "
        "as they are; none: every input decoded whole (memory grows with its length)",
    )
    g.add_argument("--max_segment_s", type=float, default=20.0, help="longest piece decoded at once (seconds)")
    g.add_argument(
        "--target_segment_s",
        type=float,
        default=10.0,
        help="speech regions are merged into pieces while a piece stays this long (seconds)",
    )
    g.add_argument(
        "--cut_rule",
        default="context",
        choices=CUT_RULES,
        help="tags at cuts: context = decode each piece with --context_s s of the audio before it and "
        "take the [ENDP]/[SCD] at the cut from that decode; none = pieces alone; scd = [SCD] at "
        "every cut",
    )
    g.add_argument("--context_s", type=float, default=2.0, help="seconds of audio before a piece (cut_rule context)")
    g.add_argument("--vad", default="silero", choices=VADS, help="speech detection for --long_form segment")
