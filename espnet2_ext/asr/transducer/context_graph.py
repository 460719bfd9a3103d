"""Contextual biasing for the transducer searches: an Aho-Corasick graph of the list's phrases over token ids.

The idea is the one of icefall's/sherpa-onnx's hotwords (``--hotwords-file``, ``--hotwords-score``); the code is
ours. A hypothesis carries one graph state; each emitted token moves it and adds a bonus to the hypothesis score:

* **trie + failure arcs**: the phrases' token sequences form a trie; a token with no arc from the current node
  follows failure arcs to the longest suffix of the match that is still a prefix of some phrase, so phrases that
  share prefixes or overlap ("new york", "york city") are all found in one pass.
* **bonus per matched token**: the phrase's own weight (list line ``phrase :w``) or the global ``--biasing_weight``;
  where phrases share a prefix, the prefix's tokens get the larger weight.
* **given back / kept**: the bonus of a partial match is *pending*; when the match fails (or the utterance ends in
  it) the pending bonus is subtracted again. When a phrase completes (at the node or at a suffix of it) the whole
  current match is *committed*: it stays, even if a longer phrase sharing that prefix then fails. So the bonus a
  finished hypothesis keeps is that of the phrases it contains (plus, where a phrase completes at the end of a
  longer partial match, e.g. "york" inside "new york city" cut after "york", that match's earlier tokens). Task
  tokens are in no phrase: one inside a match ends it.
* **state**: ``(node, k)`` encoded as one int, ``k`` the number of leading tokens of the current match already
  committed. The state is a function of the token sequence alone (the graph is deterministic, blank leaves it as
  it is), so two hypotheses with equal token sequences have equal states and equal bonuses: the beam search's
  merge rule (merge only equal token sequences) keeps states and scores consistent; no extra rule is needed.
* **gated mode** (ours): the bonus applies only inside an open ``[NE]`` span. Outside one the state is
  ``OUTSIDE`` and nothing is scored; ``[NE]`` opens at the root; ``[/NE]`` gives back what is pending, adds
  ``close_bonus`` when it comes right after a complete phrase, and leaves the span. (``close_bonus`` applies to
  ``[/NE]`` after a complete phrase in the ungated mode as well.)

``bonus_row`` gives, per hypothesis, the bonus of every next token as one dense row, so the searches add it to the
candidate scores before they prune (a name the model gives little probability can still enter the beam);
``step`` gives the same number for one token and the next state.

Building: ``build_context_graph`` tokenises each phrase with the model's tokenizer as the words appear
mid-sentence; phrases with a piece outside the vocabulary (``<unk>``) are skipped, counted and logged once with the
first one's ``file:line``.
"""

from __future__ import annotations

import logging
import time
from array import array
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

OUTSIDE = -1  # gated mode: the hypothesis is outside every [NE] span (no bonus)
MODES = ("ungated", "gated")
_ROW_CACHE = 4096  # bonus rows kept per graph (each one [V] float64); cleared when full
_STEP_CACHE = 1 << 18  # (state, token) -> (next state, bonus) kept per graph; cleared when full


