"""Run by test_wheel.py with the python of a fresh venv holding the built wheel: import every module of the installed
espnet2_ext, then every module those import inside functions (unless the import is guarded by ``except
ImportError``), run every CLI's ``--help`` as ``python -m`` would, and record each file opened under the source tree.

    python wheel_probe.py OUT_JSON SOURCE_ROOT ALLOWED_ROOT

Files under ALLOWED_ROOT (the recipe venv the overlay links into, which may lie inside the source tree) do not count.
"""

import ast
import contextlib
import importlib
import io
import json
import os
import pkgutil
import runpy
import sys

out_json, source_root, allowed_root = (os.path.realpath(a) for a in sys.argv[1:4])
opened = []


def _audit(event, args):
    # "open" covers open(), io.open_code (imports), os.open; the path may be an fd (int): skip those
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.realpath(os.fsdecode(args[0]))
        if path.startswith(source_root + os.sep) and not path.startswith(allowed_root + os.sep):
            opened.append(path)


sys.addaudithook(_audit)
import espnet2_ext  # noqa: E402

modules = sorted(m.name for m in pkgutil.walk_packages(espnet2_ext.__path__, "espnet2_ext."))
errors = {}
for name in modules:
    try:
        importlib.import_module(name)
    except Exception as e:  # reported, so one failure shows all the others too
        errors[name] = f"{type(e).__name__}: {e}"


def _guarded(tree):
    """ids of the import nodes inside a ``try`` that catches ImportError (or a base of it): optional imports."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            h.type is None
            or any(
                isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError", "Exception")
                for n in ast.walk(h.type)
            )
            for h in node.handlers
        ):
            ids |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return ids


def lazy_imports():
    """module -> first 'file:line' importing it, over every import statement of the installed package."""
    found = {}
    for name in modules:
        path = sys.modules[name].__file__
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        guarded = _guarded(tree)
        for node in ast.walk(tree):
            if id(node) in guarded:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                targets = [node.module]
            else:
                continue
            for t in targets:
                if t.split(".")[0] != "espnet2_ext":
                    found.setdefault(t, f"{name}:{node.lineno}")
    return found


for target, where in sorted(lazy_imports().items()):
    try:
        importlib.import_module(target)
    except Exception as e:
        errors[f"{target} (imported at {where})"] = f"{type(e).__name__}: {e}"

helps = {}
for name in [m for m in modules if m.startswith("espnet2_ext.bin.") and not m.rsplit(".", 1)[1].startswith("_")]:
    buf, argv = io.StringIO(), sys.argv
    sys.argv = [name, "--help"]
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            runpy.run_module(name, run_name="__main__", alter_sys=True)
        code = "returned without exiting"
    except SystemExit as e:
        code = e.code
    except Exception as e:
        code = f"{type(e).__name__}: {e}"
    finally:
        sys.argv = argv
    helps[name] = {"exit": code, "usage": "usage:" in buf.getvalue().lower()}

files = {m: getattr(sys.modules[m], "__file__", None) for m in sys.modules if m.split(".")[0] == "espnet2_ext"}
with open(out_json, "w", encoding="utf-8") as f:
    json.dump({"modules": modules, "errors": errors, "helps": helps, "opened": sorted(set(opened)), "files": files}, f)
