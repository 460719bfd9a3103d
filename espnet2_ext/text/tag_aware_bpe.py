"""Sentencepiece BPE/unigram models that keep each task tag a single piece *with* its word boundary.

With the tags given to sentencepiece as plain ``user_defined_symbols`` they stay atomic, but every
space-separated tag costs an extra lone ``▁`` piece (``hello [SCD] john`` -> ``▁hello ▁ [SCD] ▁john``): one
more transducer emission per tag, for nothing. Declaring the symbols with the word-boundary prefix
(``▁[SCD]``, U+2581) makes the tag and its space one piece (``▁hello ▁[SCD] ▁john``); sentencepiece's standard
decode still gives back ``hello [SCD] john``, so ESPnet's unchanged ``bpe`` tokenizer works with the model.

Output layout follows ESPnet's ``asr.sh`` (stage "token list", ``token_type=bpe``): ``<dir>/bpe.model``,
``<dir>/bpe.vocab`` and ``<dir>/tokens.txt`` = ``<blank>``, ``<unk>``, the sentencepiece pieces without its
``<unk>``/``<s>``/``</s>``, ``<sos/eos>``.
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

import sentencepiece as spm

from espnet2_ext.common import WORD_BOUNDARY, DataError, atomic_output
from espnet2_ext.task_spec import TaskSpec
from espnet2_ext.utils.text_io import utf8_errors

BLANK, OOV, SOS_EOS = "<blank>", "<unk>", "<sos/eos>"  # asr.sh defaults
MODEL_TYPES = ("bpe", "unigram")
DEFAULT_INPUT_SENTENCE_SIZE = 100_000_000  # asr.sh's bpe_input_sentence_size

TextSource = Union[str, os.PathLike, Sequence[os.PathLike], Iterable[str]]
log = logging.getLogger(__name__)


class VocabSizeError(ValueError):
    """The requested vocabulary size does not fit the training text; ``limit`` is the nearest valid size."""

    def __init__(self, message: str, limit: int):
        super().__init__(message)
        self.limit = limit


def prefixed_tag_symbols(spec: TaskSpec) -> List[str]:
    """``[SCD]`` -> ``▁[SCD]`` for every task token of ``spec`` (spec order)."""
    return [WORD_BOUNDARY + t for t in spec.all_tokens]


def _is_text_file_source(source) -> bool:
    if isinstance(source, (str, os.PathLike)):
        return True
    return isinstance(source, (list, tuple)) and bool(source) and all(isinstance(s, os.PathLike) for s in source)


def read_texts(source: TextSource, kaldi: bool = True) -> List[str]:
    """Transcripts from Kaldi ``text`` file(s) or from an iterable of lines.

    ``source`` is a file path (str or Path), a list of ``Path`` objects, or an iterable of line strings (strings
    inside an iterable are lines, never paths). With ``kaldi`` the first field (utt-id) is dropped. Lines without
    text (only an utt-id, as ``asr.sh`` also skips) and blank lines are skipped.
    """
    if _is_text_file_source(source):
        paths = [Path(source)] if isinstance(source, (str, os.PathLike)) else [Path(p) for p in source]
        out: List[str] = []
        for p in paths:
            if not p.is_file():
                raise DataError(
                    f"{p}: no such text file; give the Kaldi 'text' of the training set (lines '<utt-id> <transcript>')"
                )
            with p.open(encoding="utf-8") as f, utf8_errors(p):
                out.extend(read_texts(f, kaldi))
        return out
    out = []
    for line in source:
        parts = line.strip().split(maxsplit=1) if kaldi else [line.strip()]
        text = parts[-1].strip() if len(parts) == (2 if kaldi else 1) else ""
        if text:
            out.append(" ".join(text.split()))
    return out


def _limit_from_error(message: str) -> Optional[int]:
    m = re.search(r"value <= (\d+)", message)  # "Vocabulary size too high (N). Please set it to a value <= M."
    if m:
        return int(m.group(1))
    m = re.search(r"smaller than required_chars\. \d+ vs (\d+)", message)
    return int(m.group(1)) if m else None


def _train_spm(
    texts: Sequence[str],
    vocab_size: int,
    model_type: str,
    user_defined_symbols: Sequence[str],
    character_coverage: float,
    input_sentence_size: int,
    num_threads: int,
    seed: int,
) -> bytes:
    """The serialized model. Trained in memory: a model_prefix would be stored in the model (not reproducible)."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type '{model_type}' is not supported; use one of {', '.join(MODEL_TYPES)}")
    if not texts:
        raise DataError("no training text: every line is empty or has only an utt-id")
    spm.set_random_generator_seed(seed)  # input_sentence_size sampling: same corpus, same model
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            input_sentence_size=input_sentence_size,
            shuffle_input_sentence=True,
            user_defined_symbols=list(user_defined_symbols),
            num_threads=num_threads,
            minloglevel=2,
        )
    except RuntimeError as e:
        limit = _limit_from_error(str(e))
        if limit is None:
            raise
        if "too high" in str(e):
            msg = (
                f"vocab_size {vocab_size} is too large for this text ({len(texts)} lines, model_type="
                f"{model_type}): sentencepiece allows at most {limit}; use --vocab_size {limit} or less, "
                f"or train on more text"
            )
        else:
            msg = (
                f"vocab_size {vocab_size} is too small: this text needs at least {limit} pieces (its characters, "
                f"the {len(user_defined_symbols)} tag symbols and <unk>/<s>/</s>); use --vocab_size {limit} or "
                f"more, or lower --character_coverage"
            )
        raise VocabSizeError(msg, limit) from None
    return model.getvalue()


