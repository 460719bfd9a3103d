"""plot_conversation: a PNG of one conversation (waveform, reference vs. hypothesis lanes), embedded by the report."""

import json

import numpy as np
import pytest
import soundfile as sf

from espnet2_ext.common import DataError
from espnet2_ext.data.kaldi_dir import Utterance, write_data_dir
from espnet2_ext.data.ref_turns import RefTurn
from espnet2_ext.task_spec import TaskSpec
from espnet2_ext.text.time_outputs import TimedUtterance, write_time_outputs


def _conversation(tmp_path):
    wav = tmp_path / "a-c1.wav"
    sf.write(wav, (0.1 * np.sin(np.arange(16000 * 3) / 5.0)).astype(np.float32), 16000, subtype="PCM_16")
    text = "[EN] hello [NE] maria [/NE] [ENDP] [SCD] fine [ENDP]"
    turns = (RefTurn(0.2, 1.2, "a"), RefTurn(1.6, 2.6, "b"))
    utts = [
        Utterance("a-c1", "a", text, "en", ("asr", "scd", "endp", "ner", "lid"), str(wav), duration=3.0, turns=turns),
        Utterance(
            "a-r1", "a", "[EN] hello", "en", ("asr", "lid"), str(wav), duration=3.0, turns=(RefTurn(0.2, 1.2, "a"),)
        ),
    ]
    data = write_data_dir(utts, tmp_path / "data")
    hyp = tmp_path / "decode" / "1best_recog"
    tokens = ["[EN]", "hello", "[NE]", "maria", "[/NE]", "[ENDP]", "[SCD]", "fine", "[ENDP]"]
    times = [0.0, 0.3, 0.6, 0.62, 0.9, 1.3, 1.5, 1.7, 2.7]
    write_time_outputs(
        hyp,
        [
            TimedUtterance("a-c1", tokens, times, 0.02, 3.0),
            TimedUtterance("a-r1", ["[EN]", "hello"], [0.0, 0.3], 0.02, 3.0),
        ],
        TaskSpec.default(),
        subword=False,
    )
    return data, hyp


def test_events_hold_what_the_plot_draws(tmp_path):
    _, hyp = _conversation(tmp_path)
    rec = json.loads((hyp / "events.jsonl").read_text().splitlines()[0])
    assert rec["entities"] == [{"text": "maria", "start": 0.62, "end": 0.64}]
    assert rec["segments"] == [[0.3, 0.64, "A"], [1.7, 1.72, "B"]] and rec["endpoints"] == [1.3, 2.7]


def test_plot_writes_a_png_and_the_report_embeds_it(tmp_path):
    import matplotlib.image

    from espnet2_ext.bin.plot_conversation import run as plot
    from espnet2_ext.reporting.report import write_report

    data, hyp = _conversation(tmp_path)
    out = plot(["--data_dir", str(data), "--decode_dir", str(hyp.parent), "--out", str(tmp_path / "img" / "c.png")])
    img = matplotlib.image.imread(str(out))
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 1000
    assert img[..., :3].std() > 0.05  # something was drawn, not a blank canvas
    # the default utterance is the one with two speakers
    from espnet2_ext.bin.plot_conversation import pick_utterance
    from espnet2_ext.data.kaldi_dir import read_data_dir

    assert pick_utterance({u.utt_id: u.turns for u in read_data_dir(data)}) == "a-c1"
    with pytest.raises(DataError, match="no record for utterance a-zz|no utterance a-zz"):
        plot(
            [
                "--data_dir",
                str(data),
                "--decode_dir",
                str(hyp.parent),
                "--utt",
                "a-zz",
                "--out",
                str(tmp_path / "x.png"),
            ]
        )
    score = tmp_path / "exp" / "m" / "decode_asr+scd" / "test" / "score.json"
    score.parent.mkdir(parents=True)
    score.write_text(json.dumps({"wer": 10.0, "task_activation": ["asr", "scd"]}))
    report = write_report([tmp_path / "exp"], tmp_path / "RESULTS.md", figures=[out])
    assert "![c](img/c.png)" in report and "Table V" not in report  # no time section: no time table
