"""Recipe stage 9: prepare (and optionally push) a Hugging Face model repo from a packed model.

    python -m espnet2_ext.bin.upload_model --packed_model exp/asr_x/model.zip --repo_id user/name \
        --out_dir exp/hub_upload [--results_md exp/asr_x/RESULTS.md] [--push [--private]]
    python -m espnet2_ext.bin.upload_model --exp_dir exp/asr_x --repo_id user/name ...   # packs first (run from
                                                                                        # the recipe dir)

Dry run by default: ``--out_dir`` gets exactly what would be pushed, laid out as ESPnet's model zoo expects on the
Hub (the packed zip unzipped as is: ``meta.yaml``, the config with its recipe-relative paths, the weights, the
bpe model; the token list lives inside the config), plus a ``README.md`` model card; nothing touches the network.
``--push`` uploads the folder, and only when ``huggingface_hub`` is importable and a token is found (``HF_TOKEN``
or the token stored by ``hf auth login``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Tuple

import yaml

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.common import DataError, atomic_dir
from espnet2_ext.hub.model_card import build_model_card
from espnet2_ext.utils.safe_archive import MAX_YAML_BYTES, UnsafeModelError, check_archive, load_yaml_bytes

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
MODEL_FILE_PREFERENCE = ("valid.loss.ave.pth", "valid.acc.ave.pth", "valid.loss.best.pth", "valid.acc.best.pth")
CONFIG_KEY, MODEL_KEY = "asr_train_config", "asr_model_file"  # ESPnet's ASRPackedContents names


class UploadError(RuntimeError):
    """What is wrong with the package or the push setup, and how to fix it."""


def hub_token_or_error():
    """(huggingface_hub module, token) for ``--push``; a one-line UploadError naming what is missing."""
    try:
        import huggingface_hub
    except ImportError:
        raise UploadError(
            "--push needs the huggingface_hub package, which is not installed: pip install "
            "huggingface_hub (or leave out --push for a dry run)"
        ) from None
    token = os.environ.get("HF_TOKEN") or huggingface_hub.get_token()
    if not token:
        raise UploadError(
            "--push needs a Hugging Face token and none was found: set HF_TOKEN or run "
            "`hf auth login` (or leave out --push for a dry run)"
        )
    return huggingface_hub, token


# ---- the packed zip ------------------------------------------------------------------------------------
def read_package(path: Path) -> Tuple[List[str], Dict]:
    """Member names and parsed ``meta.yaml`` of an ESPnet packed model, validated."""
    if not path.is_file() or not zipfile.is_zipfile(path):
        raise UploadError(
            f"{path}: not a zip file; make one with `python -m espnet2.bin.pack asr ...` "
            f"(recipe stage 8) or give --exp_dir"
        )
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
        bad = [n for n in names if PurePosixPath(n).is_absolute() or ".." in PurePosixPath(n).parts]
        if bad:
            raise UploadError(f"{path}: unsafe member path {bad[0]}: repack from the recipe dir")
        if "meta.yaml" not in names:
            raise UploadError(f"{path}: no meta.yaml at the top: not made by ESPnet's packer (espnet2.bin.pack)")
        try:  # bounded: a meta.yaml zip bomb or YAML alias bomb is refused before it is expanded
            if z.getinfo("meta.yaml").file_size > MAX_YAML_BYTES:
                raise UnsafeModelError(f"{path}: meta.yaml is larger than {MAX_YAML_BYTES} bytes")
            meta = load_yaml_bytes(z.read("meta.yaml"), f"{path}: meta.yaml")
        except UnsafeModelError as e:
            raise UploadError(str(e)) from None
    if (
        not isinstance(meta, dict)
        or not isinstance(meta.get("yaml_files"), dict)
        or not isinstance(meta.get("files"), dict)
    ):
        raise UploadError(f"{path}: meta.yaml lacks the yaml_files/files mappings that ESPnet's packer writes")
    for key, where in ((CONFIG_KEY, "yaml_files"), (MODEL_KEY, "files")):
        member = meta[where].get(key)
        if member is None:
            raise UploadError(
                f"{path}: meta.yaml {where} has no {key}: pack an ASR model (espnet2.bin.pack asr --{key} ...)"
            )
        if member not in names:
            raise UploadError(f"{path}: meta.yaml names {member} as {key}, but the zip does not contain it")
    return names, meta


def check_config(root: Path, meta: Dict) -> Dict:
    """The packed config; every file it needs for decoding must be inside ``root`` at the same relative path."""
    cfg_rel = meta["yaml_files"][CONFIG_KEY]
    config = yaml.safe_load((root / cfg_rel).read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise UploadError(f"{cfg_rel}: not a YAML mapping; is it an ESPnet training config?")
    needed = []
    if config.get("token_type") == "bpe":
        needed.append(("bpemodel", config.get("bpemodel")))
    if isinstance(config.get("token_list"), str):
        needed.append(("token_list", config["token_list"]))
    for key, value in needed:
        if not value or Path(value).is_absolute() or not (root / value).is_file():
            raise UploadError(
                f"{cfg_rel}: {key} '{value}' is not in the package: repack with --option {value}, "
                f"running the packer from the recipe dir so the path stays relative"
            )
    front = config.get("frontend_conf") or {}
    if config.get("frontend") == "s3prl_tokenverse" and "upstream_skeleton" not in front:
        print(
            f"warning: {cfg_rel} has no frontend_conf.upstream_skeleton: loading will need the upstream "
            f"checkpoint {(front.get('frontend_conf') or {}).get('path_or_url')}"
        )
    return config


def build_upload_folder(packed: Path, repo_id: str, out_dir: Path, results_md: Optional[str] = None) -> List[str]:
    """Unzip ``packed`` and add the model card; ``out_dir`` is replaced only once all of it is written.

    ``results_md`` (text) defaults to the package's own ``RESULTS.md`` when it has one. Returns the files, relative
    to ``out_dir``.
    """
    names, meta = read_package(packed)
    ours = out_dir.is_dir() and (not any(out_dir.iterdir()) or (out_dir / "meta.yaml").is_file())
    if out_dir.exists() and not ours:  # checked first: an existing folder is replaced only by a new upload folder
        raise UploadError(f"{out_dir}: exists and is not an upload folder from this tool; choose another --out_dir")
    with atomic_dir(out_dir) as tmp:
        try:  # members inside tmp, no links, bounded size, sane meta.yaml: only then unzip
            check_archive(packed, tmp, zip_only=True)
        except UnsafeModelError as e:
            raise UploadError(str(e)) from None
        with zipfile.ZipFile(packed) as z:
            z.extractall(tmp)
        config = check_config(tmp, meta)
        if results_md is None:
            packaged = sorted(n for n in names if PurePosixPath(n).name == "RESULTS.md")
            results_md = (tmp / packaged[0]).read_text(encoding="utf-8") if packaged else None
        files = sorted(set(names) | {"README.md"})
        card = build_model_card(
            repo_id,
            config,
            files,
            results_md,
            meta,
            config_path=meta["yaml_files"][CONFIG_KEY],
            model_path=meta["files"][MODEL_KEY],
        )
        (tmp / "README.md").write_text(card, encoding="utf-8")
    return files


# ---- packing an exp dir with ESPnet's packer ----------------------------------------------------------
def pack_exp_dir(
    exp_dir: Path, outpath: Path, model_file: Optional[Path] = None, results_md: Optional[Path] = None
) -> Path:
    """``espnet2.bin.pack asr`` on an experiment dir, as the recipe's pack stage does (run from the recipe dir)."""
    config_path = exp_dir / "config.yaml"
    if not config_path.is_file():
        raise UploadError(f"{exp_dir}: no config.yaml; give the training output dir (exp/asr_...)")
    if model_file is None:
        found = [exp_dir / n for n in MODEL_FILE_PREFERENCE if (exp_dir / n).exists()]
        if not found:
            raise UploadError(f"{exp_dir}: none of {', '.join(MODEL_FILE_PREFERENCE)} exists; give --model_file")
        model_file = found[0]
    elif not model_file.is_file():
        raise UploadError(f"{model_file}: no such model file")
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    options: List[Path] = []
    if config.get("token_type") == "bpe":
        bpe = Path(config.get("bpemodel") or "")
        if not bpe.is_file() or bpe.is_absolute():
            raise UploadError(
                f"{config_path}: bpemodel '{bpe}' must be an existing path relative to the current "
                f"directory: run from the recipe dir"
            )
        options.append(bpe)
    results = results_md or exp_dir / "RESULTS.md"
    options += [p for p in (results, exp_dir / "images") if p.exists()]
    from espnet2.main_funcs.pack_funcs import pack  # heavy import: only on this path

    pack(files={MODEL_KEY: model_file}, yaml_files={CONFIG_KEY: config_path}, option=options, outpath=outpath)
    return outpath


