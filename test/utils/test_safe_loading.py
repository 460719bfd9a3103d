"""Issue 16: packed models from others cannot write outside their folder or run code (ours and ESPnet's loaders)."""

from __future__ import annotations

import io
import os
import socket
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import torch
import yaml
from tiny_setup import UTTS

from espnet2_ext.utils.safe_archive import (
    MAX_BYTES_ENV,
    MAX_MEMBERS_ENV,
    UnsafeModelError,
    check_archive,
    load_yaml_bytes,
)
from espnet2_ext.utils.safe_load import TRUST_PICKLE_ENV, UnsafeLoadWarning, load_model_file

CONFIG, MODEL = "exp/config.yaml", "exp/model.pth"
META = {"yaml_files": {"asr_train_config": CONFIG}, "files": {"asr_model_file": MODEL}}


# ---- crafted archives ----------------------------------------------------------------------------------
class Member:
    def __init__(self, name: str, data: bytes = b"x", kind: str = "file", link: str = ""):
        self.name, self.data, self.kind, self.link = name, data, kind, link


def write_archive(path: Path, members: List[Member]) -> Path:
    """tar(.gz) or zip by suffix, as ESPnet's Archiver decides; links/devices made as each format stores them."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for m in members:
                info = zipfile.ZipInfo(m.name)
                info.create_system = 3
                mode = {"file": stat.S_IFREG | 0o644, "symlink": stat.S_IFLNK | 0o777, "device": stat.S_IFCHR | 0o644}[
                    m.kind
                ]
                info.external_attr = mode << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, m.link.encode() if m.kind == "symlink" else m.data)
    else:
        with tarfile.open(path, "w:gz") as t:
            for m in members:
                info = tarfile.TarInfo(m.name)
                info.type = {
                    "file": tarfile.REGTYPE,
                    "symlink": tarfile.SYMTYPE,
                    "hardlink": tarfile.LNKTYPE,
                    "device": tarfile.CHRTYPE,
                }[m.kind]
                info.linkname = m.link
                info.size = len(m.data) if m.kind == "file" else 0
                t.addfile(info, io.BytesIO(m.data) if m.kind == "file" else None)
    return path


def packed_members(extra: List[Member], meta: Optional[Dict] = None) -> List[Member]:
    meta = meta or META
    return [
        Member("meta.yaml", yaml.safe_dump(meta).encode()),
        Member(CONFIG, b"token_type: char\n"),
        Member(MODEL, b"weights"),
    ] + extra


def tree(root: Path) -> Dict[str, bytes]:
    """Every path under ``root`` (links not followed) with its content: what a test compares before/after."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            out[str(p.relative_to(root))] = p.read_bytes() if p.is_file() and not p.is_symlink() else b"<dir/link>"
    return out


@pytest.fixture
def sandbox(tmp_path):
    """tmp/work holds a file an attacker targets (outside.txt) and the folder to unpack into (target)."""
    work = tmp_path / "work"
    (work / "target").mkdir(parents=True)
    (work / "outside.txt").write_text("precious")
    return work


OUT_CASES = {  # case -> (members, expected words in the error)
    "dotdot": (packed_members([Member("../escaped.txt", b"pwned")]), r"'\.\./escaped\.txt' is a path with a '\.\.'"),
    "dotdot_deep": (packed_members([Member("exp/../../escaped.txt", b"pwned")]), r"'\.\.' component"),
    "absolute": (packed_members([Member("/tmp/tokenverse_issue16_escaped.txt", b"pwned")]), "is an absolute path"),
    "symlink": (
        packed_members(
            [
                Member("exp/link", kind="symlink", link="../../outside.txt"),
                Member("exp/link", b"overwritten through the link"),
            ]
        ),
        "'exp/link' is a symbolic link",
    ),
    "symlink_dir": (
        packed_members(
            [Member("exp/d", kind="symlink", link="/tmp"), Member("exp/d/tokenverse_issue16_escaped.txt", b"pwned")]
        ),
        "is a symbolic link",
    ),
    "device": (packed_members([Member("exp/dev", kind="device")]), "'exp/dev' is a device"),
    "yaml_member": (
        packed_members(
            [Member("../evil.yaml", b"a: 1\n")],
            {"yaml_files": {"asr_train_config": "../evil.yaml"}, "files": {"asr_model_file": MODEL}},
        ),
        r"'\.\./evil\.yaml' is a path with",
    ),
    "meta_absolute": (
        packed_members([], {"yaml_files": {"asr_train_config": "/etc/passwd"}, "files": {"asr_model_file": MODEL}}),
        "meta.yaml entry asr_train_config: '/etc/passwd' is an absolute path",
    ),
}


