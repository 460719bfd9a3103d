"""The streaming trade-off table and its record (reporting/streaming_table.py) from decode dirs as
decode_streaming_to_dir and tokenverse_score leave them."""

import json

import pytest

from espnet2_ext.bin import streaming_table as cli
from espnet2_ext.common import DataError
from espnet2_ext.reporting.streaming_table import HEADER, latency_table, streaming_record


def _decode(root, size, wer, act="decode_asr+scd+endp+ner+lid", test_set="test", rtf=0.25):
    d = root / f"decode_streaming_{size}" / act / test_set
    d.mkdir(parents=True)
    stats = {"chunk_size_ms": size, "left_chunks": 2, "attention_sink_frames": 4, "algorithmic_latency_ms": 165.0}
    (d / "streaming_stats.json").write_text(json.dumps({**stats, "rtf": rtf}))
    score = {"wer": wer, "scd_f1": 75.125, "time": {"endp": {"ep50": 0.088, "ep90": None}}}
    (d / "score.json").write_text(json.dumps(score))
    return str(d)


def test_table_rows_and_record(tmp_path):
    dirs = [_decode(tmp_path, "160", 50.625), _decode(tmp_path, "full", 40.0, rtf=None)]
    table = latency_table(dirs).splitlines()
    assert table[0] == "| " + " | ".join(HEADER) + " |"
    assert table[2] == "| 160 | 2 | 4 | 165.00 | 0.250 | 50.62 | 75.12 | - | - | - | 88.00 | - |"
    assert table[3].startswith("| full | 2 | 4 | 165.00 | - | 40.00 |")
    rec = streaming_record(dirs, "m", "conf/x.yaml", "abc1234")
    assert (rec["model"], rec["test_set"], rec["activation"], rec["config"]) == (
        "m",
        "test",
        "asr+scd+endp+ner+lid",
        "conf/x.yaml",
    )
    assert [r["RTF (1 core)"] for r in rec["rows"]] == ["0.250", "-"] and rec["columns"] == list(HEADER)


def test_record_of_mixed_sets_or_missing_scores_is_refused(tmp_path):
    a = _decode(tmp_path, "160", 50.0)
    b = _decode(tmp_path, "320", 50.0, test_set="dev")
    with pytest.raises(DataError, match="one test set and one activation"):
        streaming_record([a, b], "m", None, None)
    (tmp_path / "decode_streaming_160" / "decode_asr+scd+endp+ner+lid" / "test" / "score.json").unlink()
    with pytest.raises(FileNotFoundError, match="score.json: missing"):
        latency_table([a])


def test_cli_writes_the_table(tmp_path, capsys):
    out = tmp_path / "t.md"
    assert cli.main([_decode(tmp_path, "640", 30.0), "--out", str(out)]) == 0
    assert out.read_text().splitlines()[2].startswith("| 640 |")
    assert cli.main([str(tmp_path / "nowhere")]) == 1
    assert "streaming_table: error:" in capsys.readouterr().err
