"""Unpacking model archives made by someone else: nothing is written outside the target folder, nothing huge.

ESPnet's ``pack_funcs.unpack`` extracts tar/zip members with no checks (a tar member ``../../x`` or a symlink member
writes outside the cache folder; a YAML member is written to ``outpath / name`` by ESPnet itself). So:

* ``check_archive``: every member header is read before anything is written. Refused: absolute names, ``..``
  components, names whose resolved path leaves the target folder (also through links already in it), symlink /
  hardlink / device / FIFO members, more than ``MAX_MEMBERS`` members or ``MAX_UNPACK_BYTES`` in all, ``meta.yaml``
  entries pointing outside the folder, YAML members that are huge or expand (aliases) past ``MAX_YAML_NODES``.
* ``safe_unpack``: ``check_archive`` then ESPnet's own ``unpack`` (unchanged: once the members are checked it only
  writes inside the folder), so a packed model unpacks exactly as ESPnet unpacks it.
* ``checked_dict_from_cache``: ESPnet's ``get_dict_from_cache`` for an already unpacked model, entries checked.

``utils/safe_load.py`` (loading model files without running their code, ESPnet's loaders wrapped) builds on this.
"""

from __future__ import annotations

import os
import re
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Tuple, Union

import yaml

from espnet2_ext.common import DataError

PathLike = Union[str, os.PathLike]
MAX_UNPACK_BYTES = 32 * 1024**3  # a 1B-parameter fp32 model is 4 GiB; far above any real packed model
MAX_MEMBERS = 10_000
MAX_YAML_BYTES = 16 * 1024**2
MAX_YAML_NODES = 1_000_000  # a 50k-token token_list is 50k nodes
MAX_BYTES_ENV, MAX_MEMBERS_ENV = "TOKENVERSE_UNPACK_MAX_BYTES", "TOKENVERSE_UNPACK_MAX_MEMBERS"


class UnsafeModelError(DataError):
    """A packed model or model file that would write outside its folder, fill the disk, or run code on load."""


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
            raise UnsafeModelError(
                f"{where}: YAML expands to more than {limit} nodes (alias bomb?); not a config ESPnet wrote"
            )
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


# Folders of packed models whose meta.yaml was checked: a config inside one may only name files inside it
# (``utils/config_guard.py``). Lexical absolute paths: a hub snapshot's files are links into its blob store.
_PACKED_ROOTS: set = set()


def _lexical(path: PathLike) -> Path:
    return Path(os.path.normpath(os.path.abspath(path)))


def packed_root_of(path: PathLike) -> Optional[Path]:
    """The innermost checked packed-model folder holding ``path``, or None (a config the user gave by path)."""
    path = _lexical(path)
    inside = [r for r in _PACKED_ROOTS if r == path or r in path.parents]
    return max(inside, key=lambda r: len(r.parts)) if inside else None


def check_meta_entries(meta, root: Path, where: str, resolve: bool = True) -> Dict[str, str]:
    """ESPnet's ``meta.yaml`` ``yaml_files``/``files``: every entry a relative path inside ``root``; ``root`` is
    then recorded as a packed model's folder (``packed_root_of``)."""
    if (
        not isinstance(meta, dict)
        or not isinstance(meta.get("yaml_files"), dict)
        or not isinstance(meta.get("files"), dict)
    ):
        raise UnsafeModelError(f"{where}: meta.yaml lacks the yaml_files/files mappings that ESPnet's packer writes")
    entries = {**meta["yaml_files"], **meta["files"]}
    for key, value in entries.items():
        why = _name_problem(value) if isinstance(value, str) else "not a path"
        if why is None and resolve:
            dest = _outside(root.resolve(), value)
            why = f"a path that resolves to {dest}, outside {root}" if dest is not None else None
        if why is not None:
            raise UnsafeModelError(f"{where}: meta.yaml entry {key}: {value!r} is {why}; refusing to use this model")
    _PACKED_ROOTS.add(_lexical(root))
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
        raise UnsafeModelError(
            f"{path}: cannot be opened as a packed model ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:150] if str(e) else ''}); give a .zip or .tar(.gz) "
            f"made by espnet2.bin.pack"
        ) from None


def check_archive(
    archive: PathLike,
    outpath: PathLike,
    max_bytes: Optional[int] = None,
    max_members: Optional[int] = None,
    zip_only: bool = False,
) -> Optional[Dict[str, str]]:
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
                    raise UnsafeModelError(
                        f"{archive}: more than {max_members} members (limit {MAX_MEMBERS_ENV}); {fix}"
                    )
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
                    raise UnsafeModelError(
                        f"{archive}: member {name!r} takes the unpacked size past the limit of "
                        f"{max_bytes} bytes (limit {MAX_BYTES_ENV}; a zip bomb?); {fix}"
                    )
                infos.append(info)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
            raise UnsafeModelError(
                f"{archive}: damaged archive ({type(e).__name__}: "
                f"{(str(e).splitlines() or [''])[0][:150]}); download it again"
            ) from None
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
