"""Decoding: CLI layout and options, task activation, batched == unbatched, constrained decoding, offline loading
of packed models (ours and ESPnet's own loader)."""

import socket

import jiwer
import pytest
import soundfile as sf
import torch
from tiny_setup import UTTS, pack_model, padded_batch

from espnet2_ext.task_spec import TaskSpec

SPEC = TaskSpec.default()


def wav(data, utt):
    x, sr = sf.read(data / "wav" / f"{utt}.wav", dtype="float32")
    return torch.from_numpy(x)


def texts(results):
    return [r[0][0] for r in results]


@pytest.mark.parametrize("search", ["modified_beam_search", "greedy"])
def test_batched_decoding_equals_one_by_one(tiny, search):
    """Same waveforms (zero-extended to one length, so S3PRL's padding of the last CNN frame plays no part),
    different task masks per utterance: batching must change nothing."""
    make, data, _ = tiny
    s2t = make(transducer_conf={"search_type": search})
    speech, _ = padded_batch(data)
    lens = torch.full((speech.size(0),), speech.size(1))
    masks = torch.tensor([SPEC.mask(t.split()) for _, _, t in UTTS])
    batched = s2t.decode_batch(speech, lens, masks)
    single = [s2t(speech[i], task_mask=masks[i : i + 1])[0] for i in range(len(UTTS))]
    assert [r[0][2] for r in batched] == [r[2] for r in single]
    assert [r[0][3].score for r in batched] == pytest.approx([r[3].score for r in single], abs=1e-4)


def test_the_model_learned_and_beam_is_not_worse_than_greedy(tiny):
    from espnet2_ext.asr.speech2text import TokenVerseSpeech2Text

    make, data, out = tiny
    refs = [txt for _, txt, _ in UTTS]
    speech, lens = padded_batch(data)
    # partially annotated utterances were trained without scd/endp/ner: decode each with its own tasks
    masks = torch.tensor([SPEC.mask(t.split()) for _, _, t in UTTS])
    wer = {}
    for search in ("greedy", "modified_beam_search"):
        hyps = texts(make(transducer_conf={"search_type": search}).decode_batch(speech, lens, masks))
        wer[search] = jiwer.wer(refs, hyps)
    torch.manual_seed(0)
    untrained = TokenVerseSpeech2Text(
        asr_train_config=out / "config.yaml", asr_model_file=None, transducer_conf={"search_type": "greedy"}
    )
    wer["untrained"] = jiwer.wer(refs, texts(untrained.decode_batch(speech, lens, masks)))
    # The beam transcribes the training utterances; greedy's own figure depends on the CPU's kernels (the tiny
    # model's float sums): below 0.5 on an AVX-512 machine, 0.57 on an AVX2-only one, against 5.4 untrained.
    assert wer["modified_beam_search"] < 0.5, wer
    assert wer["greedy"] < wer["untrained"] / 4, wer
    assert wer["modified_beam_search"] <= wer["greedy"], wer


def test_task_activation_and_constrained_decoding(tiny):
    make, data, _ = tiny
    speech, lens = padded_batch(data)
    s2t = make()
    for act in (["asr"], ["asr", "lid"], ["asr", "scd", "endp"], ["asr", "ner"]):
        for text in texts(s2t.decode_batch(speech, lens, task_activation=act)):
            tasks = {SPEC.task_of(w) for w in text.split()} - {None}
            assert tasks <= set(act), (act, text)
    with pytest.raises(ValueError, match="--task_activation: unknown task.s. sentiment; valid tasks are: asr, scd"):
        s2t.parse_activation("asr,sentiment")
    with pytest.raises(ValueError, match="empty"):
        s2t.parse_activation("")


def test_espnet_search_types_still_work(tiny):
    make, data, _ = tiny
    s2t = make(transducer_conf={"search_type": "default"}, task_activation="asr")
    text = s2t(wav(data, UTTS[0][0]))[0][0]
    assert not any(SPEC.is_task_token(w) for w in text.split())  # constrained through the masked joint


@pytest.mark.parametrize("search", ["greedy", "modified_beam_search", "default"])
def test_blank_penalty_reaches_every_search(tiny, search):
    """transducer_conf.blank_penalty: a large one leaves blank rarely chosen, so every search (ours and ESPnet's,
    through the masked joint) emits more tokens; constrained decoding still holds."""
    make, data, _ = tiny
    x = wav(data, UTTS[0][0])
    # ESPnet's "default" with beam 1 is ESPnet's greedy search (one symbol per frame, as ours): its beam search
    # expands symbols within a frame until a blank-ended hypothesis wins, which a huge penalty makes endless
    kw = {"beam_size": 1} if search == "default" else {}
    plain = make(transducer_conf={"search_type": search}, task_activation="asr", **kw)(x)[0][2]
    pushed = make(transducer_conf={"search_type": search, "blank_penalty": 50.0}, task_activation="asr", **kw)
    ids = pushed(x)[0][2]
    assert len(ids) > len(plain)
    assert not any(SPEC.is_task_token(pushed.token_list[i].lstrip("\u2581")) for i in ids)
    if search != "modified_beam_search":  # one symbol per frame at most, and blank lost everywhere
        enc, lens = pushed.asr_model.encode(
            x[None], torch.tensor([x.numel()]), task_mask=torch.tensor([SPEC.mask(["asr"])])
        )
        assert len(ids) == int(lens[0])


