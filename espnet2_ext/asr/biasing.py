"""Contextual biasing for ``TokenVerseSpeech2Text``: its options, and a list -> graph cache per decoder.

    s2t = TokenVerseSpeech2Text(..., biasing_weight=2.0, biasing_mode="gated", biasing_close_bonus=1.0)
    s2t.decode_batch(speech, lengths, biasing=read_biasing_list("crm.txt"))        # one list for the batch
    s2t.decode_batch(speech, lengths, biasing=[["anna berg"], None, lst])          # one per utterance
    s2t(wav, biasing=["john smith", "hauptstraße zwölf :3"])                         # phrases as strings

Modes: ``ungated`` and ``gated`` bias the search through a graph; ``rescore`` leaves the search as it is and then
re-decides each ``[NE] … [/NE]`` span of the result among the list's phrases by the model's own likelihood
(``transducer/span_rescore.py``; whole utterances only, so not in streaming).

The graph (``transducer/context_graph.py``) is built from the model's own tokenizer (``train_args.bpemodel`` for
BPE models, the token list for word models), once per ``BiasingList`` object: utterances that share a list file
(``utt2biasing``) share its graph. An empty list, or none, leaves decoding exactly as without biasing.
"""

from __future__ import annotations

import logging
import math
import weakref
from typing import Dict, List, Optional, Sequence, Tuple

from espnet2_ext.asr.transducer.context_graph import MODES, ContextGraph, build_context_graph
from espnet2_ext.asr.transducer.phrase_candidates import list_candidates
from espnet2_ext.task_spec import NE_CLOSE, NE_OPEN
from espnet2_ext.text.biasing_list import BiasingList, phrases_list

DEFAULT_BIASING_WEIGHT = 2.0  # bonus per matched token (icefall's LibriSpeech biasing recipes use 2; tune on dev)
# log-likelihood bonus of a list phrase over the heard words in mode rescore: chosen on dev (docs/experiments.md 10c)
DEFAULT_RESCORE_BONUS = 10.0
# phrases of a span the transducer scores after the CTC prefilter (0: all); docs/experiments.md 10c
DEFAULT_RESCORE_TOP_K = 16
RESCORE = "rescore"
SPELLED_MAX = 1_000_000  # phrases whose token ids a decoder remembers (``DecoderBiasing.encode``), ~100 MB at most
BIASING_MODES = MODES + (RESCORE,)
CONF_KEYS = (  # also accepted in transducer_conf
    "biasing_weight",
    "biasing_mode",
    "biasing_close_bonus",
    "biasing_rescore_bonus",
    "biasing_rescore_top_k",
)


def biasing_conf(conf: Dict, weight=None, mode=None, close_bonus=None, rescore_bonus=None, rescore_top_k=None) -> Dict:
    """Validated {weight, mode, close_bonus, rescore_bonus, rescore_top_k}: arguments first, then
    ``transducer_conf``'s ``biasing_<key>`` (popped from ``conf``), then the defaults (2.0, ungated, 0,
    ``DEFAULT_RESCORE_BONUS``, ``DEFAULT_RESCORE_TOP_K``)."""
    picked = {}
    for key, arg, default in (
        ("weight", weight, DEFAULT_BIASING_WEIGHT),
        ("mode", mode, "ungated"),
        ("close_bonus", close_bonus, 0.0),
        ("rescore_bonus", rescore_bonus, DEFAULT_RESCORE_BONUS),
        ("rescore_top_k", rescore_top_k, DEFAULT_RESCORE_TOP_K),
    ):
        value = conf.pop(f"biasing_{key}", None)
        picked[key] = arg if arg is not None else (value if value is not None else default)
    if picked["mode"] not in BIASING_MODES:
        raise ValueError(f"biasing_mode '{picked['mode']}' is unknown: choose {', '.join(BIASING_MODES)}")
    for key in ("weight", "close_bonus", "rescore_bonus"):
        try:
            picked[key] = float(picked[key])
        except (TypeError, ValueError):
            raise ValueError(f"biasing_{key} must be a number, got {picked[key]!r}") from None
        if not math.isfinite(picked[key]):
            raise ValueError(f"biasing_{key} must be a finite number, got {picked[key]!r}")
    k = picked["rescore_top_k"]
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"biasing_rescore_top_k must be a whole number >= 0 (0: every phrase), got {k!r}")
    return picked


def is_one_list(biasing) -> bool:
    """A ``BiasingList`` or a list of phrase strings (an empty one too), rather than one entry per utterance."""
    if isinstance(biasing, BiasingList):
        return True
    if isinstance(biasing, str):
        raise ValueError("biasing: give a list of phrases (['john smith']), not one string")
    items = list(biasing)
    return all(isinstance(p, str) for p in items)


