"""Task-conditioned S3PRL frontend: where the TokenVerse++ task vector is added to the acoustic embeddings.

``TaskConditionedS3prlFrontend`` is ESPnet's ``S3prlFrontend`` plus ``task_vectors`` (kept outside
``frontend.upstream``, so freezing or reloading the pretrained upstream never touches them). Injection points:

* ``feature_encoder``: X~ = X + v(c) on the output of the wav2vec2 CNN feature encoder + projection, i.e. the
  input of the transformer encoder (the paper's best). Done by a forward pre-hook on the upstream's transformer
  encoder module, so S3PRL's code is used unchanged.
* ``encoder_output``: added to the frontend output (after the full XLSR encoder and layer featurizer); padding
  frames are set back to zero.
* ``both``: two independent tables, one per point.

The per-utterance task mask is an argument: ``frontend(speech, lengths, task_mask)`` (the model's ``encode``
passes it down); ``None`` means every task the model was built with. The feature-encoder injection is a forward
pre-hook on S3PRL's transformer encoder that is registered for one call and removed at its end, bound to that
call's vectors and frame lengths: no per-batch tensor is left on the module between calls (which is also what
keeps replicas, e.g. ``torch.nn.DataParallel``'s, independent).

``upstream_skeleton`` (``{task_cfg, model_cfg}``, written into the experiment's config.yaml at training time)
rebuilds the wav2vec2 architecture without reading or downloading a pretrained checkpoint: the weights then come
from the trained model file. That is what makes packed models load offline.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from espnet.nets.pytorch_backend.nets_utils import make_pad_mask
from espnet2.asr.frontend.s3prl import S3prlFrontend

from espnet2_ext.asr.frontend.s3prl_upstream import (
    exact_padding_mask,
    freeze_pretraining_heads,
    rebind_s3prl_hooks,
    time_mask_spans,
    transformer_encoder_of,
)
from espnet2_ext.layers.chunk_attention import ChunkConfig, EncoderStreamState, chunk_frames_of, chunked_encoder
from espnet2_ext.layers.task_vectors import STRATEGIES, TaskVectors
from espnet2_ext.task_spec import DEFAULT_AUX_TASKS, PRIMARY_TASK
from espnet2_ext.upstream.xlsr_standin import skeleton_of, write_skeleton_checkpoint
from espnet2_ext.utils.config_literal import parse_layer_spec

INJECTION_POINTS = ("feature_encoder", "encoder_output", "both")


def _check_task_vector_options(strategy: str, injection: str) -> None:
    if strategy not in STRATEGIES + ("none",):
        raise ValueError(
            f"frontend_conf.task_vector_strategy '{strategy}' is unknown: choose one "
            f"of {', '.join(STRATEGIES + ('none',))}"
        )
    if injection not in INJECTION_POINTS:
        raise ValueError(
            f"frontend_conf.task_vector_injection '{injection}' is unknown: choose one of {', '.join(INJECTION_POINTS)}"
        )


class TaskConditionedS3prlFrontend(S3prlFrontend):
    def __init__(
        self,
        fs: Union[int, str] = 16000,
        frontend_conf: Optional[dict] = None,
        download_dir: Optional[str] = None,
        multilayer_feature: bool = False,
        layer: int = -1,
        aux_tasks: Sequence[str] = DEFAULT_AUX_TASKS,
        task_vector_strategy: str = "per_task",
        task_vector_injection: str = "feature_encoder",
        task_vector_init_std: float = 0.1,
        task_vector_seed: int = 0,
        upstream_skeleton: Optional[Dict] = None,
        chunk_size_ms: Union[int, str, None] = None,
        left_chunks: int = -1,
        attention_sink_frames: int = 0,
        multichunk_sizes_ms: Optional[Sequence[Union[int, str, None]]] = None,
        wav_normalize: Optional[bool] = None,
        mask_time_prob: float = 0.0,
        mask_time_length: int = 5,
    ):
        _check_task_vector_options(task_vector_strategy, task_vector_injection)
        frontend_conf = dict(frontend_conf or {"upstream": "wav2vec2_local"})
        skeleton_file = None
        if upstream_skeleton is not None:
            # Offline rebuild: architecture from the stored config, random weights to be overwritten.
            skeleton_file = write_skeleton_checkpoint(upstream_skeleton)
            frontend_conf.update(upstream="wav2vec2_local", path_or_url=skeleton_file)
            logging.info("Building the S3PRL upstream from upstream_skeleton: its weights must come from a model file")
        try:
            super().__init__(
                fs=fs,
                frontend_conf=frontend_conf,
                download_dir=download_dir,
                multilayer_feature=multilayer_feature,
                layer=layer,
            )
        finally:
            if skeleton_file is not None:
                os.unlink(skeleton_file)
        self.frontend_type = "s3prl_tokenverse"
        self.aux_tasks: Tuple[str, ...] = tuple(aux_tasks)
        self.strategy = task_vector_strategy
        self.injection = task_vector_injection
        self._skeleton = upstream_skeleton or skeleton_of(self.upstream.upstream)
        self._init_wav2vec2_reference()
        self._init_task_vectors(task_vector_init_std, task_vector_seed)
        self._init_streaming(wav_normalize, multichunk_sizes_ms, chunk_size_ms, left_chunks, attention_sink_frames)
        self._init_time_masking(mask_time_prob, mask_time_length)

    def _init_wav2vec2_reference(self) -> None:
        """``self._wav2vec2``: the upstream's wav2vec2-style model (None for others: no feature-encoder hook); its
        SSL pretraining heads are frozen."""
        ssl_model = getattr(getattr(self.upstream, "upstream", None), "model", None)
        frozen = freeze_pretraining_heads(ssl_model)
        if frozen:
            logging.info(f"Not trained (SSL pretraining heads, unused in fine-tuning): {', '.join(frozen)}")
        if ssl_model is None or not hasattr(ssl_model, "_get_feat_extract_output_lengths"):
            ssl_model = None  # not wav2vec2-style: no pre-hook, only encoder_output injection
        # A plain reference, not a registered submodule: registering it would list every upstream weight twice
        # in the state dict (frontend._wav2vec2.* next to frontend.upstream.*).
        self.__dict__["_wav2vec2"] = ssl_model

    def _init_task_vectors(self, init_std: float, seed: int) -> None:
        """One ``TaskVectors`` table per injection point (none for strategy ``none``)."""
        self.task_vectors = torch.nn.ModuleDict()
        if self.strategy != "none":
            points = ("feature_encoder", "encoder_output") if self.injection == "both" else (self.injection,)
            for i, point in enumerate(points):
                if point == "feature_encoder":
                    if self._wav2vec2 is None:
                        transformer_encoder_of(self.upstream)  # raises the clear error
                    dim = self.upstream.hidden_sizes[0]
                else:
                    dim = self.output_size()
                self.task_vectors[point] = TaskVectors(dim, len(self.aux_tasks), self.strategy, init_std, seed + i)

    def _init_streaming(self, wav_normalize, multichunk_sizes_ms, chunk_size_ms, left_chunks, attention_sink_frames):
        """Chunked attention (streaming); see espnet2_ext/layers/chunk_attention.py."""
        if wav_normalize is not None and hasattr(self.upstream.upstream, "wav_normalize"):
            self.upstream.upstream.wav_normalize = bool(wav_normalize)
        self.multichunk: Tuple[Optional[int], ...] = tuple(
            chunk_frames_of(v, "multichunk_sizes_ms") for v in (multichunk_sizes_ms or ())
        )
        self.set_chunking(chunk_size_ms, left_chunks, attention_sink_frames)

    def _init_time_masking(self, mask_time_prob: float, mask_time_length: int) -> None:
        """wav2vec2-style time masking while fine-tuning (training only)."""
        self.mask_time_prob, self.mask_time_length = float(mask_time_prob), int(mask_time_length)
        if self.mask_time_prob > 0 and getattr(self._wav2vec2, "mask_emb", None) is None:
            raise ValueError(
                "frontend_conf.mask_time_prob needs a wav2vec2/XLSR-style S3PRL upstream with a mask_emb "
                "(wav2vec2_local, xls_r_300m, ...); set it to 0 for other upstreams"
            )
        if not 0 <= self.mask_time_prob < 1 or self.mask_time_length < 1:
            raise ValueError(
                f"frontend_conf.mask_time_prob must be in [0, 1) and mask_time_length >= 1 (got "
                f"{mask_time_prob}, {mask_time_length})"
            )

    # ---- the task mask ------------------------------------------------------------------------------
    @property
    def tasks(self) -> Tuple[str, ...]:
        """The task mask's columns: the primary task, then ``aux_tasks`` (``TaskSpec.tasks`` of the config)."""
        return (PRIMARY_TASK,) + self.aux_tasks

    def upstream_skeleton(self) -> Optional[Dict]:
        """What to store in config.yaml so the upstream can be rebuilt without its pretrained checkpoint."""
        return self._skeleton

    def _checked_mask(self, task_mask: Optional[torch.Tensor], batch: int, device: torch.device) -> torch.Tensor:
        """``task_mask`` [B, 1 + K] on ``device``; None = every task active (``TaskSpec.active_tasks(None)``)."""
        if task_mask is None:
            return torch.ones(batch, len(self.tasks), dtype=torch.long, device=device)
        if task_mask.shape != (batch, len(self.tasks)):
            raise ValueError(
                f"task_mask must be (batch={batch}, {len(self.tasks)} tasks {list(self.tasks)}), got "
                f"{tuple(task_mask.shape)}"
            )
        return task_mask.to(device)

    # ---- chunked attention -------------------------------------------------------------------------
    def set_chunking(
        self, chunk_size_ms: Union[int, str, None], left_chunks: int = -1, attention_sink_frames: int = 0
    ) -> None:
        """Configure the attention restriction used outside multi-chunk training (validation, decoding)."""
        self.chunk_cfg = ChunkConfig(chunk_frames_of(chunk_size_ms), int(left_chunks), int(attention_sink_frames))
        if self.chunk_cfg.chunked or any(c is not None for c in self.multichunk):
            if self._wav2vec2 is None:
                raise ValueError(
                    "frontend_conf.chunk_size_ms/multichunk_sizes_ms need a wav2vec2/XLSR-style S3PRL "
                    "upstream (wav2vec2_local, xls_r_300m, ...)"
                )
            if getattr(self.upstream.upstream, "wav_normalize", False):
                raise ValueError(
                    "chunked attention with an upstream that normalises each waveform over the whole utterance "
                    "(task_cfg.normalize: true) would look at the entire recording: set frontend_conf.wav_normalize: "
                    "false (the model then trains and decodes on raw waveforms)"
                )

    def chunk_config_for_call(self) -> ChunkConfig:
        """Multi-chunk training draws this batch's chunk size from ``multichunk_sizes_ms`` with torch's global
        generator (seeded by the trainer, so runs and resumes are reproducible); otherwise the configured one."""
        if self.training and self.multichunk:
            i = int(torch.randint(len(self.multichunk), (1,)))
            return ChunkConfig(self.multichunk[i], self.chunk_cfg.left_chunks, self.chunk_cfg.sink_frames)
        return self.chunk_cfg

    @property
    def frame_geometry(self) -> Tuple[int, int]:
        """(receptive field, hop) of the CNN feature encoder in samples (400, 320 for wav2vec2/XLS-R)."""
        field_, hop = 1, 1
        layers = parse_layer_spec(
            self._wav2vec2.cfg.conv_feature_layers, "model_cfg.conv_feature_layers", "the S3PRL upstream's config"
        )  # S3PRL stores it as a string; never eval it
        for _, kernel, stride, *_ in layers:
            field_ += (kernel - 1) * hop
            hop *= stride
        return field_, hop

    # ---- injection ----------------------------------------------------------------------------------
    def _encoder_pre_hook(
        self, module, args, kwargs, *, frame_lengths: Optional[torch.Tensor], task_vector: Optional[torch.Tensor]
    ):
        """Runs on the transformer encoder's input (CNN features + projection).

        1. Padding mask made exact: S3PRL marks a frame as padding only when *all* its samples are padding, so in a
           padded batch the frame straddling an utterance's end stays visible to attention and the positional
           convolution, and an utterance's output depends on how much the batch padded it (a model can even learn
           to use that frame as an end marker). Frames beyond the CNN's exact output length are masked instead,
           which makes batched output equal to one-utterance output.
        2. Training only, with ``mask_time_prob``: spans of frames replaced by wav2vec2's ``mask_emb``, where
           wav2vec2 masks (after the projection, before the positional convolution), as XLS-R is fine-tuned.
        3. X~ = X + v(c): the TokenVerse++ task vector at the ``feature_encoder`` injection point.
        """
        x = args[0]  # x: [B, T, D]
        if kwargs.get("padding_mask") is not None:
            kwargs = {**kwargs, "padding_mask": exact_padding_mask(frame_lengths, x.size(1), x.device)}  # [B, T]
        if self.training and self.mask_time_prob > 0:
            spans = time_mask_spans(frame_lengths, x.size(1), self.mask_time_prob, self.mask_time_length)  # [B, T]
            x = torch.where(spans.to(x.device).unsqueeze(-1), self._wav2vec2.mask_emb.to(x.dtype), x)  # [B, T, D]
        if task_vector is not None:  # task_vector: [B, D]
            x = x + task_vector.to(x.dtype).unsqueeze(1)  # X~ = X + v(c); x: [B, T, D]
        return (x,) + tuple(args[1:]), kwargs

    def forward(
        self,
        input: torch.Tensor,
        input_lengths: torch.Tensor,
        task_mask: Optional[torch.Tensor] = None,
        stream: Optional[EncoderStreamState] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """input: [B, S] samples, input_lengths: [B]; task_mask: [B, 1 + K] 0/1 over ``self.tasks`` (None: every
        task). ``stream``: the encoder state of a running utterance (``TokenVerseStreamingSpeech2Text``); ``input``
        then holds exactly the samples of its next chunk's frames. Returns feats [B, T, D_out], feats_lens [B]."""
        chunk_cfg = self.chunk_config_for_call()
        if stream is not None and not chunk_cfg.chunked:
            raise ValueError("streaming needs a chunk size (frontend chunk_size_ms or --chunk_size_ms)")
        mask = self._checked_mask(task_mask, input.size(0), input.device)  # mask: [B, 1 + K]
        handle, frame_lengths = None, None
        if self._wav2vec2 is not None:
            frame_lengths = self._wav2vec2._get_feat_extract_output_lengths(input_lengths).long()  # [B]
            fe_vector = self.task_vectors["feature_encoder"](mask) if "feature_encoder" in self.task_vectors else None
            # Scoped to this call: bound to this batch's frame lengths and v(c) [B, D], removed in `finally`;
            # prepended, so that other pre-hooks on the encoder see its input as the encoder does.
            hook = functools.partial(self._encoder_pre_hook, frame_lengths=frame_lengths, task_vector=fe_vector)
            handle = transformer_encoder_of(self.upstream).register_forward_pre_hook(
                hook, with_kwargs=True, prepend=True
            )
        try:
            if chunk_cfg.chunked:
                with chunked_encoder(transformer_encoder_of(self.upstream), chunk_cfg, frame_lengths, stream):
                    feats, feats_lens = super().forward(input, input_lengths)
            else:
                feats, feats_lens = super().forward(input, input_lengths)  # feats: [B, T', D_out]
        finally:
            if handle is not None:
                handle.remove()
        if frame_lengths is not None and self.tile_factor == 1:
            # S3PRL pads every utterance's output to round(samples / hop) frames; the frame(s) past the CNN's exact
            # output length are filler that differs between padded and unpadded input: leave them out.
            feats_lens = torch.minimum(feats_lens, frame_lengths.to(feats_lens.device))
            feats = feats[:, : int(feats_lens.max())]
            feats = feats.masked_fill(make_pad_mask(feats_lens, feats, 1), 0.0)
        if "encoder_output" in self.task_vectors:
            vec = self.task_vectors["encoder_output"](mask).to(feats.dtype)  # vec: [B, D_out]
            # X~ = X + v(c) after the full encoder; padding frames back to zero. feats: [B, T, D_out]
            feats = (feats + vec.unsqueeze(1)).masked_fill(make_pad_mask(feats_lens, feats, 1), 0.0)
        return feats, feats_lens

    def __deepcopy__(self, memo):
        """A replica (``copy.deepcopy``, as DataParallel-style replication): the default copy, then S3PRL's
        hidden-state hooks bound to the copy (the copied ones close over the original's list)."""
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            clone.__dict__[key] = copy.deepcopy(value, memo)
        rebind_s3prl_hooks(clone.upstream.upstream)
        return clone

    def vector_tables(self) -> Dict[str, torch.Tensor]:
        return {k: v.weight for k, v in self.task_vectors.items()}