def _unpackers(tmp_path):
    """Every way a packed model gets opened: ours, ESPnet's unpack, the model zoo's local-file path."""
    from espnet2.main_funcs import pack_funcs
    from espnet_model_zoo.downloader import ModelDownloader

    from espnet2_ext.asr.speech2text import unpack_model

    return {
        "unpack_model": lambda arc, target: unpack_model(arc, cache_dir=str(target)),
        "espnet_unpack": lambda arc, target: pack_funcs.unpack(arc, target),
        "model_zoo": lambda arc, target: ModelDownloader(cachedir=target).download_and_unpack(str(arc)),
    }


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
@pytest.mark.parametrize("case", sorted(OUT_CASES))
def test_crafted_archive_refused_and_nothing_written_outside(sandbox, tmp_path, case, fmt):
    members, expected = OUT_CASES[case]
    if fmt == "zip" and any(m.kind == "hardlink" for m in members):
        pytest.skip("zip has no hard links")
    arc = write_archive(tmp_path / f"model.{fmt}", members)
    escaped = Path("/tmp/tokenverse_issue16_escaped.txt")
    escaped.unlink(missing_ok=True)
    for how, unpack in _unpackers(tmp_path).items():
        target = sandbox / "target" / how
        target.mkdir()
        before = tree(sandbox)
        with pytest.raises(UnsafeModelError, match=expected) as err:
            unpack(arc, target)
        assert "\n" not in str(err.value) and str(arc) in str(err.value), how
        written = {k for k, v in tree(sandbox).items() if before.get(k) != v}
        # the model zoo links the archive and puts a lock file into its cache folder; no member is written
        assert all(k.startswith(f"target/{how}/") for k in written), (how, written)
        assert not {Path(k).name for k in written} & {Path(m.name).name for m in members}, (how, written)
        assert (sandbox / "outside.txt").read_text() == "precious" and not escaped.exists(), how


def test_tar_hardlink_refused(sandbox, tmp_path):
    arc = write_archive(
        tmp_path / "model.tar", packed_members([Member("exp/hard", kind="hardlink", link=str(sandbox / "outside.txt"))])
    )
    for how, unpack in _unpackers(tmp_path).items():
        (sandbox / "target" / how).mkdir()
        with pytest.raises(UnsafeModelError, match=r"'exp/hard' is a hard link \(to '.*outside\.txt'\)"):
            unpack(arc, sandbox / "target" / how)
    assert (sandbox / "outside.txt").read_text() == "precious"


def test_the_crafted_archives_are_real_attacks_on_plain_espnet(sandbox, tmp_path):
    """ESPnet's own unpack, unguarded (the __wrapped__ original), writes outside: the refusals above matter."""
    from espnet2.main_funcs import pack_funcs

    original = pack_funcs.unpack.__wrapped__
    arc = write_archive(tmp_path / "model.tar", OUT_CASES["dotdot"][0])
    original(arc, sandbox / "target")
    assert (sandbox / "escaped.txt").read_text() == "pwned"
    members, _ = OUT_CASES["yaml_member"]
    arc = write_archive(tmp_path / "model.zip", members)
    original(arc, sandbox / "target" / "y")
    assert (sandbox / "target" / "evil.yaml").exists()  # written by ESPnet itself at outpath / "../evil.yaml"


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_member_expanding_past_the_limit(sandbox, tmp_path, monkeypatch, fmt):
    bomb = b"\0" * 3_000_000  # compresses to a few KiB
    arc = write_archive(tmp_path / f"model.{fmt}", packed_members([Member("exp/bomb.bin", bomb)]))
    assert arc.stat().st_size < 100_000
    monkeypatch.setenv(MAX_BYTES_ENV, "1000000")
    for how, unpack in _unpackers(tmp_path).items():
        target = sandbox / "target" / how
        target.mkdir()
        with pytest.raises(
            UnsafeModelError,
            match=r"member 'exp/bomb\.bin' takes the unpacked size past the "
            r"limit of 1000000 bytes",
        ):
            unpack(arc, target)
        assert not (target / "exp").exists(), how
    monkeypatch.setenv(MAX_BYTES_ENV, "10000000")
    assert check_archive(arc, sandbox / "target" / "ok")["asr_model_file"] == MODEL  # under the limit: fine


def test_member_count_is_bounded(sandbox, tmp_path, monkeypatch):
    arc = write_archive(tmp_path / "model.zip", packed_members([Member(f"exp/f{i}") for i in range(20)]))
    monkeypatch.setenv(MAX_MEMBERS_ENV, "10")
    with pytest.raises(UnsafeModelError, match="more than 10 members"):
        check_archive(arc, sandbox / "target")


