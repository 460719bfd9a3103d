"""bin/extend_model: growing a trained model by a task and a language (issue #15).

The extended, untrained model must decode exactly like the base model while the new task is inactive (constrained
decoding), its tables must grow by the documented mapping, it must train with the ordinary asr_train
(--init_param) with only the new rows moving under freeze_old, and a packed copy must load offline."""

import pytest
import sentencepiece as spm
import soundfile as sf
import torch
import yaml
from tiny_setup import UTTS, pack_model

from espnet2_ext.common import DataError
from espnet2_ext.layers.task_vectors import grow_task_vectors, new_vector_rows
from espnet2_ext.task_spec import TaskSpec
from espnet2_ext.text.tag_aware_bpe import WORD_BOUNDARY, append_tag_symbols, espnet_token_list, train_tag_aware_bpe

OLD_TASKS = ["asr", "scd", "endp", "ner", "lid"]


# ---- tables and specs (no model) -------------------------------------------------------------------------
def test_per_combination_rows_map_exactly():
    old = torch.randn(8, 5)  # K = 3
    new = grow_task_vectors(old, "per_combination", 3, 5)
    assert new.shape == (32, 5)
    for r in range(32):  # bits 3 and 4 are the new tasks; every row is its combination without them
        assert torch.equal(new[r], old[r & 7])
    assert torch.equal(new[:8], old)
    assert new_vector_rows("per_combination", 3, 5) == list(range(8, 32))


def test_per_task_grows_by_one_row_per_task():
    old = torch.randn(5, 4)  # asr + 4 aux
    new = grow_task_vectors(old, "per_task", 4, 5)
    assert new.shape == (6, 4) and torch.equal(new[:5], old)
    assert torch.allclose(new[5], old[1:].mean(0))
    assert torch.equal(grow_task_vectors(old, "per_task", 4, 6, init="zero")[5:], torch.zeros(2, 4))
    assert new_vector_rows("per_task", 4, 5) == [5]
    with pytest.raises(ValueError, match="expected 5"):
        grow_task_vectors(old[:4], "per_task", 4, 5)


def test_spec_growth_and_its_errors():
    from espnet2_ext.asr.extend import grow_spec, grow_token_list

    spec = TaskSpec.default()
    grown = grow_spec(spec, {"qst": ("[Q]",)}, ["it"])
    assert grown.tasks == tuple(OLD_TASKS) + ("qst",)
    assert grown.aux_tokens["lid"][-1] == "[IT]" and grown.languages[-1] == "it"
    with pytest.raises(DataError, match="task 'ner' already exists"):
        grow_spec(spec, {"ner": ("[X]",)}, [])
    with pytest.raises(DataError, match=r"\[DE\] clashes with the language token of 'de'"):
        grow_spec(spec, {"dest": ("[DE]",)}, [])
    with pytest.raises(DataError, match=r"token \[NE\], which is already a token of task 'ner'"):
        grow_spec(spec, {}, ["ne"])  # Nepali's code is the entity tag
    with pytest.raises(DataError, match="language 'de' already exists"):
        grow_spec(spec, {}, ["de"])
    with pytest.raises(DataError, match="not a tag"):
        grow_spec(spec, {"qst": ("Q",)}, [])
    assert grow_token_list(["<blank>", "<unk>", "a", "<sos/eos>"], ["[Q]"]) == [
        "<blank>",
        "<unk>",
        "a",
        "[Q]",
        "<sos/eos>",
    ]
    with pytest.raises(DataError, match="already in the model's token list"):
        grow_token_list(["<blank>", "[Q]", "<sos/eos>"], ["[Q]"])


LINES = [
    "[EN] hello [NE] maria [/NE] how are you [ENDP] [SCD] fine thanks [ENDP]",
    "[DE] guten tag [NE] berlin [/NE] [ENDP]",
    "[ES] hola que tal [ENDP]",
    "[FR] bonjour ça va [ENDP]",
] * 5


