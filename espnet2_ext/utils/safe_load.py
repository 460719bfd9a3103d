"""Opening model files made by someone else: no code from them runs, nothing is written outside the target folder.

ESPnet's ``pack_funcs.unpack`` extracts tar/zip members with no checks (a tar member ``../../x`` or a symlink member
writes outside the cache folder; a YAML member is written to ``outpath / name`` by ESPnet itself), and its
``build_model_from_file``, trainer resume and ``--init_param`` call ``torch.load(weights_only=False)``, so a crafted
``model.pth`` runs arbitrary code. Our models hold only tensors and plain config, so we can refuse both:

* ``check_archive``: every member header is read before anything is written. Refused: absolute names, ``..``
  components, names whose resolved path leaves the target folder (also through links already in it), symlink /
  hardlink / device / FIFO members, more than ``MAX_MEMBERS`` members or ``MAX_UNPACK_BYTES`` in all, ``meta.yaml``
  entries pointing outside the folder, YAML members that are huge or expand (aliases) past ``MAX_YAML_NODES``.
* ``safe_unpack``: ``check_archive`` then ESPnet's own ``unpack`` (unchanged: once the members are checked it only
  writes inside the folder), so a packed model unpacks exactly as ESPnet unpacks it.
* ``load_model_file`` / ``weights_only_loading()``: ``torch.load(weights_only=True)``; what it refuses is a one-line
  ``UnsafeModelError`` naming the file and the refused type. Full unpickling only on explicit opt-in
  (``TOKENVERSE_TRUST_PICKLE=1`` or ``with trusted_pickle_loading():``), with a warning each time.
* ``install_espnet_guards``: wraps ESPnet's loaders (``pack_funcs.unpack``, ``get_dict_from_cache``, the model
  zoo's copies of them and its Hugging Face path, ``build_model_from_file``, ``Trainer.resume``,
  ``load_pretrained_model``) with the above; run by ``registry.register`` when ESPnet's ASR task is imported.
"""
from __future__ import annotations

import contextlib
import functools
import os
import pickle
import re
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path, PurePosixPath
from typing import Dict, Iterator, List, Optional, Tuple, Union

import yaml

from espnet2_ext.common import DataError

PathLike = Union[str, os.PathLike]
MAX_UNPACK_BYTES = 32 * 1024 ** 3  # a 1B-parameter fp32 model is 4 GiB; far above any real packed model
MAX_MEMBERS = 10_000
MAX_YAML_BYTES = 16 * 1024 ** 2
MAX_YAML_NODES = 1_000_000  # a 50k-token token_list is 50k nodes
TRUST_PICKLE_ENV = "TOKENVERSE_TRUST_PICKLE"
MAX_BYTES_ENV, MAX_MEMBERS_ENV = "TOKENVERSE_UNPACK_MAX_BYTES", "TOKENVERSE_UNPACK_MAX_MEMBERS"


class UnsafeModelError(DataError):
    """A packed model or model file that would write outside its folder, fill the disk, or run code on load."""


class UnsafeLoadWarning(UserWarning):
    """A file is being loaded with full unpickling because the user opted in."""


warnings.filterwarnings("always", category=UnsafeLoadWarning)  # one per file, not one per call site


