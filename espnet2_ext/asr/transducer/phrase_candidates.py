"""A biasing list's candidates for mode rescore (``span_rescore.py``): the spellable phrases with their token ids,
and what the CTC prefilter needs, made once per list: a prefix tree of the spellings (``PhraseTrie``, CTC over every
phrase at once in numpy on the CPU) and the phrases grouped by length (``ctc_loss`` elsewhere)."""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch


class Candidates(list):
    """A list's (phrase, token ids) pairs, with what the CTC prefilter needs made once per list
    (``DecoderBiasing.candidates`` caches it): a prefix tree of the spellings for the CPU (``trie``), the phrases
    grouped by length for ``ctc_loss`` elsewhere (``by_length``); each is built on first use."""

    def __init__(self, pairs=()):
        super().__init__(pairs)
        self.spellings = {tuple(ids) for _, ids in self}
        self._trie: Optional[PhraseTrie] = None
        self._by_length: Optional[list] = None

    @property
    def trie(self) -> "PhraseTrie":
        if self._trie is None:
            self._trie = PhraseTrie([ids for _, ids in self])
        return self._trie

    @property
    def by_length(self) -> list:
        """One ``ctc_loss`` call per phrase length L: (L, rows [n], their pieces [n, L], their targets in the
        per-phrase columns [n, L]: piece j is column j + 1, or the previous piece's column when it repeats it,
        so CTC still needs a blank between the two)."""
        if self._by_length is None:
            groups: Dict[int, List[int]] = {}
            for row, (_, ids) in enumerate(self):
                groups.setdefault(len(ids), []).append(row)
            self._by_length = []
            for length in sorted(groups):
                rows = groups[length]
                pieces = [list(self[r][1]) for r in rows]
                cols = []
                for ids in pieces:
                    col: List[int] = []
                    for j, tok in enumerate(ids):
                        col.append(col[-1] if j and tok == ids[j - 1] else j + 1)
                    cols.append(col)
                self._by_length.append(
                    (
                        length,
                        torch.tensor(rows),
                        torch.tensor(pieces).view(-1, length),
                        torch.tensor(cols).view(-1, length),
                    )
                )
        return self._by_length


class PhraseTrie:
    """The phrases' spellings as a prefix tree, for CTC over every phrase at once: a phrase's CTC forward variables
    up to a piece depend only on the pieces so far, so phrases sharing a prefix share them (1000 names of the mini
    lists: 3300 nodes for 5400 pieces). Node 0 is the root (the empty prefix); a parent is made before its
    children, so one vectorised step per frame updates every node from the previous frame."""

    def __init__(self, spellings: Sequence[Sequence[int]]):
        # in sorted order a spelling shares with the tree exactly its common prefix with the previous spelling:
        # only the pieces after it make nodes (no lookups)
        order = sorted(range(len(spellings)), key=lambda i: spellings[i])
        parent, token, ends = [0], [0], [0] * len(spellings)
        prev: Sequence[int] = ()
        path = [0]  # path[d]: the node of the previous spelling's first d pieces
        for i in order:
            ids = spellings[i]
            d = 0
            while d < len(ids) and d < len(prev) and ids[d] == prev[d]:
                d += 1
            del path[d + 1 :]
            for tok in ids[d:]:
                parent.append(path[-1])
                token.append(tok)
                path.append(len(parent) - 1)
            ends[i] = path[len(ids)]
            prev = ids
        self.parent = np.asarray(parent, dtype=np.int64)  # parent: [M]
        self.token = np.asarray(token, dtype=np.int64)  # token: [M] (the root's is unused)
        # a piece that repeats its parent's needs a blank between the two: no arc from the parent's piece state
        self.fresh = (self.token != self.token[self.parent]).astype(np.float64)  # fresh: [M]
        self.fresh[0] = 0.0
        self.ends = np.asarray(ends, dtype=np.int64)  # ends: [N], each phrase's last node

    def ctc_logliks(self, logp: np.ndarray, blank_id: int) -> np.ndarray:
        """log P_ctc(phrase | frames) of every phrase, all alignments: ``logp`` [W, V] log-probabilities -> [N]
        (-inf where a phrase cannot fit). Two states per node (its piece last emitted, or a blank after it), in
        probabilities scaled by each frame's maximum (float64: a phrase 1e-300 below the best is what underflows)."""
        probs = np.exp(logp.astype(np.float64))  # probs: [W, V]
        blank = np.zeros(self.parent.size)  # blank: [M], P(prefix, then blanks) up to the frame, scaled
        piece = np.zeros(self.parent.size)  # piece: [M], P(prefix with its last piece emitted on the frame), scaled
        blank[0], log_scale = 1.0, 0.0  # before the first frame: the empty prefix
        for t in range(probs.shape[0]):
            enter = blank[self.parent] + piece[self.parent] * self.fresh  # enter: [M], arcs into a node's piece
            blank = (blank + piece) * probs[t, blank_id]  # from the previous frame's two states
            piece = (piece + enter) * probs[t, self.token]
            piece[0] = 0.0
            top = max(blank.max(), piece.max())
            if top == 0.0:
                return np.full(self.ends.size, -np.inf)
            blank /= top
            piece /= top
            log_scale += math.log(top)
        with np.errstate(divide="ignore"):
            return np.log(blank[self.ends] + piece[self.ends]) + log_scale


def list_candidates(phrases: Sequence[str], encode, unk_id: Optional[int] = None) -> Candidates:
    """(phrase, token ids) of each phrase the tokenizer can spell (``encode``: text -> ids; a phrase holding
    ``unk_id`` cannot be spelled), without repeated spellings, in list order."""
    out: List[Tuple[str, List[int]]] = []
    seen: Dict[Tuple[int, ...], bool] = {}
    for p in phrases:
        ids = [int(i) for i in encode(p)]
        if ids and unk_id not in ids and tuple(ids) not in seen:
            seen[tuple(ids)] = True
            out.append((p, ids))
    return Candidates(out)
