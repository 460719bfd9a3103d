"""Emission times: the searches' frames, the frame shift, batched vs one-by-one, forced alignment for ESPnet's
searches, and a real STM + RTTM conversation decoded into CTM/RTTM/events in the recording's clock and scored."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from search_reference import make_enc, make_model
from tiny_setup import UTTS, padded_batch

import espnet2_ext  # noqa: F401  (first: keeps ESPnet's import offline)
from espnet2_ext.asr.timing import force_align_frames
from espnet2_ext.asr.transducer.search import greedy_search_batch, modified_beam_search
from espnet2_ext.asr.transducer.search_common import JointScorer, PredictionNet

LENS = [9, 17, 4, 13, 0, 17]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny matrices, one intra-op thread


def test_search_frames_batched_equal_single_and_well_formed():
    dec, joint = make_model(1, sharpen=2.0)
    x, lens = make_enc(2, LENS)
    for max_sym in (1, 3):
        seqs, frames = greedy_search_batch(x, lens, dec, joint, max_sym_per_frame=max_sym, return_frames=True)
        assert seqs == greedy_search_batch(x, lens, dec, joint, max_sym_per_frame=max_sym)  # same tokens
        for i, n in enumerate(LENS):
            one_seq, one_fr = greedy_search_batch(
                x[i : i + 1, :n], lens[i : i + 1], dec, joint, max_sym_per_frame=max_sym, return_frames=True
            )
            assert (seqs[i], frames[i]) == (one_seq[0], one_fr[0])
            assert len(frames[i]) == len(seqs[i]) and frames[i] == sorted(frames[i])
            assert all(0 <= f < n for f in frames[i])
            if max_sym == 1:  # one symbol per frame at most
                assert len(set(frames[i])) == len(frames[i])
    batched = modified_beam_search(x, lens, dec, joint, beam=4, nbest=3)
    for i, n in enumerate(LENS):
        single = modified_beam_search(x[i : i + 1, :n], lens[i : i + 1], dec, joint, beam=4, nbest=3)[0]
        assert [h.frames for h in batched[i]] == [h.frames for h in single]
        for h in batched[i]:  # modified beam search: exactly one frame per symbol, strictly increasing
            assert len(h.frames) == len(h.yseq) and all(a < b for a, b in zip(h.frames, h.frames[1:]))
            assert all(0 <= f < n for f in h.frames)


def _path_logp(dec, joint, enc, tokens, frames):
    """Log-prob of the RNN-T path emitting tokens[k] at frames[k] (blank closes every frame)."""
    pred, js = PredictionNet(dec, enc.device), JointScorer(joint)
    out, state = pred.start(1)
    outs = [out]
    for tok in tokens:
        out, state = pred.step(torch.tensor([tok]), state)
        outs.append(out)
    d, e = js.dec(torch.cat(outs)), js.enc(enc)
    logp = torch.log_softmax(js.logits(e[:, None], d[None]), dim=-1)  # [T, U+1, V]
    total, u = 0.0, 0
    for t in range(enc.size(0)):
        while u < len(tokens) and frames[u] == t:
            total += float(logp[t, u, tokens[u]])
            u += 1
        total += float(logp[t, u, dec.blank_id])
    return total


def test_forced_alignment_is_the_best_path():
    dec, joint = make_model(3, sharpen=2.0)
    x, _ = make_enc(4, [5])
    tokens = [3, 7, 3]
    got = force_align_frames(x[0], dec, joint, tokens)
    every = [list(f) for f in itertools.combinations_with_replacement(range(5), len(tokens))]
    best = max(every, key=lambda f: _path_logp(dec, joint, x[0], tokens, f))
    assert got == best
    # greedy's own alignment can never beat it
    seqs, frames = greedy_search_batch(x, torch.tensor([5]), dec, joint, return_frames=True)
    if seqs[0]:
        forced = force_align_frames(x[0], dec, joint, seqs[0])
        assert _path_logp(dec, joint, x[0], seqs[0], forced) >= _path_logp(dec, joint, x[0], seqs[0], frames[0]) - 1e-9


# ------------------------------------------------------------------------------------------------ trained model
def test_frame_shift_comes_from_the_cnn_strides(tiny):
    from espnet2_ext.upstream.xlsr_standin import model_cfg_for

    s2t = tiny[0]()
    hop = int(np.prod([stride for _, _, stride in eval(model_cfg_for("tiny")["conv_feature_layers"])]))
    assert s2t.frame_shift == pytest.approx(hop / 16000.0)


@pytest.mark.parametrize("search", ["modified_beam_search", "greedy"])
def test_batched_and_single_decoding_give_the_same_frames(tiny, search):
    make, data, _ = tiny
    s2t = make(transducer_conf={"search_type": search})
    # zero-extended to one length (as in test_inference), so S3PRL's padding of the last CNN frame plays no part
    speech, _ = padded_batch(data)  # speech: [B, S]
    xs = list(speech)
    batched = s2t.decode_batch(speech, torch.full((len(xs),), speech.size(1)))
    for x, res in zip(xs, batched):
        single = s2t.decode_batch(x.view(1, -1), torch.tensor([len(x)]))[0]
        assert res[0][2] == single[0][2] and res[0][3].frames == single[0][3].frames
        n_frames = len(x) / 16000.0 / s2t.frame_shift
        assert all(0 <= f < n_frames for f in res[0][3].frames)


def _decode(out_dir, tiny_trained, data_dir, *extra):
    from espnet2_ext.bin.asr_inference import run

    _, _, out = tiny_trained
    run(
        [
            "--asr_train_config",
            str(out / "config.yaml"),
            "--asr_model_file",
            str(out / "valid.loss.best.pth"),
            "--data_path_and_name_and_type",
            f"{data_dir}/wav.scp,speech,sound",
            "--batch_size",
            "2",
            "--output_dir",
            str(out_dir),
            *extra,
        ]
    )
    return Path(out_dir) / "1best_recog"


def test_cli_times_match_frames_times_shift(tiny_trained, tiny, tmp_path):
    _, data, _ = tiny_trained
    hyp = _decode(tmp_path / "dec", tiny_trained, data, "--search_type", "greedy")
    s2t = tiny[0](transducer_conf={"search_type": "greedy"})
    shift = s2t.frame_shift
    records = {json.loads(line)["utt"]: json.loads(line) for line in (hyp / "events.jsonl").read_text().splitlines()}
    assert sorted(records) == sorted(u for u, _, _ in UTTS)
    for utt, _, _ in UTTS:
        x = torch.from_numpy(sf.read(data / "wav" / f"{utt}.wav", dtype="float32")[0])
        res = s2t.decode_batch(x.view(1, -1), torch.tensor([len(x)]))[0][0]
        rec = records[utt]
        assert rec["tokens"] == res[1] and rec["frame_shift"] == pytest.approx(shift)
        for t, f in zip(rec["token_times"], res[3].frames):
            assert abs(t - f * shift) < shift  # within one frame shift of emission frame x shift
    # ESPnet's own search: frames from a forced alignment of its hypothesis
    hyp2 = _decode(tmp_path / "dec_espnet", tiny_trained, data, "--search_type", "default", "--beam_size", "2")
    for line in (hyp2 / "events.jsonl").read_text().splitlines():
        r = json.loads(line)
        assert r["token_times"] == sorted(r["token_times"]) and len(r["token_times"]) == len(r["tokens"])
        assert all(0 <= t <= r["duration"] for t in r["token_times"])


# ------------------------------------------------------------------------------------------------ STM + RTTM call
def _conversation(tiny_trained, root: Path):
    """One recording made of the tiny utterances: two two-speaker chunks separated by a long pause."""
    _, data, _ = tiny_trained
    pieces, segs, t = [np.zeros(8000, dtype=np.float32)], [], 0.5
    plan = [
        ("spk1-u1", "A", "hello maria"),
        ("spk2-u3", "B", "hello fine"),
        (None, None, 3.5),
        ("spk1-u2", "A", "guten tag berlin"),
        ("spk2-u4", "B", "guten thanks"),
    ]
    for utt, spk, words in plan:
        if utt is None:
            pieces.append(np.zeros(int(words * 16000), dtype=np.float32))
            t += words
            continue
        x = sf.read(data / "wav" / f"{utt}.wav", dtype="float32")[0]
        segs.append((spk, t, t + len(x) / 16000, words))
        pieces += [x, np.zeros(4800, dtype=np.float32)]
        t += len(x) / 16000 + 0.3
    (root / "audio").mkdir(parents=True)
    sf.write(root / "audio" / "call1.wav", np.concatenate(pieces), 16000, subtype="PCM_16")
    (root / "call.stm").write_text("".join(f"call1 1 {spk} {s:.2f} {e:.2f} <o,f0,male> {w}\n" for spk, s, e, w in segs))
    (root / "call.rttm").write_text(
        "".join(f"SPEAKER call1 1 {s:.2f} {e - s:.2f} <NA> <NA> spk{spk} <NA> <NA>\n" for spk, s, e, _ in segs)
    )
    return segs


def test_stm_rttm_conversation_decodes_in_the_recording_clock_and_is_scored(tiny_trained, tmp_path):
    from pyannote.database.util import load_rttm

    from espnet2_ext.bin.format_data_dir import format_data_dir
    from espnet2_ext.bin.plot_conversation import run as plot
    from espnet2_ext.bin.tokenverse_score import run as score
    from espnet2_ext.corpora.importers.stm_conversations import import_stm
    from espnet2_ext.data.kaldi_dir import read_data_dir
    from espnet2_ext.data.validate_dir import validate_data_dir

    segs = _conversation(tiny_trained, tmp_path / "src")
    import_stm(
        tmp_path / "src" / "call.stm",
        tmp_path / "data",
        audio_dir=tmp_path / "src" / "audio",
        rttm=tmp_path / "src" / "call.rttm",
        lang="en",
    )
    validate_data_dir(tmp_path / "data", check_audio=True)
    raw = read_data_dir(tmp_path / "data")
    assert len(raw) == 2 and raw[1].start > 5.0  # the second chunk starts late in the recording
    # reference turns are in the utterance's clock: the chunk's first turn starts at 0
    # (the STM/RTTM files carry times to 2 decimals)
    second = round(segs[3][1], 2) - round(segs[2][1], 2)
    assert [(t.speaker, t.start) for t in raw[1].turns] == [
        ("call1-spkA", 0.0),
        ("call1-spkB", pytest.approx(second, abs=1e-6)),
    ]
    dump = tmp_path / "dump" / "call"
    format_data_dir(str(tmp_path / "data"), str(dump))
    assert (dump / "orig_segments").is_file() and (dump / "utt2turns").is_file() and not (dump / "segments").exists()

    hyp = _decode(tmp_path / "exp" / "m" / "decode_asr+scd+endp+ner+lid" / "call", tiny_trained, dump)
    events = [json.loads(line) for line in (hyp / "events.jsonl").read_text().splitlines()]
    by_utt = {u.utt_id: u for u in raw}
    for r in events:  # every time of an utterance lies inside its segment of the recording
        u = by_utt[r["utt"]]
        assert r["recording"] == "call1" and r["offset"] == pytest.approx(u.start, abs=1e-3)
        assert all(u.start - 1e-3 <= t <= u.end + 0.05 for t in r["token_times"])
    # RTTM: pyannote's own loader reads it as it is
    rttm_text = (hyp / "rttm").read_text()
    if rttm_text.strip():
        ann = load_rttm(str(hyp / "rttm"))["call1"]
        assert set(ann.labels()) <= {"A", "B"} and ann.get_timeline().extent().end <= segs[-1][2] + 0.1
    # CTM: NIST layout '<file> <channel> <start> <dur> <word>', sorted by start, recording clock
    ctm = [line.split() for line in (hyp / "ctm").read_text().splitlines()]
    assert all(len(f) == 5 and f[0] == "call1" and f[1] == "1" and float(f[3]) > 0 for f in ctm)
    assert [float(f[2]) for f in ctm] == sorted(float(f[2]) for f in ctm)
    # scored in time from the dumped data dir's utt2turns
    result = score(
        [
            "--ref",
            str(dump / "text"),
            "--hyp",
            str(hyp / "text"),
            "--task_activation",
            "asr,scd,endp,ner,lid",
            "--out_json",
            str(hyp.parent / "score.json"),
        ]
    )
    t = result["time"]
    assert t["scd"]["n_utts"] == 2 and t["scd"]["collar_0.25"]["n_ref"] == 2
    assert t["endp"]["n_ref"] == 4 and t["endp"]["n_detected"] + t["endp"]["missed"] == 4
    # and drawn
    png = plot(["--data_dir", str(dump), "--decode_dir", str(hyp.parent), "--out", str(tmp_path / "call.png")])
    import matplotlib.image

    img = matplotlib.image.imread(str(png))
    assert img.shape[0] > 300 and img.shape[1] > 1000