def _env_limit(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return int(value)
    except ValueError:
        raise UnsafeModelError(f"{name}='{value}' is not an integer; unset it or give a number") from None


# ---- archives ------------------------------------------------------------------------------------------
def _member(info) -> Tuple[str, Optional[str], int]:
    """(name, why the member's type is refused or None, unpacked size) of a tar or zip member."""
    if isinstance(info, tarfile.TarInfo):
        if info.isreg():
            return info.name, None, info.size
        if info.isdir():
            return info.name, None, 0
        if info.issym():
            why = f"a symbolic link (to {info.linkname!r})"
        elif info.islnk():
            why = f"a hard link (to {info.linkname!r})"
        elif info.ischr() or info.isblk():
            why = "a device file"
        elif info.isfifo():
            why = "a FIFO"
        else:
            why = "an unsupported tar member type"
        return info.name, why, 0
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return info.filename, ("a symbolic link" if stat.S_ISLNK(mode) else "a device or special file"), 0
    return info.filename, None, 0 if info.is_dir() else info.file_size


def _name_problem(name: str) -> Optional[str]:
    if not name or "\x00" in name:
        return "an empty name or one with a NUL byte"
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "an absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "a path with a '..' component, which points outside the target folder"
    return None


def _outside(root: Path, name: str) -> Optional[Path]:
    """Where ``root / name`` really lands (links already in ``root`` followed) if that is outside ``root``."""
    dest = (root / name).resolve()
    return None if dest == root or root in dest.parents else dest


def _yaml_nodes(node, where: str, limit: int) -> int:
    """Nodes of a composed YAML document with every alias expanded (what ESPnet's rewrite walks and copies)."""
    sizes: Dict[int, int] = {}

    def size(n) -> int:
        key = id(n)
        if key in sizes:
            if sizes[key] < 0:
                raise UnsafeModelError(f"{where}: YAML refers to itself (recursive alias); not a config ESPnet wrote")
            return sizes[key]
        sizes[key] = -1
        total = 1
        if isinstance(n, yaml.SequenceNode):
            total += sum(size(c) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in n.value)
        if total > limit:
            raise UnsafeModelError(f"{where}: YAML expands to more than {limit} nodes (alias bomb?); not a config "
                                   f"ESPnet wrote")
        sizes[key] = total
        return total

    return size(node) if node is not None else 0


def load_yaml_bytes(data: bytes, where: str, max_nodes: int = MAX_YAML_NODES):
    """``yaml.safe_load`` of untrusted bytes with bounded expansion; errors are one-line ``UnsafeModelError``."""
    try:
        text = data.decode("utf-8")
        _yaml_nodes(yaml.compose(text, Loader=yaml.SafeLoader), where, max_nodes)
        return yaml.safe_load(text)
    except UnicodeDecodeError as e:
        raise UnsafeModelError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        raise UnsafeModelError(f"{where}: not valid YAML ({' '.join(str(e).split())[:200]})") from None
    except RecursionError:
        raise UnsafeModelError(f"{where}: YAML nested too deeply; not a config ESPnet wrote") from None


def check_meta_entries(meta, root: Path, where: str, resolve: bool = True) -> Dict[str, str]:
    """ESPnet's ``meta.yaml`` ``yaml_files``/``files``: every entry a relative path inside ``root``."""
    if not isinstance(meta, dict) or not isinstance(meta.get("yaml_files"), dict) \
            or not isinstance(meta.get("files"), dict):
        raise UnsafeModelError(f"{where}: meta.yaml lacks the yaml_files/files mappings that ESPnet's packer writes")
    entries = {**meta["yaml_files"], **meta["files"]}
    for key, value in entries.items():
        why = _name_problem(value) if isinstance(value, str) else "not a path"
        if why is None and resolve:
            dest = _outside(root.resolve(), value)
            why = f"a path that resolves to {dest}, outside {root}" if dest is not None else None
        if why is not None:
            raise UnsafeModelError(f"{where}: meta.yaml entry {key}: {value!r} is {why}; refusing to use this model")
    return entries


class _ZipMembers:
    """A zip read the way ``Archiver`` reads one, for callers that extract with ``zipfile`` themselves."""

    def __init__(self, path: Path):
        self.fopen = zipfile.ZipFile(path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fopen.close()

    def __iter__(self):
        return iter(self.fopen.infolist())

    def extractfile(self, info, mode="rb"):
        return self.fopen.open(info, "r")


def _open_archive(path: Path, zip_only: bool):
    """ESPnet's own ``Archiver`` (suffix decides tar or zip): the check must see what ``unpack`` will extract."""
    try:
        if zip_only:
            return _ZipMembers(path)
        from espnet2.main_funcs.pack_funcs import Archiver

        return Archiver(path)
    except (tarfile.TarError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise UnsafeModelError(f"{path}: cannot be opened as a packed model ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:150] if str(e) else ''}); give a .zip or .tar(.gz) "
                               f"made by espnet2.bin.pack") from None


def check_archive(archive: PathLike, outpath: PathLike, max_bytes: Optional[int] = None,
                  max_members: Optional[int] = None, zip_only: bool = False) -> Optional[Dict[str, str]]:
    """Raise ``UnsafeModelError`` (one line: archive, member, why) unless unpacking into ``outpath`` is safe.

    Reads only headers and YAML members; writes nothing. Returns the checked ``meta.yaml`` entries (None when the
    archive has no ``meta.yaml``: ESPnet's ``unpack`` reports that itself). ``zip_only``: read it as a zip
    whatever its suffix (for callers that extract with ``zipfile``), else as ESPnet's ``unpack`` will.
    """
    archive, root = Path(archive), Path(outpath).resolve()
    if archive.is_symlink():  # the model zoo unpacks a link to the user's file: name the file itself
        archive = archive.resolve()
    max_bytes = _env_limit(MAX_BYTES_ENV, MAX_UNPACK_BYTES) if max_bytes is None else max_bytes
    max_members = _env_limit(MAX_MEMBERS_ENV, MAX_MEMBERS) if max_members is None else max_members
    fix = "refusing to unpack it (nothing was written); use packed models only from sources you trust"
    total = 0
    infos: List = []
    with _open_archive(archive, zip_only) as arc:
        try:
            for info in arc:
                if len(infos) == max_members:
                    raise UnsafeModelError(f"{archive}: more than {max_members} members (limit {MAX_MEMBERS_ENV}); "
                                           f"{fix}")
                name, why, size = _member(info)
                if why is None:
                    why = _name_problem(name)
                if why is None:
                    dest = _outside(root, name)
                    why = f"a path that resolves to {dest}, outside {root}" if dest is not None else None
                if why is not None:
                    raise UnsafeModelError(f"{archive}: member {name!r} is {why}; {fix}")
                total += size
                if total > max_bytes:
                    raise UnsafeModelError(f"{archive}: member {name!r} takes the unpacked size past the limit of "
                                           f"{max_bytes} bytes (limit {MAX_BYTES_ENV}; a zip bomb?); {fix}")
                infos.append(info)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
            raise UnsafeModelError(f"{archive}: damaged archive ({type(e).__name__}: "
                                   f"{(str(e).splitlines() or [''])[0][:150]}); download it again") from None
        meta_info = next((i for i in infos if PurePosixPath(_member(i)[0]).name == "meta.yaml"), None)
        if meta_info is None:
            return None

        def read_yaml(info):
            name, _, size = _member(info)
            where = f"{archive}: member {name!r}"
            if size > MAX_YAML_BYTES:
                raise UnsafeModelError(f"{where} is a {size}-byte YAML file (limit {MAX_YAML_BYTES}); {fix}")
            with arc.extractfile(info, mode="rb") as f:
                return load_yaml_bytes(f.read(MAX_YAML_BYTES + 1), where)

        meta = read_yaml(meta_info)
        entries = check_meta_entries(meta, root, f"{archive}")
        yaml_members = set(meta["yaml_files"].values())
        for info in infos:
            if _member(info)[0] in yaml_members and _member(info)[0] != _member(meta_info)[0]:
                read_yaml(info)  # ESPnet parses and rewrites these: bound them first
    return entries


def safe_unpack(input_archive: PathLike, outpath: PathLike, use_cache: bool = True) -> Dict[str, str]:
    """ESPnet's ``pack_funcs.unpack`` after ``check_archive``; same return value (key -> unpacked path)."""
    from espnet2.main_funcs import pack_funcs

    check_archive(input_archive, outpath)
    unpack = getattr(pack_funcs.unpack, "__wrapped__", pack_funcs.unpack)
    return unpack(input_archive, outpath, use_cache=use_cache)


def checked_dict_from_cache(meta: PathLike) -> Optional[Dict[str, str]]:
    """ESPnet's ``get_dict_from_cache`` (files of an already unpacked model), refusing entries outside its folder."""
    from espnet2.main_funcs import pack_funcs

    meta = Path(meta)
    if meta.is_file():
        if meta.stat().st_size > MAX_YAML_BYTES:
            raise UnsafeModelError(f"{meta}: a {meta.stat().st_size}-byte meta.yaml (limit {MAX_YAML_BYTES})")
        check_meta_entries(load_yaml_bytes(meta.read_bytes(), str(meta)), meta.parent.parent, str(meta))
    original = getattr(pack_funcs.get_dict_from_cache, "__wrapped__", pack_funcs.get_dict_from_cache)
    return original(meta)


# ---- torch.load ----------------------------------------------------------------------------------------
_trusted_depth = 0


def pickle_trusted() -> bool:
    """Whether the user opted in to full unpickling (``TOKENVERSE_TRUST_PICKLE=1`` or ``trusted_pickle_loading``)."""
    return _trusted_depth > 0 or os.environ.get(TRUST_PICKLE_ENV, "").strip().lower() in ("1", "true", "yes")


@contextlib.contextmanager
def trusted_pickle_loading() -> Iterator[None]:
    """Within the block, model files are fully unpickled (old files holding more than tensors). Runs their code."""
    global _trusted_depth
    _trusted_depth += 1
    try:
        yield
    finally:
        _trusted_depth -= 1


def _torch_load():
    import torch

    return getattr(torch.load, "_tokenverse_original", torch.load)


def plain_globals() -> list:
    """Plain value types ESPnet's checkpoints hold besides tensors: the reporter's numpy scalars and timedeltas.

    Allowed only inside ``load_model_file`` (``torch.serialization.safe_globals``), not process-wide; none of them
    can call anything while being unpickled.
    """
    import datetime

    import numpy as np

    core = getattr(np, "_core", None) or np.core  # numpy 2 / 1
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes)
              if re.fullmatch(r"(Bool|U?Int\d+|Float\d+|Complex\d+)DType", n)]
    return [core.multiarray.scalar, np.dtype, *dtypes, datetime.timedelta]


def _refused_detail(e: Exception) -> str:
    text = str(e)
    m = re.search(r"(Unsupported global: GLOBAL [^\s]+|unsupported GLOBAL [^\n]+|Unsupported operand [^\n]+)", text)
    if m:
        return m.group(1).rstrip(". ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(("Weights only load failed",
                                                                                          "Check the documentation"))]
    return (lines[0] if lines else type(e).__name__)[:200]


