"""Our search driver under ``TokenVerseSpeech2Text``: the batched searches of ``asr/transducer/``
(``modified_beam_search``, ``greedy``) on an encoder output, with constrained decoding (tokens of inactive tasks
suppressed), the blank penalty, the ``[NE] ... [/NE]`` span grammar and contextual biasing; their hypotheses as
ESPnet's ``(text, tokens, ids, hyp)`` tuples.
"""

from __future__ import annotations

from typing import List, Optional

import torch

from espnet2_ext.asr.transducer.search import (
    greedy_search_batch,
    modified_beam_search,
    suppress_mask_from_task_mask,
    to_espnet_hypotheses,
    token_surface,
)
from espnet2_ext.asr.transducer.search_common import Hypothesis, SpanGrammar
from espnet2_ext.asr.transducer.span_rescore import SpanRescorer
from espnet2_ext.task_spec import NE_CLOSE, NE_OPEN
from espnet2_ext.text.annotation import is_tag_token

OUR_SEARCHES = ("modified_beam_search", "greedy")


def build_span_grammar(token_list, spec) -> Optional[SpanGrammar]:
    """Token ids of the ``[NE] ... [/NE]`` rule (closed before ``[ENDP]``/``[SCD]``/a language token); None when the
    model has no entity tokens."""
    ids = {token_surface(t): i for i, t in enumerate(token_list)}
    if NE_OPEN not in ids or NE_CLOSE not in ids:
        return None
    closing = [t for task in ("scd", "endp", "lid") for t in spec.aux_tokens.get(task, ())]
    return SpanGrammar(ids[NE_OPEN], ids[NE_CLOSE], tuple(ids[t] for t in closing if t in ids))


def suppress_of(s2t, task_mask: torch.Tensor) -> Optional[torch.Tensor]:
    """Tokens of inactive tasks, ``[B, V]`` True = never emitted (``task_mask``: [B, 1+K]); None unconstrained."""
    if not s2t.constrained:
        return None
    return suppress_mask_from_task_mask(s2t.token_list, s2t.spec, task_mask).to(task_mask.device)


def build_rescorer(s2t) -> SpanRescorer:
    """The entity-span rescorer of mode rescore (``transducer/span_rescore.py``) on the model's decoder and joint
    network, scoring with the search's blank penalty; a model without ``[NE]``/``[/NE]`` is refused in one line."""
    ids = {token_surface(t): i for i, t in enumerate(s2t.token_list)}
    if NE_OPEN not in ids or NE_CLOSE not in ids:
        raise ValueError(
            "biasing_mode rescore re-decides [NE] ... [/NE] spans, and this model has no entity tokens: use "
            "--biasing_mode ungated"
        )
    tags = [i for t, i in ids.items() if is_tag_token(t)]
    m = s2t.asr_model
    return SpanRescorer(
        m.decoder,
        m.joint_network,
        m.blank_id,
        ids[NE_OPEN],
        ids[NE_CLOSE],
        tags,
        s2t.blank_penalty,
        s2t.device,
        ctc=getattr(m, "ctc", None),  # the auxiliary CTC head, when trained with one: the long-list prefilter
    )


def search(
    s2t, enc: torch.Tensor, enc_lens: torch.Tensor, task_mask: torch.Tensor, graphs=None, rescore_lists=None
) -> List[list]:
    """``s2t.search_type`` over ``enc`` [B, T, D] (``enc_lens`` [B], ``task_mask`` [B, 1+K]; ``graphs``: one
    biasing graph or None per utterance, or None): per utterance its n-best as (text, tokens, ids, hyp).
    ``rescore_lists``: one ``BiasingList`` (or None) per utterance whose entity spans ``s2t.rescorer`` re-decides
    after the search (mode rescore), or None."""
    suppress = suppress_of(s2t, task_mask)  # suppress: [B, V] or None
    decoder, joint = s2t.asr_model.decoder, s2t.asr_model.joint_network
    common = dict(
        suppress_mask=suppress, blank_penalty=s2t.blank_penalty, span_grammar=s2t._span_grammar(), biasing=graphs
    )
    if s2t.search_type == "greedy":
        seqs, frames = greedy_search_batch(enc, enc_lens, decoder, joint, return_frames=True, **common)
        nbests = [[Hypothesis(yseq=list(s), score=0.0, frames=f)] for s, f in zip(seqs, frames)]
    else:
        nbests = modified_beam_search(
            enc, enc_lens, decoder, joint, beam=s2t.beam_size, nbest=s2t.nbest, length_norm=True, **common
        )
    if rescore_lists is not None:
        nbests = [
            rescore_nbest(s2t, enc[b, : int(enc_lens[b])], nbest, lst, None if suppress is None else suppress[b])
            for b, (nbest, lst) in enumerate(zip(nbests, rescore_lists))
        ]
    return [results(s2t, h) for h in nbests]


def rescore_nbest(s2t, enc: torch.Tensor, nbest: List[Hypothesis], lst, suppress) -> List[Hypothesis]:
    """Each hypothesis of one utterance's n-best with its entity spans re-decided among ``lst`` (``enc``:
    [T, D]; ``suppress``: [V] or None), best first again; as it was without a list or spans."""
    if not lst:
        return nbest
    cands = s2t.biasing.candidates(lst)
    bonus, top_k = s2t.biasing.conf["rescore_bonus"], s2t.biasing.conf["rescore_top_k"]
    new = [s2t.rescorer.rescore(enc, h, cands, bonus, suppress, top_k)[0] for h in nbest]
    return sorted(new, key=lambda h: -h.score) if len(new) > 1 else new


def results(s2t, nbest: List[Hypothesis]) -> list:
    """One utterance's n-best of our searches -> [(text, tokens, ids, hyp)] of the ``s2t.nbest`` best, ``hyp`` an
    ESPnet hypothesis (blank dropped from the ids, as ESPnet does)."""
    out = []
    for hyp in to_espnet_hypotheses(nbest, s2t.asr_model.blank_id)[: s2t.nbest]:
        token_int = [int(t) for t in hyp.yseq[1:] if int(t) != s2t.asr_model.blank_id]
        token = s2t.converter.ids2tokens(token_int)
        text = s2t.tokenizer.tokens2text(token) if s2t.tokenizer is not None else None
        out.append((text, token, token_int, hyp))
    return out