def test_yaml_alias_bomb_refused(sandbox, tmp_path):
    lol = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh")
    )
    arc = write_archive(
        tmp_path / "model.zip",
        [Member("meta.yaml", yaml.safe_dump(META).encode()), Member(CONFIG, lol.encode()), Member(MODEL, b"w")],
    )
    with pytest.raises(UnsafeModelError, match=r"'exp/config\.yaml': YAML expands to more than"):
        check_archive(arc, sandbox / "target")
    with pytest.raises(UnsafeModelError, match="not valid YAML"):
        load_yaml_bytes(b"a: [", "x.yaml")


def test_upload_model_refuses_crafted_zip(tmp_path):
    from espnet2_ext.bin.upload_model import UploadError, build_upload_folder

    arc = write_archive(tmp_path / "model.zip", packed_members([Member("exp/link", kind="symlink", link="/etc")]))
    with pytest.raises(UploadError, match="'exp/link' is a symbolic link"):
        build_upload_folder(arc, "user/name", tmp_path / "hub")
    assert not (tmp_path / "hub").exists() and [p.name for p in tmp_path.iterdir()] == ["model.zip"]


def test_unpacked_dir_meta_pointing_outside_is_refused(tmp_path):
    from espnet2_ext.asr.speech2text import unpack_model

    (tmp_path / "model").mkdir()
    (tmp_path / "secret.pth").write_bytes(b"w")
    (tmp_path / "model" / "meta.yaml").write_text(
        yaml.safe_dump(
            {"yaml_files": {"asr_train_config": "config.yaml"}, "files": {"asr_model_file": "../secret.pth"}}
        )
    )
    with pytest.raises(UnsafeModelError, match=r"asr_model_file: '\.\./secret\.pth' is a path with a '\.\.'"):
        unpack_model(tmp_path / "model")


# ---- model files that would run code ----------------------------------------------------------------------
class _Payload:
    """Unpickling this calls open(marker, 'w'): the marker file appears only if code from the file ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def evil_state(tmp_path):
    marker = tmp_path / "CODE_RAN"
    return {"w": torch.zeros(2), "payload": _Payload(marker)}, marker


def test_model_file_that_runs_code_is_refused(tmp_path, evil_state, monkeypatch):
    from espnet2.tasks import abs_task
    from espnet2.train.trainer import Trainer

    from espnet2_ext.train.trainer import load_checkpoint

    state, marker = evil_state
    torch.save(state, tmp_path / "evil.pth")
    checks = {
        "load_model_file": lambda: load_model_file(tmp_path / "evil.pth", map_location="cpu"),
        "our checkpoint loader": lambda: load_checkpoint(tmp_path / "evil.pth"),
        "ESPnet resume": lambda: Trainer.resume(
            tmp_path / "evil.pth", model=None, reporter=None, optimizers=[], schedulers=[], scaler=None
        ),
        "ESPnet --init_param": lambda: abs_task.load_pretrained_model(
            str(tmp_path / "evil.pth"), torch.nn.Linear(1, 1), False, "cpu"
        ),
    }
    for how, load in checks.items():
        with pytest.raises(
            UnsafeModelError,
            match=r"evil\.pth: refused to load: .*GLOBAL io\.open.*"
            rf"{TRUST_PICKLE_ENV}=1",
        ) as err:
            load()
        assert "\n" not in str(err.value), how
        assert not marker.exists(), how
    # the explicit opt-in really unpickles (so the refusals above are not vacuous), and says so
    monkeypatch.setenv(TRUST_PICKLE_ENV, "1")
    with pytest.warns(UnsafeLoadWarning, match="full unpickling"):
        load_model_file(tmp_path / "evil.pth")
    assert marker.exists()


# ---- real packed models still load ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def packs(tiny_trained, tmp_path_factory):
    """The tiny model packed by ESPnet's packer as the recipe does (relative paths: run from the recipe dir)."""
    from espnet2.main_funcs.pack_funcs import pack

    root, _, _ = tiny_trained
    dst = tmp_path_factory.mktemp("packs")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        pack(
            files={"asr_model_file": "exp/valid.loss.best.pth"},
            yaml_files={"asr_train_config": "exp/config.yaml"},
            outpath=dst / "model.tar.gz",
        )
    finally:
        os.chdir(cwd)
    return {"model.tar.gz": dst / "model.tar.gz"}


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_real_packed_models_load_with_ours_and_espnets(tiny_trained, packs, no_network):
    """A real packed model passes every check and loads offline with both loaders (zip: test_inference.py; here the
    tar.gz that ESPnet's packer also writes), decoding the same tokens."""
    import soundfile as sf
    from espnet2.bin.asr_inference import Speech2Text

    from espnet2_ext.asr.speech2text import TokenVerseSpeech2Text

    _, data, _ = tiny_trained
    x, _ = sf.read(data / "wav" / f"{UTTS[0][0]}.wav", dtype="float32")
    packed = str(packs["model.tar.gz"])
    ours = TokenVerseSpeech2Text.from_pretrained(packed, transducer_conf={"search_type": "greedy"})
    theirs = Speech2Text.from_pretrained(model_tag=packed, beam_size=1)  # espnet_model_zoo unpacking, guarded
    assert theirs(x)[0][2] == ours(x)[0][2]