def load_model_file(f, *args, **kwargs):
    """``torch.load`` that never runs code from the file (``weights_only=True``, whatever the caller asked).

    A file that needs more than tensors and plain types is a one-line ``UnsafeModelError``; with the opt-in
    (``TOKENVERSE_TRUST_PICKLE=1``) it is fully unpickled, with an ``UnsafeLoadWarning``.
    """
    kwargs.pop("weights_only", None)
    load = _torch_load()
    if pickle_trusted():
        warnings.warn(f"{f}: loading with full unpickling because {TRUST_PICKLE_ENV}=1 (or trusted_pickle_loading)"
                      f": any code in this file runs now", UnsafeLoadWarning, stacklevel=2)
        return load(f, *args, weights_only=False, **kwargs)
    import torch

    try:
        with torch.serialization.safe_globals(plain_globals()):
            return load(f, *args, weights_only=True, **kwargs)
    except pickle.UnpicklingError as e:
        raise UnsafeModelError(
            f"{f}: refused to load: it holds more than tensors and plain values ({_refused_detail(e)}), and "
            f"unpickling it could run code from the file. If you trust its source, set {TRUST_PICKLE_ENV}=1 to "
            f"load it with full unpickling") from None


@contextlib.contextmanager
def weights_only_loading() -> Iterator[None]:
    """Within the block, every ``torch.load`` is ``load_model_file`` (ESPnet calls ``torch.load`` inline, so
    wrapping it is the only way short of copying its functions). Nested use is fine."""
    import torch

    if getattr(torch.load, "_tokenverse_original", None) is not None:
        yield
        return
    original = torch.load

    @functools.wraps(original)
    def load(f, *args, **kwargs):
        return load_model_file(f, *args, **kwargs)

    load._tokenverse_original = original  # type: ignore[attr-defined]
    torch.load = load
    try:
        yield
    finally:
        torch.load = original


