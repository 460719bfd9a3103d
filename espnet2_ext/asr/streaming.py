"""Streaming decoding: audio in pieces, the running hypothesis (with its task tokens) after each piece.

    s2t = TokenVerseStreamingSpeech2Text.from_pretrained("exp/asr/model.zip", chunk_size_ms=640, left_chunks=2)
    for piece in pieces:                                   # any sizes
        text, tokens, ids, hyp = s2t(piece, is_final=False)[0]
    text, tokens, ids, hyp = s2t(last_piece, is_final=True)[0]   # then the stream is reset

It is exact: the result equals decoding the whole utterance offline with the same chunk mask (the same object's
``decode_batch``), because every piece of state the offline computation would use is carried:

* CNN feature encoder (receptive field 400 samples, hop 320): a chunk of C frames is computed from its
  (C - 1) * 320 + 400 samples as soon as they are there; the buffer then drops C * 320 samples and keeps the
  80-sample overlap for the next chunk.
* Transformer: per layer the attention inputs of the frames later chunks may see (left chunks + attention sinks)
  and the positional convolution's left context (``EncoderStreamState``, see ``layers/chunk_attention.py``).
* Search: greedy and modified beam search are frame-synchronous; their hypotheses, prediction-network states and
  outputs are carried between chunks (``GreedyStream`` / ``BeamStream`` follow the batched searches of
  ``asr/transducer/`` step by step for one utterance; ``asr/transducer/streaming_search.py``).

Not streamable, rejected with a message: utterance-level waveform normalisation (see the frontend's
``wav_normalize``), ESPnet's ``utterance_mvn``, and encoders other than ``identity`` (they see all frames).
"""

from __future__ import annotations

import json
import time
from typing import Dict, Optional, Union

import numpy as np
import torch

from espnet2_ext.asr import search_driver
from espnet2_ext.asr.search_driver import OUR_SEARCHES
from espnet2_ext.asr.speech2text import TokenVerseSpeech2Text, unpack_model
from espnet2_ext.asr.transducer.streaming_search import BeamStream, GreedyStream
from espnet2_ext.layers.chunk_attention import FRAME_MS, SAMPLE_RATE, EncoderStreamState, chunk_frames_of


def configure_chunking(frontend, chunk_size_ms=None, left_chunks=None, attention_sink_frames=None) -> None:
    """Override the frontend's chunk options for decoding; None keeps the model's configured value."""
    cfg = frontend.chunk_cfg
    frontend.set_chunking(
        chunk_size_ms if chunk_size_ms is not None else (cfg.chunk_frames * FRAME_MS if cfg.chunked else None),
        cfg.left_chunks if left_chunks is None else left_chunks,
        cfg.sink_frames if attention_sink_frames is None else attention_sink_frames,
    )


def algorithmic_latency_ms(chunk_size_ms: int, field: int = 400, hop: int = 320) -> float:
    """Worst-case wait for a frame's output: the whole chunk (its first frame waits for the last) plus the CNN's
    window reaching (field - hop) samples past the chunk (5 ms for wav2vec2). The positional convolution adds
    nothing (restricted per chunk); the transducer is frame-synchronous."""
    return chunk_size_ms + (field - hop) * 1000.0 / SAMPLE_RATE


