"""List rescoring of entity spans: each ``[NE] … [/NE]`` span of a decoded hypothesis is re-decided among the
biasing list's phrases by the transducer's own likelihood.

Why: a token bonus in the search (``context_graph.py``) only re-ranks spellings the beam already holds, and a
small model hears a name it never saw in training as one it did (``katrin`` -> ``claudia``): the right spelling
never enters the beam, and spelling distance to the list (``text/entity_snap.py``) cannot undo a different name.
The acoustics can: with the span's frames known (the search's emission frames), each list phrase is scored as the
span's words with ``log P(phrase [/NE] | frames, prefix)`` (the prediction network continued from the hypothesis
up to ``[NE]``; every alignment summed, ``rnnt_lattice.rnnt_lattice_loglik``), and the heard words the same way.
A phrase replaces the heard words when its score plus ``bonus`` beats theirs; heard words that already spell a
phrase of the list are kept as they are. Words outside entity spans never change; a hypothesis without spans, or
an empty list, is returned as it is.

The window of a span runs from the frame where ``[NE]`` was emitted up to the frame of the token after the span
(the utterance's end when there is none): the prefix and the rest of the hypothesis are the same for every
candidate, so their scores cancel. Spans are decided left to right; a later span's prefix holds the earlier
choices.

Long lists: the transducer's joint over [phrases, frames, tokens, vocabulary] is the cost (4.6x the decoding time at
100 phrases, 29x at 1000 on the mini model). When the model has a CTC head (ESPnet's auxiliary CTC), every phrase is
first scored by CTC over the window (widened by ``CTC_MARGIN`` frames; on the CPU in numpy over the list's prefix
tree, ``PhraseTrie``, elsewhere ``ctc_loss``), and only the ``top_k`` best go to the transducer: on the mini
recipe's dev lists the transducer's own best phrase is among CTC's 16 best in 89 % of spans, 32 best in 95 %. The
transducer scores the candidates' distinct prefixes once each (they share the empty one and most first pieces).
benchmark/README.md ("Mode rescore") has the costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from espnet2_ext.asr.transducer.phrase_candidates import Candidates
from espnet2_ext.asr.transducer.rnnt_lattice import lattice_loglik_host, rnnt_lattice_loglik
from espnet2_ext.asr.transducer.search_common import Hypothesis, JointScorer, PredictionNet, masked_log_softmax, on_host
from espnet2_ext.text.annotation import entity_spans as text_entity_spans

CHUNK = 64  # candidates scored per joint call: [CHUNK, W, U+1, V] floats stay within a few hundred MB
CTC_MARGIN = 2  # frames added on each side of a span's window for the CTC prefilter (CTC has no blank to end on)


@dataclass(frozen=True)
class SpanChoice:
    """One re-decided span: token index range [start, end) of its words in the input hypothesis, the heard ids,
    the chosen ids, the chosen phrase (None = the heard words kept) and the log-likelihood gain over the heard."""

    start: int
    end: int
    heard: Tuple[int, ...]
    chosen: Tuple[int, ...]
    phrase: Optional[str]
    gain: float


def entity_spans(yseq: Sequence[int], open_id: int, tag_ids: frozenset) -> List[Tuple[int, int]]:
    """[start, end) index ranges of the span words: the tokens after each ``[NE]`` up to the next tag token."""
    return text_entity_spans(yseq, open_id, tag_ids.__contains__)


class SpanRescorer:
    """Scores candidate spellings of entity spans with a transducer (ESPnet ``TransducerDecoder`` + joint network).

    ``open_id``/``close_id``: the ``[NE]``/``[/NE]`` ids; ``tag_ids``: every task-tag id (a span ends at the first);
    ``blank_penalty``: the search's, so candidates are scored as the search scored the hypothesis."""

    def __init__(
        self,
        decoder: torch.nn.Module,
        joint_network: torch.nn.Module,
        blank_id: int,
        open_id: int,
        close_id: int,
        tag_ids: Sequence[int],
        blank_penalty: float = 0.0,
        device: torch.device = torch.device("cpu"),
        ctc: Optional[torch.nn.Module] = None,
    ):
        self.ctc = ctc  # ESPnet's CTC module (log_softmax over encoder frames), for the prefilter; None: none
        self.pred = PredictionNet(decoder, device)
        self.joint = JointScorer(joint_network, blank_id, blank_penalty)
        self.blank_id, self.open_id, self.close_id = int(blank_id), int(open_id), int(close_id)
        self.tag_ids = frozenset(int(t) for t in tag_ids) | {self.open_id, self.close_id}
        self.device = torch.device(device)

    @torch.no_grad()
    def prefix(self, tokens: Sequence[int]) -> Tuple[torch.Tensor, tuple]:
        """Prediction-network output and state after the start symbol and ``tokens``: [1, D_dec], state."""
        return self._advance(self.pred.start(1), tokens)

    def _advance(self, prefix: Tuple[torch.Tensor, tuple], tokens: Sequence[int]) -> Tuple[torch.Tensor, tuple]:
        out, state = prefix
        if len(tokens) > 1 and hasattr(self.pred.decoder, "rnn_forward"):  # one recurrent call for the sequence
            dec = self.pred.decoder
            emb = dec.embed(torch.tensor([list(tokens)], dtype=torch.long, device=self.device))  # [1, L, D_emb]
            outs, state = dec.rnn_forward(emb, state)  # outs: [1, L, D_dec]
            return outs[:, -1], state
        for tok in tokens:
            out, state = self.pred.step(torch.tensor([int(tok)], device=self.device), state)
        return out, state

    @torch.no_grad()
    def score(
        self,
        enc_window: torch.Tensor,
        prefix: Tuple[torch.Tensor, tuple],
        labels: Sequence[Sequence[int]],
        suppress: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """log P(labels[i] | enc_window, prefix), all alignments summed, ending with a blank on the last frame.

        ``enc_window``: [W, D_enc] (W >= 1); ``labels``: N non-empty id sequences; ``suppress``: [V] bool or None.
        Returns [N] float."""
        scores = []
        enc = self.joint.enc(enc_window)  # enc: [W, D_joint]
        for lo in range(0, len(labels), CHUNK):
            scores.append(self._score_chunk(enc, prefix, labels[lo : lo + CHUNK], suppress))
        return torch.cat(scores) if scores else torch.zeros(0)

    def _score_chunk(self, enc, prefix, labels, suppress) -> torch.Tensor:
        # Candidates share label prefixes (every one the empty prefix, most their first pieces): the prediction
        # network and the joint run once per distinct prefix (a node of the candidates' trie), not per (candidate,
        # position), and padding costs nothing. node_of[i, u] is the node of labels[i][:u].
        n, u_max = len(labels), max(len(lab) for lab in labels)
        child: Dict[Tuple[int, int], int] = {}
        levels: List[List[int]] = [[0]]  # node ids by prefix length
        parent, token = [0], [self.blank_id]
        lab_rows, node_rows = [], []  # Python lists first: one tensor each (element writes cost ~2 us apiece)
        for seq in labels:
            lab_rows.append(list(seq) + [self.blank_id] * (u_max + 1 - len(seq)))
            nodes = [0] * (u_max + 1)  # padding -> node 0
            node_rows.append(nodes)
            node = 0
            for u, tok in enumerate(seq):
                nxt = child.get((node, tok))
                if nxt is None:
                    nxt = child[(node, tok)] = len(parent)
                    parent.append(node)
                    token.append(int(tok))
                    if len(levels) <= u + 1:
                        levels.append([])
                    levels[u + 1].append(nxt)
                nodes[u + 1] = node = nxt
        lab = torch.tensor(lab_rows, dtype=torch.long)  # lab: [N, U+1]
        node_of = torch.tensor(node_rows, dtype=torch.long)  # node_of: [N, U+1]
        out0, (h, c) = prefix  # [1, D_dec], [L, 1, H]
        outs = out0.new_empty((len(parent), out0.size(-1)))  # outs: [M, D_dec], M = the trie's nodes
        outs[0] = out0[0]
        row = {0: 0}  # node -> its row in the previous level's state
        for ids in levels[1:]:  # one prediction-network step per prefix length, over that level's nodes
            rows = torch.tensor([row[parent[k]] for k in ids], dtype=torch.long)
            tokens = torch.tensor([token[k] for k in ids], dtype=torch.long, device=self.device)
            out, (h, c) = self.pred.step(tokens, (h[:, rows], None if c is None else c[:, rows]))  # out: [n_l, D_dec]
            outs[torch.tensor(ids)] = out
            row = {k: j for j, k in enumerate(ids)}
        dec = self.joint.dec(outs)  # dec: [M, D_joint]
        logits = self.joint.logits(enc[None, :, :], dec[:, None, :])  # logits: [M, W, V]
        mask = None if suppress is None else suppress.view(1, 1, -1)
        logp = masked_log_softmax(logits, mask)  # logp: [M, W, V]
        W = enc.size(0)
        nodes = node_of.to(logp.device)[:, None, :].expand(n, W, u_max + 1)  # [N, W, U+1]
        frames = torch.arange(W, device=logp.device)[None, :, None]  # [1, W, 1]
        px = logp[nodes, frames, lab.to(logp.device)[:, None, :]]  # px: [N, W, U+1]
        py = logp[..., self.blank_id][nodes, frames]  # py: [N, W, U+1]
        u_lens = torch.tensor([len(seq) for seq in labels], dtype=torch.long)
        if on_host(px, py):
            return torch.from_numpy(lattice_loglik_host(px.numpy(), py.numpy(), u_lens.numpy())).float()
        return rnnt_lattice_loglik(px, py, torch.full((n,), W, dtype=torch.long), u_lens)  # [N]

    @torch.no_grad()
    def ctc_best(self, ctc_logp: torch.Tensor, labels, k: int) -> List[int]:
        """Indices of the ``k`` labels CTC scores best over ``ctc_logp`` [W, V], best first. ``labels``: a
        ``Candidates`` table or id sequences (task tags are left out: they are not part of a phrase)."""
        if k <= 0 or k >= len(labels):
            return list(range(len(labels)))
        return torch.topk(self.ctc_scores(ctc_logp, labels), k).indices.tolist()

    @torch.no_grad()
    def ctc_scores(self, ctc_logp: torch.Tensor, labels) -> torch.Tensor:
        """log P_ctc(label | window) of each label over ``ctc_logp`` [W, V] (all alignments; -inf where a label
        cannot fit the window): [N]. ``labels`` as in ``ctc_best``."""
        if not isinstance(labels, Candidates):
            labels = Candidates(("", [t for t in lab if t not in self.tag_ids] or [self.close_id]) for lab in labels)
        if on_host(ctc_logp):  # numpy over the list's prefix tree: ~4x faster than ctc_loss at 1000 phrases
            return torch.from_numpy(labels.trie.ctc_logliks(ctc_logp.numpy(), self.blank_id)).float()
        W, dev = ctc_logp.size(0), ctc_logp.device
        # Each phrase sees only its own pieces: column 0 is the blank, column j its j-th piece (a repeated piece
        # reuses its column, so CTC still needs a blank between the two). The same loss as over the whole
        # vocabulary, without handing ctc_loss a [W, N, V] copy; one call per phrase length, since ctc_loss's
        # work grows with the longest target of a call, and none for lengths that cannot fit the window.
        scores = torch.full((len(labels),), float("-inf"), device=dev)  # scores: [N]
        blank = ctc_logp[:, None, self.blank_id : self.blank_id + 1]  # blank: [W, 1, 1]
        for length, rows, pieces, columns in labels.by_length:
            if length > W:
                continue
            n = rows.numel()
            small = torch.cat([blank.expand(W, n, 1), ctc_logp[:, pieces.to(dev)]], dim=2)  # small: [W, n, length+1]
            nll = torch.nn.functional.ctc_loss(
                small,
                columns.to(dev),
                torch.full((n,), W, dtype=torch.long, device=dev),
                torch.full((n,), length, dtype=torch.long, device=dev),
                blank=0,
                reduction="none",
            )  # nll: [n], inf where a phrase cannot fit the window
            scores[rows.to(dev)] = -nll
        return scores

    @torch.no_grad()
    def rescore(
        self,
        enc: torch.Tensor,
        hyp: Hypothesis,
        candidates: Sequence[Tuple[str, Sequence[int]]],
        bonus: float = 0.0,
        suppress: Optional[torch.Tensor] = None,
        top_k: int = 0,
    ) -> Tuple[Hypothesis, List[SpanChoice]]:
        """``hyp`` with each entity span re-decided among ``candidates`` ((phrase, ids) of the list) and the heard
        words; ``enc``: [T, D_enc] of this utterance. ``top_k`` > 0 (and a CTC head): only the CTC prefilter's
        ``top_k`` best phrases of each span are scored by the transducer. Returns the new hypothesis and the
        spans' choices."""
        spans = entity_spans(hyp.yseq, self.open_id, self.tag_ids)
        if not spans or not candidates:
            return hyp, []
        use_ctc = self.ctc is not None and 0 < top_k < len(candidates)
        ctc_logp = self.ctc.log_softmax(enc[None])[0].float() if use_ctc else None  # ctc_logp: [T, V]
        if use_ctc and not isinstance(candidates, Candidates):
            candidates = Candidates(candidates)  # the padded id table, once for every span
        pos, state = 0, self.pred.start(1)  # the prediction network after yseq[:pos], carried span to span
        spellings = candidates.spellings if isinstance(candidates, Candidates) else {tuple(i) for _, i in candidates}
        yseq, frames = list(hyp.yseq), list(hyp.frames)
        score, choices, shift = float(hyp.score), [], 0
        T = enc.size(0)
        for start, end in spans:
            s, e = start + shift, end + shift  # indices in the hypothesis as rewritten so far
            closed = e < len(yseq) and yseq[e] == self.close_id
            after = e + 1 if closed else e  # the first token after the span
            a = frames[s - 1]  # [NE] was emitted on frame a: the candidate's labels may start there
            b = frames[after] if after < len(yseq) else T
            b = min(max(b, a + 1), T)
            tail = [self.close_id] if closed else []
            heard = tuple(yseq[s:e])
            if heard in spellings:  # the model already wrote a phrase of the list: trusted as it is
                choices.append(SpanChoice(start, end, heard, heard, None, 0.0))
                continue
            cands = candidates
            if use_ctc:
                window = ctc_logp[max(a - CTC_MARGIN, 0) : min(b + CTC_MARGIN, T)]  # [W', V]
                cands = [candidates[i] for i in self.ctc_best(window, candidates, top_k)]
            labels = [list(heard) + tail] + [list(ids) + tail for _, ids in cands]
            # the tokens before s never change from here on: step the prediction network only over the new ones
            state = self._advance(state, yseq[pos:s])
            pos = s
            ll = self.score(enc[a:b], state, labels, suppress)  # ll: [1 + N]
            total = ll.clone()
            total[1:] += bonus
            best = int(total.argmax())
            if best == 0 or tuple(cands[best - 1][1]) == heard:
                choices.append(SpanChoice(start, end, heard, heard, None, 0.0))
                continue
            phrase, ids = cands[best - 1]
            gain = float(ll[best] - ll[0])
            new_frames = torch.linspace(a, b - 1, len(ids)).round().long().tolist() if len(ids) > 1 else [a]
            yseq[s:e], frames[s:e] = list(ids), new_frames
            shift += len(ids) - len(heard)
            score += gain
            choices.append(SpanChoice(start, end, heard, tuple(ids), phrase, gain))
        return Hypothesis(yseq=yseq, score=score, frames=frames), choices
