"""TokenVerse++ ASR model: ESPnet's ``ESPnetASRModel`` with a transducer decoder, a task-conditioned frontend and
a selectable RNN-T loss backend.

What differs from the parent:
* the per-utterance ``task_mask`` [B, 1 + K] (from the task-mask collate function) is an argument all the way
  down: ``forward(..., task_mask)`` -> ``encode(speech, lengths, task_mask)`` -> ``_extract_feats`` ->
  ``frontend(speech, lengths, task_mask=...)``, which adds the task vectors; None = every trained task active.
  ``forward`` and ``encode`` are therefore ours (the parent's take no mask): ``forward`` is the parent's
  transducer branch (+ CTC), ``encode`` its frontend -> specaug -> normalize -> pre-encoder -> encoder ->
  post-encoder chain;
* the RNN-T loss comes from ``rnnt_loss_backends`` (torchaudio by default) instead of ``warprnnt_pytorch``, which
  ESPnet imports for transducers and which is not on PyPI;
* validation CER/WER use batched greedy search instead of a per-utterance beam search;
* ``model_conf.freeze_old`` (written by ``bin/extend_model``) trains only the rows a model extension added.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from espnet2.asr.espnet_model import ESPnetASRModel, autocast, autocast_type
from espnet2.asr.transducer.error_calculator import ErrorCalculatorTransducer
from espnet2.asr_transducer.utils import get_transducer_task_io
from espnet2.torch_utils.device_funcs import force_gatherable

from espnet2_ext.asr.frontend.task_conditioned_s3prl import TaskConditionedS3prlFrontend
from espnet2_ext.asr.rnnt_loss_backends import build_rnnt_loss
from espnet2_ext.task_spec import PRIMARY_TASK


class TokenVerseASRModel(ESPnetASRModel):
    def __init__(
        self,
        vocab_size: int,
        token_list,
        frontend,
        specaug,
        normalize,
        preencoder,
        encoder,
        postencoder,
        decoder,
        ctc,
        joint_network,
        rnnt_loss: str = "torchaudio",
        rnnt_loss_conf: Optional[dict] = None,
        report_cer: bool = True,
        report_wer: bool = True,
        sym_space: str = "<space>",
        sym_blank: str = "<blank>",
        freeze_old: Optional[dict] = None,
        **kwargs,
    ):
        if joint_network is None:
            raise ValueError("model: tokenverse is a transducer: set 'decoder: transducer' (and joint_net_conf)")
        # Build the parent without the joint network so it does not import warprnnt_pytorch; the transducer
        # parts are attached below.
        super().__init__(
            vocab_size=vocab_size,
            token_list=token_list,
            frontend=frontend,
            specaug=specaug,
            normalize=normalize,
            preencoder=preencoder,
            encoder=encoder,
            postencoder=postencoder,
            decoder=decoder,
            ctc=ctc,
            joint_network=None,
            report_cer=False,
            report_wer=False,
            sym_space=sym_space,
            sym_blank=sym_blank,
            **kwargs,
        )
        del self.criterion_att  # attention-decoder loss: unused by a transducer
        self.use_transducer_decoder = True
        self.joint_network = joint_network
        self.rnnt_loss_name = rnnt_loss
        self.criterion_transducer = build_rnnt_loss(
            rnnt_loss, self.blank_id, encoder.output_size(), decoder.dunits, vocab_size, rnnt_loss_conf
        )
        self.error_calculator_trans = None
        if report_cer or report_wer:
            # Parent class only for its token->text conversion and CER/WER; decoding is ours (greedy, batched).
            self.error_calculator_trans = ErrorCalculatorTransducer(
                decoder, joint_network, token_list, sym_space, sym_blank, report_cer=report_cer, report_wer=report_wer
            )
        if freeze_old:
            # An extended model (bin/extend_model --freeze_old): only the new token / task-vector rows train.
            from espnet2_ext.asr.extend import freeze_old_rows

            freeze_old_rows(self, freeze_old)

        if getattr(self, "interctc_weight", 0.0) != 0.0:
            raise ValueError("model: tokenverse does not support intermediate CTC (model_conf.interctc_weight)")

    # ---- task conditioning: the mask as an argument -------------------------------------------------
    @property
    def tasks(self) -> Tuple[str, ...]:
        """The task mask's columns (primary first)."""
        return getattr(self.frontend, "tasks", (PRIMARY_TASK,))

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        task_mask: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """speech: [B, S], speech_lengths: [B], text: [B, U] (inactive tasks' tokens already stripped by the
        preprocessor), text_lengths: [B], task_mask: [B, 1 + K]. Returns (loss, stats, batch size)."""
        assert text_lengths.dim() == 1, text_lengths.shape
        batch_size = speech.shape[0]
        text[text == -1] = self.ignore_id
        text = text[:, : text_lengths.max()]  # for data-parallel: text [B, U_max]

        encoder_out, encoder_out_lens = self.encode(speech, speech_lengths, task_mask)  # [B, T, D], [B]
        stats: Dict[str, Optional[torch.Tensor]] = {}
        loss_ctc = None
        if self.ctc_weight != 0.0:
            loss_ctc, cer_ctc = self._calc_ctc_loss(encoder_out, encoder_out_lens, text, text_lengths)
            stats["loss_ctc"], stats["cer_ctc"] = loss_ctc.detach(), cer_ctc
        loss_transducer, cer_transducer, wer_transducer = self._calc_transducer_loss(
            encoder_out, encoder_out_lens, text
        )
        loss = loss_transducer if loss_ctc is None else loss_transducer + self.ctc_weight * loss_ctc
        stats["loss_transducer"] = loss_transducer.detach()
        stats["cer_transducer"], stats["wer_transducer"] = cer_transducer, wer_transducer
        stats["loss"] = loss.detach()
        # force_gatherable: to-device and to-tensor if scalar for DataParallel
        return force_gatherable((loss, stats, batch_size), loss.device)

    def encode(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, task_mask: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """speech: [B, S], speech_lengths: [B], task_mask: [B, 1 + K] or None (every task). Returns
        encoder_out [B, T, D], encoder_out_lens [B]. Also what ESPnet's ``asr_inference`` calls (without a mask)."""
        with autocast(self.autocast_frontend, dtype=autocast_type):
            feats, feats_lengths = self._extract_feats(speech, speech_lengths, task_mask)  # feats: [B, T, F]
            if self.specaug is not None and self.training:
                feats, feats_lengths = self.specaug(feats, feats_lengths)
            if self.normalize is not None:
                feats, feats_lengths = self.normalize(feats, feats_lengths)
        if self.preencoder is not None:
            feats, feats_lengths = self.preencoder(feats, feats_lengths)
        encoder_out, encoder_out_lens, _ = self.encoder(feats, feats_lengths)  # encoder_out: [B, T', D]
        if isinstance(encoder_out, tuple):  # intermediate outputs: only for interctc, refused at construction
            encoder_out = encoder_out[0]
        if self.postencoder is not None:
            encoder_out, encoder_out_lens = self.postencoder(encoder_out, encoder_out_lens)
        return encoder_out, encoder_out_lens

    def _extract_feats(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, task_mask: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        speech = speech[:, : speech_lengths.max()]  # for data-parallel: speech [B, S_max]
        if isinstance(self.frontend, TaskConditionedS3prlFrontend):
            return self.frontend(speech, speech_lengths, task_mask=task_mask)
        if task_mask is not None and not bool(task_mask.bool().all()):
            raise ValueError(
                f"frontend {type(self.frontend).__name__} cannot be conditioned on tasks: use frontend "
                f"s3prl_tokenverse, or activate every task"
            )
        return self.frontend(speech, speech_lengths) if self.frontend is not None else (speech, speech_lengths)

    def collect_feats(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        task_mask: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> Dict[str, torch.Tensor]:
        feats, feats_lengths = self._extract_feats(speech, speech_lengths, task_mask)
        return {"feats": feats, "feats_lengths": feats_lengths}

    def load_state_dict(self, state_dict, strict: bool = True, *args, **kwargs):
        """ESPnet loads with strict=False, which would leave mismatched task vectors silently random or fail with
        a bare size error: check the task-vector tables first and say what differs."""
        # Models trained before the frontend stopped registering its wav2vec2 twice also carry every upstream
        # weight under frontend._wav2vec2.*: the same tensors as frontend.upstream.upstream.model.*, dropped here.
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("frontend._wav2vec2.")}
        own = self.state_dict()
        for key, value in state_dict.items():
            if "task_vectors" in key and key in own and own[key].shape != value.shape:
                raise ValueError(
                    f"checkpoint task-vector table {key} has shape {tuple(value.shape)} but this config "
                    f"builds {tuple(own[key].shape)} (tasks {list(self.tasks)}, strategy "
                    f"{getattr(self.frontend, 'strategy', '?')}): the checkpoint was trained with "
                    f"another task set or strategy; use its own config.yaml"
                )
        missing = [k for k in own if "task_vectors" in k and k not in state_dict]
        if missing and any("task_vectors" not in k for k in state_dict):
            raise ValueError(
                f"checkpoint has no {', '.join(missing)}: it was trained without these task vectors "
                f"(another strategy/injection point); use its own config.yaml"
            )
        return super().load_state_dict(state_dict, strict, *args, **kwargs)

    # ---- loss ---------------------------------------------------------------------------------------
    def _calc_transducer_loss(self, encoder_out: torch.Tensor, encoder_out_lens: torch.Tensor, labels: torch.Tensor):
        decoder_in, target, t_len, u_len = get_transducer_task_io(
            labels, encoder_out_lens, ignore_id=self.ignore_id, blank_id=self.blank_id
        )
        self.decoder.set_device(encoder_out.device)
        decoder_out = self.decoder(decoder_in)
        if self.rnnt_loss_name == "pruned":
            loss = self.criterion_transducer(encoder_out, t_len, decoder_out, target, u_len, self.joint_network)
        else:
            joint_out = self.joint_network(encoder_out.unsqueeze(2), decoder_out.unsqueeze(1))
            loss = self.criterion_transducer(joint_out, target, t_len, u_len)

        cer, wer = None, None
        if not self.training and self.error_calculator_trans is not None:
            cer, wer = self._greedy_error_rates(encoder_out, encoder_out_lens, target)
        return loss, cer, wer

    @torch.no_grad()
    def _greedy_error_rates(self, encoder_out, encoder_out_lens, target):
        from espnet2_ext.asr.transducer.search import greedy_search_batch

        pred = greedy_search_batch(encoder_out, encoder_out_lens, self.decoder, self.joint_network)
        calc = self.error_calculator_trans
        char_pred, char_target = calc.convert_to_char(pred, target)
        cer = calc.calculate_cer(char_pred, char_target) if calc.report_cer else None
        wer = calc.calculate_wer(char_pred, char_target) if calc.report_wer else None
        return cer, wer