def test_appended_tags_keep_every_piece_and_are_atomic(tmp_path):
    model = train_tag_aware_bpe(LINES, TaskSpec.default(), 60, tmp_path, kaldi=False)
    old = spm.SentencePieceProcessor(model_file=str(model))
    new = spm.SentencePieceProcessor(model_proto=append_tag_symbols(model, ["[Q]", "[IT]"]))
    assert [new.id_to_piece(i) for i in range(old.get_piece_size())] == [
        old.id_to_piece(i) for i in range(old.get_piece_size())
    ]
    for line in LINES[:4]:
        assert new.encode(line, out_type=str) == old.encode(line, out_type=str)
    pieces = new.encode("[IT] hola que tal [Q] [ENDP]", out_type=str)
    assert pieces[0] == WORD_BOUNDARY + "[IT]" and WORD_BOUNDARY + "[Q]" in pieces
    assert pieces[pieces.index(WORD_BOUNDARY + "[Q]") - 1] != WORD_BOUNDARY  # no stray boundary piece
    assert new.decode(new.encode("[IT] hola [Q]")) == "[IT] hola [Q]"
    tokens = espnet_token_list(new)  # what train_tokenizer would write: old ids, new tags, then <sos/eos>
    assert tokens[:-3] == espnet_token_list(old)[:-1] and tokens[-3:] == ["\u2581[Q]", "\u2581[IT]", "<sos/eos>"]
    with pytest.raises(DataError, match="already has the piece"):
        append_tag_symbols(model, ["[SCD]"])


def test_tokenizer_that_is_not_tag_aware_is_refused(tmp_path):
    from espnet2_ext.asr.extend import check_tag_aware

    proto = tmp_path / "plain.model"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(LINES),
        model_prefix=str(tmp_path / "plain"),
        vocab_size=40,
        model_type="bpe",
        minloglevel=2,
    )
    tokens = espnet_token_list(str(proto))
    with pytest.raises(DataError, match=r"cfg.yaml: the model's tokenizer \(token_type bpe\) is not tag-aware"):
        check_tag_aware("bpe", tokens, TaskSpec.default(), proto, "cfg.yaml")
    with pytest.raises(DataError, match="not tag-aware"):
        check_tag_aware("char", tokens, TaskSpec.default(), None, "cfg.yaml")


# ---- a real extended model -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def extended(tiny_trained, tmp_path_factory):
    """tiny_trained + task qst ([Q]) + language it, with freeze_old (only the new rows train)."""
    from espnet2_ext.tasks.extend_experiment import extend_experiment

    root, _, out = tiny_trained
    dst = tmp_path_factory.mktemp("extend") / "exp_ext"
    extend_experiment(out, dst, {"qst": ["[Q]"]}, ["it"], freeze_old=True)
    return out, dst


def _s2t(config, model, **kw):
    from espnet2_ext.asr.speech2text import TokenVerseSpeech2Text

    return TokenVerseSpeech2Text(asr_train_config=config, asr_model_file=model, **kw)


def _wav(data, utt):
    return torch.from_numpy(sf.read(data / "wav" / f"{utt}.wav", dtype="float32")[0])


def test_extended_model_decodes_like_the_base_while_new_tasks_are_inactive(tiny_trained, extended):
    """Same tokens with every search; same scores with the searches that score hypotheses (ESPnet's through the
    masked joint, our modified_beam_search): both leave suppressed tokens out of the softmax."""
    _, data, _ = tiny_trained
    base_dir, ext_dir = extended
    wavs = {utt: _wav(data, utt) for utt, _, _ in UTTS}
    for search in ("modified_beam_search", "greedy", "default"):
        base = _s2t(base_dir / "config.yaml", base_dir / "valid.loss.best.pth", transducer_conf={"search_type": search})
        ext = _s2t(ext_dir / "config.yaml", ext_dir / "extended.pth", transducer_conf={"search_type": search})
        assert ext.model_tasks == tuple(OLD_TASKS) + ("qst",)
        for act in ("asr,scd,endp,ner", "asr"):  # lid off: the new language's token is suppressed too
            for utt, x in wavs.items():
                (b_text, b_tok, _, b_hyp), (e_text, e_tok, _, e_hyp) = (
                    base(x, task_activation=act)[0],
                    ext(x, task_activation=act)[0],
                )
                assert (e_text, e_tok) == (b_text, b_tok), (act, search, utt)
                if search != "greedy":
                    assert e_hyp.score == pytest.approx(b_hyp.score, rel=1e-6, abs=1e-6), (act, search, utt)


def test_new_task_only_with_every_old_task_active(tiny_trained, tmp_path):
    """The issue's case: a new task, inactive; all old tasks (lid included) active."""
    from espnet2_ext.tasks.extend_experiment import extend_experiment

    _, data, base_dir = tiny_trained
    ext_dir = extend_experiment(base_dir, tmp_path / "ext", {"qst": ["[Q]"]}, vector_init="random")
    act = ",".join(OLD_TASKS)
    for search in ("default", "modified_beam_search"):
        base = _s2t(
            base_dir / "config.yaml",
            base_dir / "valid.loss.best.pth",
            task_activation=act,
            transducer_conf={"search_type": search},
        )
        ext = _s2t(
            ext_dir / "config.yaml",
            ext_dir / "extended.pth",
            task_activation=act,
            transducer_conf={"search_type": search},
        )
        for utt, _, _ in UTTS:
            b, e = base(_wav(data, utt))[0], ext(_wav(data, utt))[0]
            assert e[:2] == b[:2], (search, utt)
            assert e[3].score == pytest.approx(b[3].score, rel=1e-6, abs=1e-6), utt