def test_blank_penalty_options(tiny, tmp_path):
    from espnet2_ext.bin._asr_inference_args import get_parser
    from espnet2_ext.bin.asr_inference import build_speech2text

    make, _, out = tiny
    with pytest.raises(ValueError, match="blank_penalty must be a finite number >= 0"):
        make(transducer_conf={"blank_penalty": -1})
    common = [
        "--output_dir",
        "x",
        "--data_path_and_name_and_type",
        "a,speech,sound",
        "--asr_train_config",
        str(out / "config.yaml"),
        "--asr_model_file",
        str(out / "valid.loss.best.pth"),
    ]
    # the flag overrides the config's transducer_conf.blank_penalty; without it the config's value holds
    (tmp_path / "decode.yaml").write_text("transducer_conf:\n  search_type: greedy\n  blank_penalty: 2.0\n")
    conf = ["--config", str(tmp_path / "decode.yaml")]
    assert build_speech2text(get_parser().parse_args(common + conf + ["--blank_penalty", "0.5"])).blank_penalty == 0.5
    s2t = build_speech2text(get_parser().parse_args(common + conf))
    assert s2t.blank_penalty == 2.0 and s2t.search_type == "greedy"


def test_span_grammar_options(tiny, tmp_path):
    from espnet2_ext.bin._asr_inference_args import get_parser
    from espnet2_ext.bin.asr_inference import build_speech2text

    make, data, out = tiny
    s2t = make(transducer_conf={"search_type": "greedy", "span_grammar": True})
    g = s2t._span_grammar()
    ids = {t.lstrip("\u2581"): i for i, t in enumerate(s2t.token_list)}
    assert (g.open_id, g.close_id) == (ids["[NE]"], ids["[/NE]"])
    assert {ids["[ENDP]"], ids["[SCD]"], ids["[EN]"]} <= set(g.closing) and ids["[NE]"] not in g.closing
    assert make()._span_grammar() is None  # off unless asked for
    for text, *_ in s2t(wav(data, UTTS[0][0])):  # decodes through the rule
        assert isinstance(text, str)
    with pytest.raises(
        ValueError, match="span_grammar works with the searches modified_beam_search, greedy, not ESPnet's 'default'"
    ):
        make(transducer_conf={"search_type": "default", "span_grammar": True})
    with pytest.raises(ValueError, match="span_grammar must be true or false"):
        make(transducer_conf={"span_grammar": "yes"})
    common = [
        "--output_dir",
        "x",
        "--data_path_and_name_and_type",
        "a,speech,sound",
        "--asr_train_config",
        str(out / "config.yaml"),
        "--asr_model_file",
        str(out / "valid.loss.best.pth"),
    ]
    (tmp_path / "decode.yaml").write_text("transducer_conf:\n  span_grammar: true\n")
    conf = ["--config", str(tmp_path / "decode.yaml")]
    assert build_speech2text(get_parser().parse_args(common + conf)).span_grammar is True
    assert build_speech2text(get_parser().parse_args(common + conf + ["--span_grammar", "false"])).span_grammar is False


def test_cli_layout_and_per_utterance_activation(tiny_trained, tmp_path):
    from espnet2_ext.bin.asr_inference import run

    _, data, out = tiny_trained
    common = [
        "--asr_train_config",
        str(out / "config.yaml"),
        "--asr_model_file",
        str(out / "valid.loss.best.pth"),
        "--data_path_and_name_and_type",
        f"{data}/wav.scp,speech,sound",
        "--batch_size",
        "3",
    ]
    run(common + ["--output_dir", str(tmp_path / "all")])
    for name in ("text", "token", "token_int", "score"):
        lines = (tmp_path / "all" / "1best_recog" / name).read_text().splitlines()
        assert [ln.split()[0] for ln in lines] == [u for u, _, _ in UTTS]
    # per-utterance activation from an utt2tasks-style file: asr-only for two utterances
    acts = tmp_path / "utt2tasks"
    acts.write_text("".join(f"{u} {'asr' if i % 2 else 'asr scd endp ner lid'}\n" for i, (u, _, _) in enumerate(UTTS)))
    run(common + ["--data_path_and_name_and_type", f"{acts},tasks,text", "--output_dir", str(tmp_path / "per_utt")])
    lines = (tmp_path / "per_utt" / "1best_recog" / "text").read_text().splitlines()
    for i, line in enumerate(lines):
        if i % 2:
            assert not any(SPEC.is_task_token(w) for w in line.split()[1:]), line
    with pytest.raises(ValueError, match="valid tasks are: asr, scd, endp, ner, lid"):
        run(common + ["--task_activation", "asr,topic", "--output_dir", str(tmp_path / "bad")])
    assert not (tmp_path / "bad" / "1best_recog").exists()