def vocab_file_text(model: Union[str, os.PathLike, spm.SentencePieceProcessor]) -> str:
    """What ``spm_train`` writes to ``<prefix>.vocab``: ``piece<TAB>score`` per id."""
    sp = _processor(model)
    return "".join(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n" for i in range(sp.get_piece_size()))


def espnet_token_list(model: Union[str, os.PathLike, spm.SentencePieceProcessor]) -> List[str]:
    """ESPnet's bpe token list: blank, unk, spm pieces minus spm's control/unknown pieces, sos/eos."""
    sp = _processor(model)
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not (sp.is_control(i) or sp.is_unknown(i))]
    return [BLANK, OOV] + pieces + [SOS_EOS]


def train_tag_aware_bpe(
    texts: TextSource,
    spec: TaskSpec,
    vocab_size: int,
    out_dir: Union[str, os.PathLike],
    model_type: str = "bpe",
    character_coverage: float = 1.0,
    input_sentence_size: int = DEFAULT_INPUT_SENTENCE_SIZE,
    num_threads: int = 1,
    seed: int = 0,
    kaldi: bool = True,
    prefix_tags: bool = True,
) -> Path:
    """Train on the transcripts of ``texts`` (see ``read_texts``); returns ``<out_dir>/bpe.model``.

    Writes ``bpe.model``, ``bpe.vocab`` and ``tokens.txt`` into ``out_dir``, each moved into place only once
    complete. ``prefix_tags=False`` gives the plain (``[SCD]``) symbols, kept for the before/after comparison.
    ``num_threads`` stays 1 by default so the model does not depend on the machine's core count.
    """
    lines = read_texts(texts, kaldi)
    _warn_unknown_tags(lines, spec)
    symbols = prefixed_tag_symbols(spec) if prefix_tags else list(spec.all_tokens)
    out_dir = Path(out_dir)
    # Blocks end innermost first: the token list is moved into place last, as it marks a finished stage.
    with (
        atomic_output(out_dir / "tokens.txt") as tokens_tmp,
        atomic_output(out_dir / "bpe.vocab") as vocab_tmp,
        atomic_output(out_dir / "bpe.model") as model_tmp,
    ):
        proto = _train_spm(
            lines, vocab_size, model_type, symbols, character_coverage, input_sentence_size, num_threads, seed
        )
        model_tmp.write_bytes(proto)
        sp = spm.SentencePieceProcessor(model_proto=proto)
        vocab_tmp.write_text(vocab_file_text(sp), encoding="utf-8")
        tokens = espnet_token_list(sp)
        dup = sorted(t for t, n in Counter(tokens).items() if n > 1)
        if dup:  # e.g. a literal "<blank>" in the text became a piece
            raise DataError(f"token list would hold duplicates {dup}: remove them from the training text")
        tokens_tmp.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return out_dir / "bpe.model"


