"""Draw one decoded conversation as a PNG: waveform, reference turns vs. hypothesis segments, endpoints, entities.

    python -m espnet2_ext.bin.plot_conversation --data_dir dump/raw/test --decode_dir exp/a/decode_asr+scd+endp/test \
        --utt en-c01-test-c0003 --out conversation.png

Lanes, top to bottom, on the utterance's clock (seconds from its start): the waveform; the reference turns
(``utt2turns``, coloured by speaker); the hypothesis segments cut at ``[SCD]`` (labels as in the RTTM); endpoints
(reference ends of speech vs. hypothesis ``[ENDP]``); entity spans with their words; the hypothesis words. Without
``--utt`` the first utterance of the data dir with reference turns and at least two speakers is drawn.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.common import DataError


def _events_record(decode_dir: Path, utt: str) -> dict:
    import json

    from espnet2_ext.text.time_outputs import EVENTS_NAME

    path = next((p for p in (decode_dir / EVENTS_NAME, decode_dir / "1best_recog" / EVENTS_NAME) if p.is_file()), None)
    if path is None:
        raise DataError(
            f"{decode_dir}: no {EVENTS_NAME} (nor 1best_recog/{EVENTS_NAME}); decode with "
            f"espnet2_ext.bin.asr_inference (--write_times true)"
        )
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                if rec.get("utt") == utt:
                    return rec
    raise DataError(f"{path}: no record for utterance {utt}")


def pick_utterance(turns: dict) -> str:
    for utt in sorted(turns):
        if len({t.speaker for t in turns[utt]}) >= 2:
            return utt
    if not turns:
        raise DataError("the data dir has no utt2turns lines: nothing to compare; give --utt")
    return sorted(turns)[0]


def plot(out: Path, audio, rate: int, turns: Sequence, record: Optional[dict], title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import numpy as np

    from espnet2_ext.common import atomic_output

    off = float(record.get("offset", 0.0)) if record else 0.0
    lanes = ["waveform", "reference turns", "hypothesis segments", "endpoints", "entities", "words"]
    fig, axes = plt.subplots(
        len(lanes),
        1,
        figsize=(14, 1.3 * len(lanes) + 0.6),
        sharex=True,
        gridspec_kw={"height_ratios": [2.2, 1, 1, 1, 1, 1]},
    )
    x = np.asarray(audio, dtype=float).reshape(-1)
    t = np.arange(x.size) / float(rate)
    axes[0].plot(t, x, linewidth=0.4, color="0.3")
    speakers = sorted({tr.speaker for tr in turns} | {s[2] for s in (record or {}).get("segments", [])})
    colors = {s: plt.cm.tab10(i % 10) for i, s in enumerate(speakers)}
    for tr in turns:
        axes[1].broken_barh([(tr.start, tr.end - tr.start)], (0.1, 0.8), color=colors[tr.speaker], alpha=0.7)
        axes[1].text(tr.start, 0.5, f" {tr.speaker}", va="center", fontsize=7)
    for tr in turns:
        axes[3].axvline(tr.end, ymin=0.5, ymax=1.0, color="tab:blue", linewidth=1.5)
    if record:
        for s, e, label in record.get("segments", []):
            axes[2].broken_barh([(s - off, e - s)], (0.1, 0.8), color=colors[label], alpha=0.7)
            axes[2].text(s - off, 0.5, f" {label}", va="center", fontsize=7)
        for c in record.get("speaker_changes", []):
            axes[2].axvline(c - off, color="k", linestyle="--", linewidth=1)
        for e in record.get("endpoints", []):
            axes[3].axvline(e - off, ymin=0.0, ymax=0.5, color="tab:red", linewidth=1.5)
        for ent in record.get("entities", []):
            axes[4].broken_barh(
                [(ent["start"] - off, max(ent["end"] - ent["start"], 0.02))], (0.2, 0.6), color="tab:purple", alpha=0.6
            )
            axes[4].text(ent["start"] - off, 0.5, f" {ent['text']}", va="center", fontsize=8)
        for k, (w, s, _) in enumerate(record.get("words", [])):
            axes[5].text(s - off, 0.25 + 0.5 * (k % 2), w, fontsize=7, rotation=0)
    axes[3].text(0.0, 0.75, "ref end of speech", color="tab:blue", fontsize=7, transform=axes[3].transAxes)
    axes[3].text(0.0, 0.1, "hyp [ENDP]", color="tab:red", fontsize=7, transform=axes[3].transAxes)
    for ax, name in zip(axes, lanes):
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        if ax is not axes[0]:
            ax.set_yticks([])
            ax.set_ylim(0, 1)
    axes[-1].set_xlabel("seconds from the start of the utterance" + (f" (recording offset {off:.2f} s)" if off else ""))
    axes[-1].set_xlim(0, max(t[-1] if t.size else 0.0, max((tr.end for tr in turns), default=0.0)))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(out)
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out


def run(argv: Optional[List[str]] = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True, help="data dir with wav.scp (plain files) and utt2turns")
    p.add_argument("--decode_dir", default=None, help="decode dir (or its 1best_recog) holding events.jsonl")
    p.add_argument("--utt", default=None, help="utterance to draw (default: first with two or more speakers)")
    p.add_argument("--out", required=True, help="PNG to write")
    args = p.parse_args(argv)
    from espnet2_ext.data.audio_io import load_audio
    from espnet2_ext.data.kaldi_dir import read_data_dir

    utts = {u.utt_id: u for u in read_data_dir(args.data_dir)}
    turns = {k: u.turns for k, u in utts.items() if u.turns}
    utt = args.utt or pick_utterance(turns)
    if utt not in utts:
        raise DataError(f"{args.data_dir}: no utterance {utt}")
    u = utts[utt]
    audio, rate = load_audio(u.wav)  # audio: [T, C]
    if u.start is not None:
        audio = audio[int(u.start * rate) : int(u.end * rate)]
    record = _events_record(Path(args.decode_dir), utt) if args.decode_dir else None
    out = plot(Path(args.out), audio.mean(axis=1), rate, turns.get(utt, ()), record, f"{utt}")
    print(f"plot_conversation: wrote {out}")
    return out


main = cli_main(run, prog="plot_conversation: error", errors=(ValueError,))  # DataError is a ValueError

if __name__ == "__main__":
    sys.exit(main())