class TokenVerseStreamingSpeech2Text(TokenVerseSpeech2Text):
    """``TokenVerseSpeech2Text`` that decodes audio given in pieces (ESPnet streaming style: ``s2t(piece,
    is_final)``, ``reset()``). ``chunk_size_ms``/``left_chunks``/``attention_sink_frames`` default to the
    model's frontend config; ``decode_batch`` (inherited) decodes whole utterances with the same chunk mask."""

    def __init__(
        self,
        *args,
        chunk_size_ms: Union[int, str, None] = None,
        left_chunks: Optional[int] = None,
        attention_sink_frames: Optional[int] = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        fe = self.asr_model.frontend
        if not hasattr(fe, "set_chunking") or getattr(fe, "_wav2vec2", None) is None:
            raise ValueError("streaming needs the s3prl_tokenverse frontend with a wav2vec2/XLSR upstream")
        configure_chunking(fe, chunk_size_ms, left_chunks, attention_sink_frames)
        if not fe.chunk_cfg.chunked:
            raise ValueError(
                "streaming needs a chunk size: give chunk_size_ms (--chunk_size_ms), e.g. 640; this "
                "model's config has none (full context)"
            )
        if self.search_type not in OUR_SEARCHES:
            raise ValueError(
                f"streaming supports the frame-synchronous searches {', '.join(OUR_SEARCHES)}, not '{self.search_type}'"
            )
        m = self.asr_model
        if m.normalize is not None and type(m.normalize).__name__ != "GlobalMVN":
            raise ValueError(
                f"normalize: {type(m.normalize).__name__} uses whole-utterance statistics and cannot "
                f"stream; train with normalize: null or global_mvn"
            )
        if m.preencoder is not None or m.postencoder is not None or type(m.encoder).__name__ != "IdentityEncoder":
            raise ValueError(
                f"streaming needs encoder: identity without pre/post-encoder (the XLSR frontend is the "
                f"chunked encoder); this model has {type(m.encoder).__name__}"
            )
        self.field, self.hop = fe.frame_geometry
        self.reset()

    @property
    def chunk_frames(self) -> int:
        return self.asr_model.frontend.chunk_cfg.chunk_frames

    @property
    def chunk_samples(self) -> int:
        return self.chunk_frames * self.hop

    def latency_ms(self) -> float:
        return algorithmic_latency_ms(self.chunk_frames * FRAME_MS, self.field, self.hop)

    def reset(self) -> None:
        """Forget the running utterance."""
        self._buffer = torch.zeros(0)
        self._encoder_state: Optional[EncoderStreamState] = None
        self._search = None
        self._mask: Optional[torch.Tensor] = None

    def _start(self, task_mask: torch.Tensor, biasing=None) -> None:
        """A new utterance: its ``task_mask`` [1, 1+K] and biasing list hold until ``reset``."""
        self._mask = task_mask.to(self.device)  # task_mask: [1, 1+K]
        suppress = search_driver.suppress_of(self, self._mask)  # suppress: [1, V] or None
        m = self.asr_model
        graphs = self.biasing.graphs(None if biasing is None else [biasing], 1, True, self.search_type)  # [biasing]
        if self.search_type == "greedy":
            self._search = GreedyStream(
                m.decoder,
                m.joint_network,
                suppress,
                self.device,
                blank_penalty=self.blank_penalty,
                span_grammar=self._span_grammar(),
                biasing=graphs,
            )
        else:
            self._search = BeamStream(
                m.decoder,
                m.joint_network,
                suppress,
                self.device,
                beam=self.beam_size,
                blank_penalty=self.blank_penalty,
                span_grammar=self._span_grammar(),
                biasing=graphs,
            )
        self._encoder_state = EncoderStreamState()

    @torch.no_grad()
    def __call__(
        self,
        speech: Union[torch.Tensor, np.ndarray],
        is_final: bool = True,
        task_activation=None,
        task_mask: Optional[torch.Tensor] = None,
        biasing=None,
    ):
        """Add ``speech`` (1-D, 16 kHz) to the running utterance; returns its n-best so far as
        [(text, tokens, ids, hyp)]. The tasks (names, or ``task_mask`` [1, 1+K]) and the biasing list (as
        ``decode_batch``'s for one utterance) are fixed by the first call of an utterance. ``is_final`` decodes the
        rest and resets the stream."""
        if self._search is None:
            self._start(self._selection(1, task_activation, task_mask), biasing)
        speech = torch.as_tensor(speech, dtype=torch.float32).reshape(-1)
        self._buffer = torch.cat([self._buffer, speech])
        need = (self.chunk_frames - 1) * self.hop + self.field
        while self._buffer.numel() >= need:
            self._step(self._buffer[:need], self.chunk_frames)
            self._buffer = self._buffer[self.chunk_samples :]  # keeps the CNN's overlap (field - hop)
        if not is_final:
            return search_driver.results(self, self._search.nbest(self.nbest))
        frames = (
            int(
                self.asr_model.frontend._wav2vec2._get_feat_extract_output_lengths(torch.tensor([self._buffer.numel()]))
            )
            if self._buffer.numel() >= self.field
            else 0
        )
        if frames > 0:
            self._step(self._buffer[: (frames - 1) * self.hop + self.field], frames)
        results = search_driver.results(self, self._search.nbest(self.nbest))
        self.reset()
        return results

    def _step(self, samples: torch.Tensor, frames: int) -> None:
        """Encode the next ``frames`` frames (from exactly their samples) and advance the search over them."""
        fe = self.asr_model.frontend
        wav = samples.view(1, -1).to(self.device, getattr(torch, self.dtype))
        lengths = torch.tensor([wav.size(1)], device=self.device)
        feats, feats_lens = fe(wav, lengths, task_mask=self._mask, stream=self._encoder_state)  # [1, C, D]
        if int(feats_lens[0]) != frames:
            raise RuntimeError(f"streaming frontend returned {int(feats_lens[0])} frames for a {frames}-frame chunk")
        if self.asr_model.normalize is not None:
            feats, feats_lens = self.asr_model.normalize(feats, feats_lens)
        self._search.advance(feats[:, :frames])  # identity encoder: frontend output

    @staticmethod
    def from_pretrained(model_tag: Optional[str] = None, **kwargs) -> "TokenVerseStreamingSpeech2Text":
        if model_tag is not None:
            kwargs.update(unpack_model(model_tag))
        return TokenVerseStreamingSpeech2Text(**kwargs)


def decode_streaming_to_dir(
    s2t: TokenVerseStreamingSpeech2Text,
    loader,
    output_dir: str,
    piece_samples: int = 0,
    timed=None,
    biasing_of=None,
) -> Dict:
    """Stream every utterance of ``loader`` (ESPnet streaming iterator; each batch holds its ``task_mask``
    [B, 1+K], see ``asr/decode_dir.decode_to_dir``) in pieces of ``piece_samples`` (0: one chunk's samples)
    into ESPnet's ``<output_dir>/1best_recog`` layout; writes ``<output_dir>/streaming_stats.json``
    (audio seconds, decoding wall seconds, real-time factor, latency) and returns it. A non-streaming ``s2t`` (full
    context) decodes each utterance whole, one at a time, timed the same way: the reference row of a latency table.
    ``biasing_of``: utterance id -> its biasing list (or None), for contextual biasing.
    """
    from pathlib import Path

    from espnet2.fileio.datadir_writer import DatadirWriter

    from espnet2_ext.asr.nbest_output import write_nbest
    from espnet2_ext.common import TASK_MASK, atomic_write_text

    streaming = isinstance(s2t, TokenVerseStreamingSpeech2Text)
    piece = (piece_samples or s2t.chunk_samples) if streaming else None
    audio_s = wall_s = 0.0
    n_utt = 0
    with DatadirWriter(output_dir) as writer:
        for keys, batch in loader:
            for i, key in enumerate(keys):
                wav = batch["speech"][i, : int(batch["speech_lengths"][i])]
                mask = batch[TASK_MASK][i : i + 1]  # task_mask: [1, 1+K]
                lst = biasing_of(key) if biasing_of is not None else None  # [biasing]
                start = time.perf_counter()
                if streaming:
                    s2t.reset()
                    s2t(wav[:0], is_final=False, task_mask=mask, biasing=lst)
                    for b in range(0, wav.numel(), piece):
                        s2t(wav[b : b + piece], is_final=False)
                    nbest = s2t(wav[:0], is_final=True)
                else:
                    nbest = s2t.decode_masked(
                        wav[None], torch.tensor([wav.numel()]), mask, timed is not None, None if lst is None else [lst]
                    )[0]
                wall_s += time.perf_counter() - start
                audio_s += wav.numel() / SAMPLE_RATE
                n_utt += 1
                write_nbest(writer, key, nbest)
                if timed is not None and nbest:  # token times -> ctm/rttm/events.jsonl (asr_inference)
                    timed.add(key, nbest[0][1], nbest[0][3], wav.numel())
    if timed is not None:
        timed.write(Path(output_dir) / "1best_recog")
    cfg = getattr(s2t.asr_model.frontend, "chunk_cfg", None)
    chunked = cfg is not None and cfg.chunked
    stats = {
        "utterances": n_utt,
        "audio_s": round(audio_s, 3),
        "wall_s": round(wall_s, 3),
        "rtf": round(wall_s / audio_s, 4) if audio_s else None,
        "chunk_size_ms": cfg.chunk_frames * FRAME_MS if chunked else "full",
        "left_chunks": cfg.left_chunks if chunked else None,
        "attention_sink_frames": cfg.sink_frames if chunked else None,
        # full context: a frame's output waits for the end of the utterance
        "algorithmic_latency_ms": s2t.latency_ms() if streaming else "utterance",
        "streamed": streaming,
        "piece_samples": piece,
        "search_type": s2t.search_type,
        "torch_threads": torch.get_num_threads(),
    }
    atomic_write_text(Path(output_dir) / "streaming_stats.json", json.dumps(stats, indent=1) + "\n")
    return stats


def add_streaming_arguments(parser) -> None:
    """``asr_inference`` options (named as in ESPnet's ``asr_inference_streaming`` where they mean the same).
    ``--streaming true`` is ESPnet's own ``asr_inference`` flag, reused: decode each utterance chunk by chunk."""
    from espnet2.utils.types import str_or_none

    group = parser.add_argument_group("Streaming (chunked attention)")
    group.add_argument(
        "--chunk_size_ms",
        type=str_or_none,
        default=None,
        help="attention chunk in ms (multiple of 20) or 'full'; default: the model's frontend config. "
        "Without --streaming: offline decoding with the same chunk mask",
    )
    group.add_argument(
        "--left_chunks",
        type=int,
        default=None,
        help="left chunks each frame attends to (-1: all); default: the model's config",
    )
    group.add_argument(
        "--attention_sink_frames",
        type=int,
        default=None,
        help="first frames every frame may attend to; default: the model's config",
    )
    group.add_argument(
        "--sim_chunk_length",
        type=int,
        default=0,
        help="samples per piece fed to the streaming decoder (as ESPnet's); 0: one chunk's samples",
    )


def speech2text_for(args, **kwargs) -> TokenVerseSpeech2Text:
    """The decoder ``asr_inference`` asks for: streaming, or offline with the chunk options applied (if given)."""
    chunking = dict(
        chunk_size_ms=args.chunk_size_ms, left_chunks=args.left_chunks, attention_sink_frames=args.attention_sink_frames
    )
    if args.streaming and chunk_frames_of(args.chunk_size_ms) is not None:
        return TokenVerseStreamingSpeech2Text(**kwargs, **chunking)
    # --streaming with --chunk_size_ms full: the reference row of a latency table (whole utterances, timed alike)
    s2t = TokenVerseSpeech2Text(**kwargs)
    if any(v is not None for v in chunking.values()):
        fe = s2t.asr_model.frontend
        if not hasattr(fe, "set_chunking"):
            raise ValueError("--chunk_size_ms/--left_chunks/--attention_sink_frames need the s3prl_tokenverse frontend")
        configure_chunking(fe, **chunking)
    return s2t