def test_packed_model_whose_weights_run_code_is_refused_everywhere(tiny_trained, tmp_path, monkeypatch, no_network):
    """The tiny model's config and weights plus a payload, packed by ESPnet's packer: every loader refuses it."""
    from espnet2.bin.asr_inference import Speech2Text
    from espnet2.main_funcs.pack_funcs import pack
    from espnet_model_zoo.downloader import ModelDownloader

    from espnet2_ext.asr.speech2text import TokenVerseSpeech2Text
    from espnet2_ext.bin import asr_inference

    _, data, out = tiny_trained
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "config.yaml").write_bytes((out / "config.yaml").read_bytes())
    marker = tmp_path / "CODE_RAN"
    state = torch.load(out / "valid.loss.best.pth", weights_only=True)
    state["payload"] = _Payload(marker)
    torch.save(state, tmp_path / "exp" / "model.pth")
    monkeypatch.chdir(tmp_path)
    pack(
        files={"asr_model_file": "exp/model.pth"},
        yaml_files={"asr_train_config": "exp/config.yaml"},
        outpath="evil.zip",
    )
    zoo = ModelDownloader(cachedir=tmp_path / "zoo")
    loaders = {
        "ours": lambda: TokenVerseSpeech2Text.from_pretrained("evil.zip"),
        # what Speech2Text.from_pretrained does, with a private cache dir instead of the package's
        "ESPnet": lambda: Speech2Text(**zoo.download_and_unpack(str(tmp_path / "evil.zip"))),
        "asr_inference": lambda: asr_inference.run(
            [
                "--model_file",
                "evil.zip",
                "--output_dir",
                "dec",
                "--data_path_and_name_and_type",
                f"{data / 'wav.scp'},speech,sound",
            ]
        ),
    }
    for how, load in loaders.items():
        with pytest.raises(UnsafeModelError, match=r"model\.pth: refused to load: .*GLOBAL io\.open"):
            load()
        assert not marker.exists(), how
    assert not (tmp_path / "dec").exists()


def test_espnet_checkpoint_loads_weights_only(tiny_trained):
    """checkpoint.pth (reporter with numpy scalars and timedeltas, optimizer state) needs no full unpickling."""
    from espnet2_ext.reporting.task_vector_analysis import load_state_dict
    from espnet2_ext.train.trainer import load_checkpoint

    _, _, out = tiny_trained
    with pytest.raises(Exception, match="Weights only load failed"):  # what plain weights_only=True gives
        torch.load(out / "checkpoint.pth", weights_only=True)
    states = load_checkpoint(out / "checkpoint.pth")
    assert set(states) >= {"model", "reporter", "optimizers"} and states["reporter"]["epoch"] >= 1
    assert load_state_dict(out / "checkpoint.pth").keys() == states["model"].keys()


def test_espnet_loaders_are_guarded_once_espnet2_ext_is_imported():
    """A fresh interpreter: importing espnet2_ext, then ESPnet's inference module, installs every guard."""
    code = (
        "import espnet2_ext, espnet2.bin.asr_inference\n"
        "from espnet2.main_funcs import pack_funcs\nfrom espnet2.tasks.abs_task import AbsTask\n"
        "from espnet2.train.trainer import Trainer\nfrom espnet_model_zoo import downloader\n"
        "fs = [pack_funcs.unpack, pack_funcs.get_dict_from_cache, downloader.unpack, AbsTask.build_model_from_file,"
        " Trainer.resume, downloader.ModelDownloader._unpack_cache_dir_for_huggingfase]\n"
        "print([getattr(getattr(f, '__func__', f), '_tokenverse_guard', False) for f in fs])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip().splitlines()[-1] == str([True] * 6), r.stderr[-2000:]