@pytest.mark.parametrize("search", ["greedy", "default"])
def test_the_selection_is_resolved_once_and_both_entries_share_one_core(tiny, search, monkeypatch):
    """Names -> mask in one function (``task_mask``); ``__call__`` and ``decode_batch`` never call each other: both
    hand the mask to ``decode_masked`` (ESPnet's searches too)."""
    from espnet2_ext.asr.speech2text import TokenVerseSpeech2Text

    make, data, _ = tiny
    s2t = make(transducer_conf={"search_type": search}, task_activation="asr,lid")
    assert s2t.task_mask().tolist() == [SPEC.mask(["asr", "lid"])]  # the constructor's selection
    assert s2t.task_mask("ner", 2).tolist() == [SPEC.mask(["asr", "ner"])] * 2  # asr always on
    seen = []
    core = TokenVerseSpeech2Text.decode_masked
    monkeypatch.setattr(
        TokenVerseSpeech2Text, "decode_masked", lambda self, *a, **k: seen.append(a[2]) or core(self, *a, **k)
    )
    x = wav(data, UTTS[0][0])
    with monkeypatch.context() as m:
        m.setattr(
            TokenVerseSpeech2Text, "decode_batch", lambda *a, **k: pytest.fail("__call__ went through decode_batch")
        )
        one = s2t(x, task_activation="asr,scd")
    with monkeypatch.context() as m:
        m.setattr(TokenVerseSpeech2Text, "__call__", lambda *a, **k: pytest.fail("decode_batch went through __call__"))
        batch = s2t.decode_batch(x[None], torch.tensor([x.numel()]), task_activation="asr,scd")
    assert [m.tolist() for m in seen] == [[SPEC.mask(["asr", "scd"])]] * 2
    assert one[0][2] == batch[0][0][2]


def test_cli_decodes_with_the_preprocessors_masks(tiny_trained, tmp_path, monkeypatch):
    """The loader's preprocessor builds each utterance's mask: its tasks-file entry when a tasks file is given,
    else --task_activation; the decode loop hands exactly those masks to the model."""
    from espnet2_ext.asr.speech2text import TokenVerseSpeech2Text
    from espnet2_ext.bin.asr_inference import run

    _, data, out = tiny_trained
    seen = []
    core = TokenVerseSpeech2Text.decode_masked
    monkeypatch.setattr(
        TokenVerseSpeech2Text, "decode_masked", lambda self, *a, **k: seen.append(a[2]) or core(self, *a, **k)
    )
    common = ["--asr_train_config", str(out / "config.yaml"), "--asr_model_file", str(out / "valid.loss.best.pth")]
    common += ["--data_path_and_name_and_type", f"{data}/wav.scp,speech,sound", "--batch_size", "3"]
    run(common + ["--task_activation", "lid", "--output_dir", str(tmp_path / "lid")])
    assert [row for m in seen for row in m.tolist()] == [SPEC.mask(["asr", "lid"])] * len(UTTS)
    seen.clear()
    acts = tmp_path / "utt2tasks"
    acts.write_text("".join(f"{u} {'asr' if i % 2 else 'asr ner'}\n" for i, (u, _, _) in enumerate(UTTS)))
    tasks = ["--data_path_and_name_and_type", f"{acts},tasks,text", "--task_activation", "lid"]
    run(common + tasks + ["--output_dir", str(tmp_path / "per_utt")])
    want = [SPEC.mask(["asr"] if i % 2 else ["asr", "ner"]) for i in range(len(UTTS))]
    assert [row for m in seen for row in m.tolist()] == want  # the file's entries win over --task_activation


@pytest.fixture(scope="module")
def packed(tiny_trained):
    root, _, _ = tiny_trained
    return pack_model(root, root / "model.zip")


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_from_pretrained_offline(tiny_trained, packed, tmp_path, no_network):
    from espnet2_ext.asr.speech2text import TokenVerseSpeech2Text

    _, data, _ = tiny_trained
    ours = TokenVerseSpeech2Text.from_pretrained(str(packed), task_activation="asr,lid")
    text = ours(wav(data, UTTS[0][0]))[0][0]
    assert all(SPEC.task_of(w) in (None, "lid") for w in text.split())


def test_espnet_own_loader_reads_the_packed_model(tiny, packed, no_network):
    from espnet2.bin.asr_inference import Speech2Text

    make, data, _ = tiny
    theirs = Speech2Text.from_pretrained(model_tag=str(packed), beam_size=1)  # espnet_model_zoo unpacking
    ours = make(transducer_conf={"search_type": "greedy"})
    x = wav(data, UTTS[1][0])
    assert theirs(x)[0][2] == ours(x)[0][2]  # ESPnet's beam-1 search == our greedy, all tasks active