class ContextGraph:
    """Aho-Corasick automaton over token ids with per-token bonuses (see the module doc).

    Args:
        phrases: (token ids, bonus per token) per phrase; empty sequences are ignored.
        vocab: vocabulary size (token ids are < vocab).
        blank_id: the transducer's blank (never moves the state).
        mode: ``ungated`` or ``gated``.
        open_id, close_id: the ``[NE]``/``[/NE]`` token ids (gated mode needs them; ``close_bonus`` needs
            ``close_id``).
        close_bonus: added to ``[/NE]`` right after a complete phrase.
    """

    def __init__(
        self,
        phrases: Iterable[Tuple[Sequence[int], float]],
        vocab: int,
        blank_id: int = 0,
        mode: str = "ungated",
        open_id: Optional[int] = None,
        close_id: Optional[int] = None,
        close_bonus: float = 0.0,
    ):
        if mode not in MODES:
            raise ValueError(f"biasing mode '{mode}' is unknown: choose {' or '.join(MODES)}")
        if mode == "gated" and (open_id is None or close_id is None):
            raise ValueError(
                "gated biasing needs the model's [NE] and [/NE] tokens; this model has none: use --biasing_mode ungated"
            )
        self.vocab, self.blank_id, self.mode = int(vocab), int(blank_id), mode
        self.gated = mode == "gated"
        self.open_id, self.close_id, self.close_bonus = open_id, close_id, float(close_bonus)
        self.num_phrases = 0
        self._build(phrases)
        self._row_cache: Dict[int, torch.Tensor] = {}
        self._row_device: Optional[torch.device] = None
        self._step_cache: Dict[int, Tuple[int, float]] = {}
        toks, kids = self._children(0)
        self._root_row = np.zeros(self.vocab, dtype=np.float64)  # [V] bonus of each first token of a phrase
        self._root_row[toks] = np.frombuffer(self.score, dtype=np.float64)[kids]

    # ---- building -----------------------------------------------------------------------------------
    def _build(self, phrases: Iterable[Tuple[Sequence[int], float]]) -> None:
        goto: Dict[int, int] = {}  # node * V + token -> child node
        parent, weight, is_end = array("i", [0]), array("d", [0.0]), bytearray(1)
        V = self.vocab
        for tokens, w in phrases:
            if not tokens:
                continue
            node = 0
            for tok in tokens:
                if not 0 <= tok < V:
                    raise ValueError(f"token id {tok} outside the vocabulary (size {V})")
                key = node * V + tok
                child = goto.get(key)
                if child is None:
                    child = goto[key] = len(parent)
                    parent.append(node)
                    weight.append(w)
                    is_end.append(0)
                elif w > weight[child]:  # shared prefix: the larger weight
                    weight[child] = w
                node = child
            is_end[node] = 1
            self.num_phrases += 1
        self.goto = goto
        self.parent = parent
        n = len(parent)
        keys = np.fromiter(goto.keys(), dtype=np.int64, count=len(goto))
        order = np.argsort(keys, kind="stable")
        # children of node u: _kid_tok/_kid_node[_kid_start[u]:_kid_start[u + 1]] (CSR layout, token order)
        self._kid_tok = (keys[order] % V).astype(np.int64)
        self._kid_node = np.fromiter(goto.values(), dtype=np.int64, count=len(goto))[order]
        self._kid_start = np.searchsorted(keys[order], np.arange(n + 1, dtype=np.int64) * V)
        self._link(n, weight, is_end)

    def _children(self, u: int) -> Tuple[np.ndarray, np.ndarray]:
        a, b = self._kid_start[u], self._kid_start[u + 1]
        return self._kid_tok[a:b], self._kid_node[a:b]

    def _link(self, n: int, weight: array, is_end: bytearray) -> None:
        """Failure arcs, depths, cumulative scores and 'a phrase ends here' flags, in breadth-first order."""
        self.fail, self.depth, self.score = array("i", [0]) * n, array("i", [0]) * n, array("d", [0.0]) * n
        self.ends = bytearray(n)  # a phrase ends at this node or at a suffix of it (the automaton's output)
        queue = [0]
        for u in queue:  # grows while iterated: breadth-first
            toks, kids = self._children(u)
            for tok, c in zip(toks.tolist(), kids.tolist()):
                self.depth[c] = self.depth[u] + 1
                self.score[c] = self.score[u] + weight[c]
                f = 0 if u == 0 else self._next(self.fail[u], tok)
                self.fail[c] = f
                self.ends[c] = is_end[c] or self.ends[f]
                queue.append(c)
        self.stride = max(self.depth) + 1 if n else 1

    # ---- the automaton ------------------------------------------------------------------------------
    def _next(self, node: int, tok: int) -> int:
        """The Aho-Corasick transition: the deepest node whose string is a suffix of node's string + tok."""
        V, goto = self.vocab, self.goto
        while True:
            child = goto.get(node * V + tok)
            if child is not None:
                return child
            if node == 0:
                return 0
            node = self.fail[node]

    def _base(self, node: int, k: int) -> float:
        """Cumulative score of the ancestor of ``node`` at depth ``k``."""
        while self.depth[node] > k:
            node = self.parent[node]
        return self.score[node]

    def pending(self, state: int) -> float:
        """Bonus given so far that is given back if the current match fails (0 outside a span)."""
        if state == OUTSIDE:
            return 0.0
        node, k = divmod(state, self.stride)
        return self.score[node] - self._base(node, k)

    def _move(self, node: int, k: int, tok: int) -> Tuple[int, float]:
        """(next state, pending bonus after the move and before any commit) for a word token."""
        nxt = self._next(node, tok)
        k = max(0, k - (self.depth[node] + 1 - self.depth[nxt]))  # the match lost its first tokens
        pending = self.score[nxt] - self._base(nxt, k)
        if self.ends[nxt]:  # a phrase is complete: commit the whole match
            k = self.depth[nxt]
        return nxt * self.stride + k, pending

    @property
    def start(self) -> int:
        """The state of an empty hypothesis."""
        return OUTSIDE if self.gated else 0

    def step(self, state: int, tok: int) -> Tuple[int, float]:
        """(next state, bonus) for emitting ``tok`` in ``state``. Blank changes nothing."""
        if tok == self.blank_id:
            return state, 0.0
        key = state * self.vocab + tok
        out = self._step_cache.get(key)
        if out is None:
            if len(self._step_cache) >= _STEP_CACHE:
                self._step_cache.clear()
            out = self._step_cache[key] = self._step(state, tok)
        return out

    def _step(self, state: int, tok: int) -> Tuple[int, float]:
        if state == OUTSIDE:
            return (0, 0.0) if tok == self.open_id else (OUTSIDE, 0.0)
        node, k = divmod(state, self.stride)
        before = self.score[node] - self._base(node, k)
        if tok == self.close_id:
            bonus = self.close_bonus if self.ends[node] else 0.0
            return (OUTSIDE if self.gated else 0), bonus - before
        if self.gated and tok == self.open_id:  # a span inside a span (the span grammar forbids it): restart
            return 0, -before
        nxt, after = self._move(node, k, tok)
        return nxt, after - before

    def final(self, state: int) -> float:
        """What the end of the utterance adds: the pending bonus taken back."""
        return -self.pending(state)

    def replay(self, tokens: Sequence[int]) -> Tuple[int, float]:
        """(state, total bonus incl. the final give-back) of a whole token sequence: the reference of the tests."""
        state, total = self.start, 0.0
        for tok in tokens:
            state, b = self.step(state, tok)
            total += b
        return state, total + self.final(state)

    # ---- dense rows for the searches ----------------------------------------------------------------
    def bonus_row(self, state: int, device: torch.device) -> torch.Tensor:
        """[V] float64: ``step(state, tok)[1]`` for every token ``tok`` (cached per state)."""
        row = self._row_cache.get(state)
        if row is None or device != self._row_device:
            if len(self._row_cache) >= _ROW_CACHE or device != self._row_device:
                self._row_cache.clear()
                self._row_device = device
            row = self._row_cache[state] = torch.from_numpy(self._row(state)).to(device)
        return row

    def _row(self, state: int) -> np.ndarray:
        row = np.zeros(self.vocab, dtype=np.float64)  # [V]
        if state == OUTSIDE:
            return row
        node, k = divmod(state, self.stride)
        before = self.score[node] - self._base(node, k)
        # through the root: a phrase's first token starts a new match (worth its bonus), any other token matches
        # nothing (0); either way the pending bonus is given back
        row = self._root_row - before  # [V]
        done = np.zeros(self.vocab, dtype=bool)  # [V] tokens already set by a deeper node of the failure chain
        m = node
        while m != 0:
            toks, _ = self._children(m)
            for tok in toks[~done[toks]].tolist():
                row[tok] = self._move(node, k, tok)[1] - before
            done[toks] = True
            m = self.fail[m]
        if self.close_id is not None:
            row[self.close_id] = (self.close_bonus if self.ends[node] else 0.0) - before
        if self.gated:
            row[self.open_id] = -before
        row[self.blank_id] = 0.0
        return row