# ---- CLI ------------------------------------------------------------------------------------------------
def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--packed_model", type=Path, help="zip written by espnet2.bin.pack asr")
    src.add_argument("--exp_dir", type=Path, help="training output dir: packed here first (run from the recipe dir)")
    p.add_argument(
        "--model_file",
        type=Path,
        default=None,
        help=f"with --exp_dir; default: first of {', '.join(MODEL_FILE_PREFERENCE)}",
    )
    p.add_argument("--repo_id", required=True, help="Hugging Face repo, user/name")
    p.add_argument(
        "--out_dir", type=Path, default=Path("exp/hub_upload"), help="the folder that is (or would be) pushed"
    )
    p.add_argument(
        "--results_md",
        type=Path,
        default=None,
        help="results table for the card (default: the package's RESULTS.md, if any)",
    )
    p.add_argument("--push", action="store_true", help="upload; without it nothing leaves this machine")
    p.add_argument("--private", action="store_true", help="with --push: create the repo as private")
    p.add_argument("--commit_message", default="Upload TokenVerse++ ESPnet model")
    return p


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def run(argv: Optional[List[str]] = None) -> Path:
    args = get_parser().parse_args(argv)
    if not REPO_ID.match(args.repo_id):
        raise UploadError(f"--repo_id '{args.repo_id}' is not of the form user/name")
    hub, token = hub_token_or_error() if args.push else (None, None)  # fail before any work
    results = None
    if args.results_md is not None:
        if not args.results_md.is_file():
            raise UploadError(f"--results_md {args.results_md}: no such file")
        results = args.results_md.read_text(encoding="utf-8")
    if args.exp_dir is not None:
        with tempfile.TemporaryDirectory(prefix="tv_pack_") as tmp:
            zip_path = pack_exp_dir(args.exp_dir, Path(tmp) / "model.zip", args.model_file, args.results_md)
            files = build_upload_folder(zip_path, args.repo_id, args.out_dir, results)
    else:
        files = build_upload_folder(args.packed_model, args.repo_id, args.out_dir, results)
    sizes = {f: (args.out_dir / f).stat().st_size for f in files}
    verb = "pushing" if args.push else "would push"
    print(
        f"{verb} {len(files)} files ({_size(sum(sizes.values()))}) from {args.out_dir} to "
        f"https://huggingface.co/{args.repo_id}:"
    )
    for f in files:
        print(f"  {_size(sizes[f]):>10}  {f}")
    if not args.push:
        print("dry run: nothing was pushed; add --push to upload")
        return args.out_dir
    api = hub.HfApi(token=token)
    api.create_repo(args.repo_id, repo_type="model", private=args.private, exist_ok=True)
    api.upload_folder(
        folder_path=str(args.out_dir), repo_id=args.repo_id, repo_type="model", commit_message=args.commit_message
    )
    print(f"pushed: https://huggingface.co/{args.repo_id}")
    return args.out_dir


# UnsafeModelError (a refused package member) is a DataError
main = cli_main(run, prog="upload_model", errors=(UploadError, DataError))

if __name__ == "__main__":
    sys.exit(main())
