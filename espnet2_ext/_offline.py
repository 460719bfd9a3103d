"""Keep ESPnet's import offline.

``espnet2.text.phoneme_tokenizer`` imports ``g2p_en``, whose module body calls ``nltk.download`` when the NLTK
tagger/cmudict data are absent: a network request (it hangs or prints errors on an offline box) on every
``import espnet2.tasks.asr``. We import ``g2p_en`` once with ``nltk.download`` answering "not available", so the
data simply stay missing; only the g2p_en phonemizer (which this project never uses) would need them.
"""

from __future__ import annotations

import importlib
import logging
import sys


def _refuse_download(*args, **kwargs) -> bool:
    logging.getLogger(__name__).debug("espnet2_ext: skipped nltk.download%s (offline by design)", args)
    return False


def import_g2p_en_offline() -> None:
    if "g2p_en" in sys.modules:
        return
    try:
        import nltk
    except ImportError:
        return
    original = nltk.download
    nltk.download = _refuse_download
    try:
        importlib.import_module("g2p_en")
    except Exception:  # g2p_en broken or absent: ESPnet handles that itself later
        pass
    finally:
        nltk.download = original