class BiasingSlots:
    """Graph states of a search's hypotheses, for a batch whose rows (utterances) each have their own graph or none.

    The searches keep the states themselves, as an int64 array next to their other per-hypothesis fields
    (``BeamSearch.hyp[..., BIAS]`` [N, K], ``GreedySearch.bias_state`` [N]); this object turns them into bonus rows,
    next states and give-backs, at a few lines marked ``[biasing]``. Row ``r`` of a state array belongs to
    ``graphs[r]`` (rows are the search's own order)."""

    def __init__(self, graphs: Sequence[Optional[ContextGraph]]):
        self.graphs = list(graphs)

    @staticmethod
    def open(biasing, batch: int, rows: Optional[Sequence[int]] = None) -> Optional["BiasingSlots"]:
        """None when nothing is biased (no graph anywhere): the searches then run exactly as without biasing.
        ``biasing``: None, one ``ContextGraph`` for every utterance, or a sequence of ``batch`` graphs/None;
        ``rows``: the utterance of each search row (default: input order)."""
        graphs = per_utterance(biasing, batch)
        if rows is not None:
            graphs = [graphs[u] for u in rows]
        return BiasingSlots(graphs) if any(g is not None for g in graphs) else None

    def start(self, k: int) -> np.ndarray:
        """[N, k] int64: the state of an empty hypothesis, per row."""
        first = [g.start if g is not None else 0 for g in self.graphs]
        return np.repeat(np.array(first, dtype=np.int64)[:, None], k, axis=1)

    def bonus(
        self, states: np.ndarray, vocab: int, device: torch.device, rows: Optional[Sequence[int]] = None
    ) -> torch.Tensor:
        """[N, K, V] float64: the bonus of every next token of every hypothesis (states: [N, K] of the search's
        rows ``rows``, default 0..N-1)."""
        n, k = states.shape
        # most slots share a few (graph, state) pairs (the root above all): one row each, then one gather
        where: Dict[Tuple[int, int], int] = {}
        table: List[torch.Tensor] = []
        pos: List[int] = []
        for r, row in zip(range(n) if rows is None else rows, states.tolist()):
            g = self.graphs[r]
            for s in row:
                key = (id(g), s if g is not None else 0)
                j = where.get(key)
                if j is None:
                    j = where[key] = len(table)
                    table.append(
                        torch.zeros(vocab, dtype=torch.float64, device=device) if g is None else g.bonus_row(s, device)
                    )  # cached per state
                pos.append(j)
        gather = torch.tensor(pos, dtype=torch.long).to(device)  # [N*K]
        return torch.stack(table).index_select(0, gather).view(n, k, vocab)  # [N, K, V]

    def advance(self, states: np.ndarray, tokens: np.ndarray, rows: Optional[Sequence[int]] = None) -> np.ndarray:
        """[N, K] int64: the states after emitting ``tokens`` [N, K] from ``states`` [N, K] (blank keeps them);
        ``rows`` as in ``bonus``."""
        out = states.copy()
        for i, (r, row, toks) in enumerate(
            zip(range(len(out)) if rows is None else rows, states.tolist(), tokens.tolist())
        ):
            g = self.graphs[r]
            if g is not None:
                out[i] = [g.step(s, t)[0] for s, t in zip(row, toks)]
        return out

    def give_back(self, states: np.ndarray, row0: int = 0) -> np.ndarray:
        """[N, K] float64: what the end of the utterance adds (the unfinished match's bonus taken back); the
        states' rows are the search's rows ``row0, row0 + 1, ...``."""
        out = np.zeros(states.shape, dtype=np.float64)
        for r, row in enumerate(states.tolist()):
            g = self.graphs[row0 + r]
            if g is not None:
                out[r] = [g.final(s) for s in row]
        return out