def test_extended_weights_keep_old_rows(extended):
    from espnet2_ext.utils.safe_load import load_model_file

    base_dir, ext_dir = extended
    old = load_model_file(str(base_dir / "valid.loss.best.pth"), map_location="cpu")
    new = load_model_file(str(ext_dir / "extended.pth"), map_location="cpu")
    old_conf = yaml.safe_load((base_dir / "config.yaml").read_text())
    conf = yaml.safe_load((ext_dir / "config.yaml").read_text())
    old_tok, tok = old_conf["token_list"], conf["token_list"]
    assert tok[: len(old_tok) - 1] == old_tok[:-1] and tok[-3:] == ["[IT]", "[Q]", "<sos/eos>"]
    assert conf["tokenverse_conf"]["tasks"] == OLD_TASKS + ["qst"]
    assert conf["tokenverse_conf"]["extra_tokens"] == {"qst": ["[Q]"]}
    assert conf["tokenverse_conf"]["languages"][-1] == "it" and conf["frontend_conf"]["aux_tasks"][-1] == "qst"
    assert conf["init_param"] == [str(ext_dir / "extended.pth")]
    assert conf["model_conf"]["freeze_old"]["new_token_ids"] == [len(old_tok) - 1, len(old_tok)]
    mapping = [tok.index(t) for t in old_tok]
    w_old, w_new = old["joint_network.lin_out.weight"], new["joint_network.lin_out.weight"]
    assert torch.equal(w_new[mapping], w_old)
    langs = [old_tok.index(t) for t in ("[EN]", "[DE]")]
    assert torch.allclose(w_new[tok.index("[IT]")], w_old[langs].mean(0))  # a new language: mean of languages
    assert torch.equal(new["decoder.embed.weight"][mapping], old["decoder.embed.weight"])
    assert torch.equal(new["ctc.ctc_lo.bias"][mapping], old["ctc.ctc_lo.bias"])
    key = "frontend.task_vectors.feature_encoder.weight"
    assert new[key].shape[0] == old[key].shape[0] + 1 and torch.equal(new[key][:-1], old[key])
    unchanged = [k for k in old if k in new and old[k].shape == new[k].shape]
    assert all(torch.equal(old[k], new[k]) for k in unchanged) and len(unchanged) > 20


def test_asr_train_from_the_extended_model_moves_only_new_rows(tiny_trained, extended, tmp_path):
    """Ordinary asr_train with the written config (init_param = extended.pth), data annotated asr + qst only."""
    from espnet2_ext.bin.asr_train import main
    from espnet2_ext.utils.safe_load import load_model_file

    _, data, _ = tiny_trained
    _, ext_dir = extended
    d = tmp_path / "data"
    d.mkdir()
    words = {u: " ".join(w for w in t.split() if not w.startswith("[")) for u, t, _ in UTTS}
    (d / "text").write_text("".join(f"{u} {w} [Q]\n" for u, w in words.items()))
    (d / "utt2tasks").write_text("".join(f"{u} asr qst\n" for u in words))
    for f in ("wav.scp", "speech_shape"):
        (d / f).write_text((data / f).read_text())
    args = [
        "--config",
        str(ext_dir / "config.yaml"),
        "--output_dir",
        str(tmp_path / "exp"),
        "--ngpu",
        "0",
        "--max_epoch",
        "1",
        "--num_iters_per_epoch",
        "2",
        "--use_tensorboard",
        "false",
    ]
    for split in ("train", "valid"):
        for f, name, typ in (("wav.scp", "speech", "sound"), ("text", "text", "text"), ("utt2tasks", "tasks", "text")):
            args += [f"--{split}_data_path_and_name_and_type", f"{d / f},{name},{typ}"]
        args += [f"--{split}_shape_file", str(d / "speech_shape")]
    main(args)
    start = load_model_file(str(ext_dir / "extended.pth"), map_location="cpu")
    after = load_model_file(str(tmp_path / "exp" / "1epoch.pth"), map_location="cpu")
    conf = yaml.safe_load((ext_dir / "config.yaml").read_text())
    new_ids = conf["model_conf"]["freeze_old"]["new_token_ids"]
    old_ids = [i for i in range(len(conf["token_list"])) if i not in new_ids]
    for key in ("joint_network.lin_out.weight", "decoder.embed.weight"):
        assert torch.equal(after[key][old_ids], start[key][old_ids]), key
    out = "joint_network.lin_out.weight"
    assert not torch.equal(after[out][new_ids], start[out][new_ids])
    tv = "frontend.task_vectors.feature_encoder.weight"
    assert torch.equal(after[tv][:-1], start[tv][:-1]) and not torch.equal(after[tv][-1], start[tv][-1])
    frozen = [k for k in start if k.startswith(("frontend.upstream", "decoder.dec")) and start[k].is_floating_point()]
    assert frozen and all(torch.equal(after[k], start[k]) for k in frozen)


