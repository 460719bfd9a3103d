"""Biasing list files and utt2biasing (espnet2_ext.text.biasing_list): format, normalisation, bad input."""

import pytest

from espnet2_ext.common import DataError
from espnet2_ext.text.biasing_list import lists_per_utterance, phrases_list, read_biasing_list, read_utt2biasing


def test_list_file_format(tmp_path):
    f = tmp_path / "list.txt"
    f.write_text("# CRM record\nJohn Smith,\n\nhauptstraße zwölf :2.5\njohn   smith\n  \nparis :1\n", encoding="utf-8")
    lst = read_biasing_list(f)
    assert lst.texts == ["john smith", "hauptstraße zwölf", "paris"]
    assert [p.weight for p in lst.phrases] == [None, 2.5, 1.0]
    assert lst.skipped == {"empty": 2, "duplicate": 1, "comment": 1}
    assert lst.phrases[1].where == f"{f}:4"


@pytest.mark.parametrize(
    "line,msg",
    [("john :abc", "not a number"), ("john :nan", "finite"), ("[NE] john", "task tag"), (":2.0", "without a phrase")],
)
def test_bad_lines_name_file_and_line(tmp_path, line, msg):
    f = tmp_path / "l.txt"
    f.write_text(f"anna\n{line}\n", encoding="utf-8")
    with pytest.raises(DataError, match=msg) as e:
        read_biasing_list(f)
    assert f"{f}:2" in str(e.value) and "\n" not in str(e.value)


def test_not_utf8_and_missing(tmp_path):
    f = tmp_path / "l.txt"
    f.write_bytes(b"caf\xe9\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_biasing_list(f)
    with pytest.raises(DataError, match="not found"):
        read_biasing_list(tmp_path / "nope.txt")


def test_utt2biasing_files_inline_and_recordings(tmp_path):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "shared.txt").write_text("anna berg\n", encoding="utf-8")
    u2b = tmp_path / "utt2biasing"
    u2b.write_text("u1 lists/shared.txt\nu2 lists/shared.txt\nrec1 | Café Oslo | olaf :3\n", encoding="utf-8")
    got = read_utt2biasing(u2b)
    assert got["u1"] is got["u2"]  # one file read once: one object, one graph
    assert got["rec1"].texts == ["café oslo", "olaf"] and got["rec1"].phrases[1].weight == 3.0
    per = lists_per_utterance(got, ["u1", "u2", "u3"], {"u1": "rec1", "u3": "rec1"})
    assert per["u1"].texts == ["café oslo", "olaf", "anna berg"]  # recording's phrases + the utterance's own
    assert per["u2"] is got["u2"] and per["u3"] is got["rec1"]


def test_utt2biasing_errors(tmp_path):
    u2b = tmp_path / "utt2biasing"
    u2b.write_text("u1 missing.txt\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"utt2biasing:1: list file 'missing.txt' not found"):
        read_utt2biasing(u2b)
    u2b.write_text("u1 | a\nu1 | b\n", encoding="utf-8")
    with pytest.raises(DataError, match="listed twice"):
        read_utt2biasing(u2b)
    u2b.write_text("ghost | a\n", encoding="utf-8")
    with pytest.raises(DataError, match="'ghost' is neither an utterance nor a recording"):
        lists_per_utterance(read_utt2biasing(u2b), ["u1"], {}, source=str(u2b))


def test_phrases_list_from_python():
    lst = phrases_list(["Anna Berg", "anna berg", ""])
    assert lst.texts == ["anna berg"] and lst.skipped["duplicate"] == 1 and lst.skipped["empty"] == 1