class DecoderBiasing:
    """What a decoder needs to bias: its options and its graphs (cached per ``BiasingList``, weakly)."""

    def __init__(self, conf: Dict, token_list: Sequence[str], tokenizer, converter, blank_id: int, surface=lambda t: t):
        self.conf = conf
        self.ids = {surface(t): i for i, t in enumerate(token_list)}
        self.vocab, self.blank_id = len(token_list), int(blank_id)
        self.tokenizer, self.converter = tokenizer, converter
        self._graphs: "weakref.WeakKeyDictionary[BiasingList, Optional[ContextGraph]]" = weakref.WeakKeyDictionary()
        self._candidates: "weakref.WeakKeyDictionary[BiasingList, list]" = weakref.WeakKeyDictionary()
        self.last_stats: Dict = {}
        self._spelled: Dict[str, Tuple[int, ...]] = {}  # phrase -> token ids (``encode``)

    def forget(self) -> None:
        """Drop what was made from lists (graphs, candidates, spellings), as a fresh decoder has none (benchmarks
        time a decode's list preparation this way)."""
        self._graphs.clear()
        self._candidates.clear()
        self._spelled.clear()

    @property
    def rescoring(self) -> bool:
        return self.conf["mode"] == RESCORE

    def graphs(self, biasing, batch: int, ours: bool, search: str) -> Optional[List[Optional[ContextGraph]]]:
        """``biasing`` of ``decode_batch`` -> None (nothing to bias) or one graph (or None) per utterance, for a
        search that biases as it goes (streaming too): mode rescore is refused here, it needs whole utterances.
        ``ours``: the search can bias; otherwise a non-empty list is refused (one line naming ``search``)."""
        graphs, lists = self.plan(biasing, batch, ours, search)
        if lists is not None and self.rescoring:
            raise ValueError(
                "biasing_mode rescore re-decides entity spans once the whole utterance is decoded, which a "
                "streaming search never has: use --biasing_mode gated or ungated here"
            )
        return graphs

    def plan(self, biasing, batch: int, ours: bool, search: str) -> tuple:
        """``biasing`` of ``decode_batch`` -> (graphs, lists): one graph (or None) per utterance for the search
        (None in mode rescore or without a list), and one ``BiasingList`` (or None) per utterance (None when no
        utterance has a phrase). ``ours``: the search can bias; otherwise a list is refused in one line."""
        if biasing is None:
            return None, None
        per_utt = [biasing] * batch if is_one_list(biasing) else list(biasing)
        if len(per_utt) != batch:
            raise ValueError(
                f"biasing holds {len(per_utt)} lists for a batch of {batch} utterances: give one list "
                f"for all or one per utterance"
            )
        lists = [self.as_list(b) for b in per_utt]
        if not any(lists):
            return None, None
        if not ours:
            raise ValueError(
                f"contextual biasing works with our searches (modified_beam_search, greedy), not "
                f"ESPnet's '{search}': change --search_type or drop the biasing list"
            )
        if self.rescoring:
            return None, lists
        graphs = [self.graph(lst) if lst else None for lst in lists]
        return (graphs if any(g is not None for g in graphs) else None), lists

    @staticmethod
    def as_list(biasing) -> Optional[BiasingList]:
        if biasing is None or isinstance(biasing, BiasingList):
            return biasing
        if not is_one_list(biasing):
            raise ValueError("a biasing list is a BiasingList or a list of phrase strings")
        return phrases_list(list(biasing))

    def graph(self, lst: BiasingList) -> Optional[ContextGraph]:
        """The list's graph, built on first use (None when no phrase can be spelled)."""
        if lst not in self._graphs:
            self._graphs[lst] = self.build(lst)
        return self._graphs[lst]

    def candidates(self, lst: BiasingList) -> List[Tuple[str, List[int]]]:
        """(phrase, token ids) of the list's spellable phrases, for mode rescore; once per list object."""
        if lst not in self._candidates:
            unk = self.converter.unk_id
            self._candidates[lst] = list_candidates(lst.texts, self.encode, unk)
            dropped = len(lst.phrases) - len(self._candidates[lst])
            if dropped:
                logging.info(f"{lst.source or 'a biasing list'}: {dropped} phrases not spellable or repeated, skipped")
        return self._candidates[lst]

    def encode(self, text: str) -> List[int]:
        """Token ids of a normalised phrase as its words appear mid-sentence (sentencepiece's word-start pieces).
        Remembered per phrase: per-utterance lists repeat their distractors and catalogue names (a decode of the
        mini test set with 1000-phrase lists tokenises 60 x 1000 phrases, mostly the same few thousand)."""
        ids = self._spelled.get(text)
        if ids is None:
            tokens = self.tokenizer.text2tokens(text) if self.tokenizer is not None else text.split()
            if len(self._spelled) >= SPELLED_MAX:  # bounded: a stream of distinct lists must not grow it forever
                self._spelled.clear()
            ids = self._spelled[text] = tuple(self.converter.tokens2ids(tokens))
        return list(ids)

    def build(self, lst: BiasingList) -> Optional[ContextGraph]:
        c = self.conf
        graph, stats = build_context_graph(
            lst.phrases,
            self.encode,
            self.converter.unk_id,
            self.vocab,
            c["weight"],
            blank_id=self.blank_id,
            mode=c["mode"],
            open_id=self.ids.get(NE_OPEN),
            close_id=self.ids.get(NE_CLOSE),
            close_bonus=c["close_bonus"],
        )
        self.last_stats = stats
        logging.info(
            f"biasing graph of {lst.source or 'a list'}: {stats['phrases']} phrases ({stats['unspellable']} "
            f"unspellable, skipped), built in {stats['seconds']} s"
        )
        return graph
