"""Run ``registry.register()`` right after ``espnet2.tasks.asr`` is imported, and keep that import offline.

A ``sys.meta_path`` finder wraps the loader of ``espnet2.tasks.asr`` (and imports ``g2p_en`` offline before
``espnet2`` itself loads). If ESPnet is already imported, both happen at once.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

_TARGET = "espnet2.tasks.asr"


class _RegisterAfterLoad(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        from espnet2_ext.registry import register

        register()


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname == "espnet2":
            from espnet2_ext._offline import import_g2p_en_offline

            import_g2p_en_offline()
            return None
        if fullname != _TARGET:
            return None
        # Let the other finders locate the real module, then wrap its loader.
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                spec.loader = _RegisterAfterLoad(spec.loader)
                return spec
        return None


def install() -> None:
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    from espnet2_ext._offline import import_g2p_en_offline

    if "espnet2" in sys.modules:
        import_g2p_en_offline()
    sys.meta_path.insert(0, _Finder())
    if _TARGET in sys.modules:
        from espnet2_ext.registry import register

        register()