def _warn_unknown_tags(lines: Sequence[str], spec: TaskSpec) -> None:
    unknown = sorted(
        {w for line in lines for w in line.split() if spec.looks_like_tag(w) and not spec.is_task_token(w)}
    )
    if unknown:
        log.warning("bracketed tokens not in the task spec will be split like words: %s", " ".join(unknown[:10]))


def _processor(model: Union[str, os.PathLike, spm.SentencePieceProcessor]) -> spm.SentencePieceProcessor:
    if isinstance(model, spm.SentencePieceProcessor):
        return model
    if not Path(model).is_file():
        raise FileNotFoundError(f"{model}: no such sentencepiece model")
    return spm.SentencePieceProcessor(model_file=str(model))


def tag_piece_stats(
    model: Union[str, os.PathLike, spm.SentencePieceProcessor], lines: Iterable[str], spec: TaskSpec, kaldi: bool = True
) -> Dict[str, float]:
    """How the model spends pieces on tags, over ``lines`` (Kaldi text lines unless ``kaldi=False``).

    Keys: ``utterances``, ``pieces``, ``tags`` (task tokens in the text), ``tag_pieces`` (pieces that are a whole
    tag, ``[SCD]`` or ``▁[SCD]``), ``split_tags`` (tags not encoded as one piece; must be 0),
    ``lone_boundary_before_tag`` (a bare ``▁`` piece right before a tag piece: the waste the prefixed symbols
    remove), ``pieces_per_utt``.
    """
    sp = _processor(model)
    texts = read_texts(lines, kaldi)
    tag_set = set(spec.all_tokens)
    n_pieces = n_tags = n_tag_pieces = n_lone = 0
    for text in texts:
        n_tags += sum(1 for w in text.split() if w in tag_set)
        pieces = sp.encode(text, out_type=str)
        n_pieces += len(pieces)
        for i, p in enumerate(pieces):
            if p in tag_set or (p[:1] == WORD_BOUNDARY and p[1:] in tag_set):
                n_tag_pieces += 1
                if i > 0 and pieces[i - 1] == WORD_BOUNDARY:
                    n_lone += 1
    return {
        "utterances": len(texts),
        "pieces": n_pieces,
        "tags": n_tags,
        "tag_pieces": n_tag_pieces,
        "split_tags": max(n_tags - n_tag_pieces, 0),
        "lone_boundary_before_tag": n_lone,
        "pieces_per_utt": n_pieces / len(texts) if texts else 0.0,
    }


def append_tag_symbols(model: Union[str, os.PathLike, bytes], tags: Sequence[str]) -> bytes:
    """A trained model with ``tags`` appended as word-boundary symbols (``[Q]`` -> ``▁[Q]``, type ``USER_DEFINED``),
    as ``train_tag_aware_bpe`` declares them: existing piece ids and the encoding of text without the new tags are
    unchanged, each new tag is one piece with its space. Returns the serialized model (bin/extend_model)."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    m.ParseFromString(model if isinstance(model, bytes) else Path(model).read_bytes())
    have = {p.piece for p in m.pieces}
    for tag in tags:
        piece = WORD_BOUNDARY + tag
        if piece in have or tag in have:
            raise DataError(
                f"the sentencepiece model already has the piece {piece if piece in have else tag}: "
                f"{tag} cannot be added as a new tag"
            )
        m.pieces.add(piece=piece, type=pb.ModelProto.SentencePiece.USER_DEFINED, score=0.0)
        have.add(piece)
    return m.SerializeToString()