def _guarded(func):
    """``func`` run inside ``weights_only_loading``; marked so that it is wrapped once."""
    if getattr(func, "_tokenverse_guard", False):
        return func

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with weights_only_loading():
            return func(*args, **kwargs)

    wrapper._tokenverse_guard = True  # type: ignore[attr-defined]
    return wrapper


# ---- ESPnet's loaders ----------------------------------------------------------------------------------
def _mark(func, original):
    func.__wrapped__ = original
    func._tokenverse_guard = True
    return func


def _guard_hf_snapshot(downloader_cls) -> None:
    """The model zoo's Hugging Face path rewrites the YAML files ``meta.yaml`` names: check the names first."""
    original = downloader_cls.__dict__["_unpack_cache_dir_for_huggingfase"].__func__
    if getattr(original, "_tokenverse_guard", False):
        return

    @functools.wraps(original)
    def hf_unpack(cache_dir):
        meta = Path(cache_dir) / "meta.yaml"
        if meta.is_file():  # snapshot files are links into the hub's blob store: check names, not link targets
            check_meta_entries(load_yaml_bytes(meta.read_bytes()[:MAX_YAML_BYTES + 1], str(meta)), Path(cache_dir),
                                str(meta), resolve=False)
        return original(cache_dir)

    downloader_cls._unpack_cache_dir_for_huggingfase = staticmethod(_mark(hf_unpack, original))


