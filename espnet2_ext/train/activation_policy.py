"""Which tasks are active for an utterance in a training step (TokenVerse++ activation policies).

* ``label``: active = available (every task the utterance is annotated for).
* ``sample``: the primary task plus a uniformly drawn subset of the available auxiliary tasks, re-drawn each
  time the utterance is loaded (every subset, the empty one included, has probability 2^-k for k available
  auxiliary tasks).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from espnet2_ext.task_spec import PRIMARY_TASK

POLICIES = ("label", "sample")


def choose_active(available: Sequence[str], policy: str, rng) -> Tuple[str, ...]:
    """Active tasks, in the order of ``available`` (primary always included).

    ``rng``: a ``np.random.Generator``, or the ``np.random`` module (its global state, which ESPnet seeds)."""
    if policy == "label":
        return tuple(available)
    if policy == "sample":
        aux = [t for t in available if t != PRIMARY_TASK]
        draw = rng.integers if hasattr(rng, "integers") else rng.randint
        keep = draw(0, 2, size=len(aux)).astype(bool) if aux else np.zeros(0, bool)
        chosen = {t for t, k in zip(aux, keep) if k}
        return tuple(t for t in available if t == PRIMARY_TASK or t in chosen)
    raise ValueError(f"unknown activation policy '{policy}': choose one of {', '.join(POLICIES)}")