def test_packed_extended_model_loads_offline_with_espnet(tiny_trained, extended, tmp_path, monkeypatch):
    import socket

    from espnet2.bin.asr_inference import Speech2Text

    _, data, _ = tiny_trained
    _, ext_dir = extended
    zip_path = pack_model(
        ext_dir.parent, tmp_path / "ext.zip", f"{ext_dir.name}/config.yaml", f"{ext_dir.name}/extended.pth"
    )

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    theirs = Speech2Text.from_pretrained(model_tag=str(zip_path), beam_size=1)
    assert list(theirs.asr_model.token_list[-3:]) == ["[IT]", "[Q]", "<sos/eos>"]
    ours = _s2t(ext_dir / "config.yaml", ext_dir / "extended.pth", transducer_conf={"search_type": "greedy"})
    x = _wav(data, UTTS[1][0])
    assert theirs(x)[0][2] == ours(x)[0][2]  # ESPnet's beam-1 search == our greedy, all tasks active

    from espnet2_ext.tasks.extend_experiment import extend_experiment  # a packed model is a valid base too

    again = extend_experiment(zip_path, tmp_path / "again", {"tone": ["[HAPPY]", "[SAD]"]})
    conf = yaml.safe_load((again / "config.yaml").read_text())
    assert conf["tokenverse_conf"]["tasks"] == OLD_TASKS + ["qst", "tone"]
    assert conf["token_list"][-4:] == ["[Q]", "[HAPPY]", "[SAD]", "<sos/eos>"]
    assert "freeze_old" not in conf["model_conf"]


def test_cli_refuses_bad_extensions_with_one_line(extended, tmp_path, capsys):
    from espnet2_ext.bin.extend_model import main

    _, ext_dir = extended
    for extra, message in (
        (["--add_task", "qst=[QQ]"], "task 'qst' already exists"),
        (["--add_task", "x=[IT]"], r"clashes with the language token of 'it'"),
        (["--add_task", "x"], "give NAME=TOKEN"),
    ):
        assert (
            main(
                [
                    "--base",
                    str(ext_dir),
                    "--model_file",
                    str(ext_dir / "extended.pth"),
                    "--out_dir",
                    str(tmp_path / "o"),
                ]
                + extra
            )
            == 1
        )
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "o").exists()
    assert main(["--base", str(tmp_path), "--out_dir", str(tmp_path / "o"), "--add_language", "it"]) == 1
    assert "no config.yaml" in capsys.readouterr().err


# ---- extension data of the mini corpus -----------------------------------------------------------------
def test_extension_data_plans():
    from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse_words as W
    from espnet2_ext.corpora.mini_tokenverse.mini_tokenverse_plan import plan_extension

    qst = plan_extension("qst", seed=0, size="debug")
    assert sorted(qst) == ["qst_dev", "qst_test", "qst_train"]
    n_q = 0
    for p in qst["qst_train"]:
        assert p.tasks == ("asr", "qst") and p.subset == "qst"
        ref = p.reference().split()
        assert not any(w.startswith("[") and w != "[Q]" for w in ref)  # nothing but words and [Q]
        pieces = " ".join(ref).split("[Q]")
        questions = [t for t in p.turns if t.question]
        assert len(pieces) - 1 == len(questions)
        for piece, turn in zip(pieces, questions):  # each [Q] closes a question turn
            assert piece.strip().endswith(turn.spoken)
        n_q += len(questions)
    assert n_q > 0
    it = plan_extension("it", seed=0, size="debug")
    refs = [p.reference() for ps in it.values() for p in ps]
    assert all(r.startswith("[IT] ") for r in refs) and all(p.tasks == ("asr", "lid") for ps in it.values() for p in ps)
    assert {c for r in refs for c in r} <= set("abcdefghijklmnopqrstuvwxyz àèéù[]IT")
    assert plan_extension("qst", seed=0, size="debug")["qst_train"] == qst["qst_train"]  # deterministic
    assert W.LANGUAGES == ("en", "de", "es", "fr")  # the default corpus's languages are untouched