def install_espnet_guards() -> None:
    """Route ESPnet's unpacking and model loading through the checks above (idempotent)."""
    from espnet2.main_funcs import pack_funcs
    from espnet2.tasks import abs_task
    from espnet2.train.trainer import Trainer

    if not getattr(pack_funcs.unpack, "_tokenverse_guard", False):
        # safe_unpack / checked_dict_from_cache reach ESPnet's originals through __wrapped__
        pack_funcs.unpack = _mark(functools.wraps(pack_funcs.unpack)(lambda *a, **k: safe_unpack(*a, **k)),
                                  pack_funcs.unpack)
        pack_funcs.get_dict_from_cache = _mark(
            functools.wraps(pack_funcs.get_dict_from_cache)(lambda meta: checked_dict_from_cache(meta)),
            pack_funcs.get_dict_from_cache)
    try:  # Speech2Text.from_pretrained imports it lazily; it bound pack_funcs' names at its own import
        from espnet_model_zoo import downloader
    except ImportError:
        downloader = None
    if downloader is not None:
        downloader.unpack, downloader.get_dict_from_cache = pack_funcs.unpack, pack_funcs.get_dict_from_cache
        _guard_hf_snapshot(downloader.ModelDownloader)
    build = abs_task.AbsTask.__dict__["build_model_from_file"].__func__
    abs_task.AbsTask.build_model_from_file = classmethod(_guarded(build))
    Trainer.resume = staticmethod(_guarded(Trainer.__dict__["resume"].__func__))
    abs_task.load_pretrained_model = _guarded(abs_task.load_pretrained_model)  # --init_param