def per_utterance(biasing, batch: int) -> List[Optional[ContextGraph]]:
    """None / one graph / B graphs -> a list of B graphs (or None)."""
    if biasing is None or isinstance(biasing, ContextGraph):
        return [biasing] * batch
    graphs = list(biasing)
    if len(graphs) != batch:
        raise ValueError(f"biasing has {len(graphs)} graphs for a batch of {batch} utterances")
    return graphs


def build_context_graph(
    phrases, encode: Callable[[str], List[int]], unk_id: Optional[int], vocab: int, weight: float, **graph_kwargs
) -> Tuple[Optional[ContextGraph], Dict[str, int]]:
    """A graph from a ``BiasingList``'s phrases (``.text``, ``.weight``, ``.where``).

    ``encode`` turns a phrase into token ids as its words appear mid-sentence; a phrase with ``unk_id`` among them
    is skipped (counted; one log line names the first one's file:line). Returns (graph or None when no phrase
    is left, {"phrases", "unspellable", "seconds"})."""
    start = time.perf_counter()
    spelled: List[Tuple[List[int], float]] = []
    bad: List[str] = []
    for p in phrases:
        ids = list(encode(p.text))
        if not ids or (unk_id is not None and unk_id in ids):
            bad.append(p.where or repr(p.text))
            continue
        spelled.append((ids, float(weight if p.weight is None else p.weight)))
    if bad:
        logging.warning(
            f"{bad[0]}: biasing phrase cannot be spelled with the model's tokens (<unk>); skipped "
            f"{len(bad)} such phrase(s) of {len(spelled) + len(bad)}"
        )
    graph = ContextGraph(spelled, vocab, **graph_kwargs) if spelled else None
    stats = {"phrases": len(spelled), "unspellable": len(bad), "seconds": round(time.perf_counter() - start, 3)}
    return graph, stats
