"""``TokenVerseSpeech2Text``: ESPnet's ``Speech2Text`` with task activation, our batched transducer searches and
constrained decoding.

    s2t = TokenVerseSpeech2Text.from_pretrained("exp/asr_tokenverse/model.zip")    # offline, packed or dir
    text, tokens, token_ids, hyp = s2t(wav, task_activation=["asr", "scd", "lid"])[0]
    s2t(stereo_44k, sample_rate=44100)   # or s2t("clip.mp3"): resampled + downmixed to the model's rate, logged

Search (``transducer_conf.search_type``): ``modified_beam_search`` (default; icefall semantics, batched) or
``greedy`` (batched) are ours; ESPnet's ``default``/``tsd``/``alsd``/``nsc``/``maes``/``mbg`` still work.
Contextual biasing: ``biasing=`` of ``__call__``/``decode_batch`` (our searches; see ``asr/biasing.py``).
Constrained decoding (default on): tokens of inactive tasks can never be emitted (ITT = 0 by construction), which is
what users of "transcribe + only these tags" expect; switch it off to measure what the model itself does (ITT in
the paper's Table IV).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from espnet2.asr.transducer.beam_search_transducer import Hypothesis as TransHypothesis
from espnet2.bin.asr_inference import Speech2Text

from espnet2_ext.asr.biasing import DecoderBiasing, biasing_conf
from espnet2_ext.asr.transducer.search import (
    greedy_search_batch,
    modified_beam_search,
    suppress_mask_from_task_mask,
    to_espnet_hypotheses,
    token_surface,
)
from espnet2_ext.asr.transducer.search_common import Hypothesis, SpanGrammar, check_blank_penalty
from espnet2_ext.task_spec import NE_CLOSE, NE_OPEN, task_spec_of

OUR_SEARCHES = ("modified_beam_search", "greedy")
ESPNET_SEARCHES = ("default", "tsd", "alsd", "nsc", "maes", "mbg")
AUDIO_MISMATCH = ("resample", "error")  # what to do with audio at another rate / with several channels
_MAX_CHANNELS = 16  # a 2-D array whose smaller side is at most this is (samples, channels) or (channels, samples)


def model_sample_rate(train_args) -> int:
    """The rate the model was trained on: ``frontend_conf.fs`` (ESPnet also accepts ``16k``), default 16 kHz."""
    fs = (getattr(train_args, "frontend_conf", None) or {}).get("fs", 16000)
    if isinstance(fs, str):
        import humanfriendly

        fs = humanfriendly.parse_size(fs)
    return int(fs)


class _MaskedJoint(torch.nn.Module):
    """Joint network plus a fixed logit bias [V] (ESPnet searches): -1e9 on suppressed tokens, minus the blank
    penalty on blank."""

    def __init__(self, joint: torch.nn.Module, penalty: torch.Tensor):
        super().__init__()
        self.joint, self.penalty = joint, penalty

    def forward(self, *args, **kwargs):
        out = self.joint(*args, **kwargs)
        return out + self.penalty.to(out.device, out.dtype)


class TokenVerseSpeech2Text(Speech2Text):
    def __init__(
        self,
        asr_train_config=None,
        asr_model_file=None,
        transducer_conf: Optional[Dict] = None,
        task_activation: Union[str, Sequence[str], None] = None,
        constrained_decoding: bool = True,
        beam_size: int = 4,
        nbest: int = 1,
        audio_mismatch: str = "resample",
        biasing_weight: Optional[float] = None,
        biasing_mode: Optional[str] = None,
        biasing_close_bonus: Optional[float] = None,
        **kwargs,
    ):
        if audio_mismatch not in AUDIO_MISMATCH:
            raise ValueError(f"audio_mismatch '{audio_mismatch}' is unknown: choose {' or '.join(AUDIO_MISMATCH)}")
        conf = dict(transducer_conf or {})
        self.search_type = conf.pop("search_type", "modified_beam_search")
        # subtracted from the blank logit in every search (ours and ESPnet's); ESPnet's own searches know no such key
        self.blank_penalty = check_blank_penalty(conf.pop("blank_penalty", 0.0))
        # well-formed [NE] ... [/NE] (search_common.SpanGrammar): our searches only, ESPnet's know no such rule
        self.span_grammar = conf.pop("span_grammar", False)
        if not isinstance(self.span_grammar, bool):
            raise ValueError(f"transducer_conf.span_grammar must be true or false, got {self.span_grammar!r}")
        if self.search_type not in OUR_SEARCHES + ESPNET_SEARCHES:
            raise ValueError(
                f"transducer_conf.search_type '{self.search_type}' is unknown: choose one of "
                f"{', '.join(OUR_SEARCHES + ESPNET_SEARCHES)}"
            )
        if self.span_grammar and self.search_type not in OUR_SEARCHES:
            raise ValueError(
                f"transducer_conf.span_grammar works with the searches {', '.join(OUR_SEARCHES)}, not "
                f"ESPnet's '{self.search_type}': drop span_grammar or change search_type"
            )
        bias_conf = biasing_conf(conf, biasing_weight, biasing_mode, biasing_close_bonus)  # [biasing]
        espnet_conf = {"search_type": self.search_type if self.search_type in ESPNET_SEARCHES else "default", **conf}
        super().__init__(
            asr_train_config=asr_train_config,
            asr_model_file=asr_model_file,
            transducer_conf=espnet_conf,
            beam_size=beam_size,
            nbest=nbest,
            **kwargs,
        )
        if not getattr(self.asr_model, "use_transducer_decoder", False):
            raise ValueError("TokenVerseSpeech2Text needs a transducer model (decoder: transducer)")
        self.spec = task_spec_of(self.asr_train_args)  # the model's one TaskSpec: searches, masks, suppression
        if tuple(self.asr_model.tasks) != self.spec.tasks:
            raise ValueError(
                f"{asr_train_config}: the model's task mask columns {list(self.asr_model.tasks)} "
                f"differ from tokenverse_conf.tasks {list(self.spec.tasks)}; use the config.yaml "
                f"the model was trained with"
            )
        self.beam_size, self.constrained = beam_size, constrained_decoding
        self.default_active = self.parse_activation(task_activation)
        self.token_list = list(self.asr_model.token_list)
        self._grammar = self._build_span_grammar() if self.span_grammar else None  # token ids: once per model
        self.sample_rate, self.audio_mismatch = model_sample_rate(self.asr_train_args), audio_mismatch
        self._formats_logged: set = set()
        self.biasing = DecoderBiasing(
            bias_conf,
            self.token_list,
            self.tokenizer,
            self.converter,  # [biasing]
            self.asr_model.blank_id,
            token_surface,
        )

    # ---- audio input --------------------------------------------------------------------------------
    def prepare_audio(self, speech, sample_rate: Optional[int] = None, name: str = "input"):
        """Audio at any rate and channel count -> mono at the model's rate (soxr), one log line per new input
        format; with ``audio_mismatch='error'`` a ``ValueError`` instead. ``sample_rate=None`` means the model's
        rate. 2-D input is ``(samples, channels)`` as soundfile returns it, or ``(channels, samples)`` as
        torchaudio does (the smaller side is the channels)."""
        from espnet2_ext.data.audio_io import conform, describe

        x = speech.detach().cpu().numpy() if isinstance(speech, torch.Tensor) else np.asarray(speech)
        rate = int(sample_rate) if sample_rate is not None else self.sample_rate
        if x.ndim == 2 and min(x.shape) <= _MAX_CHANNELS and x.shape[0] != x.shape[1]:
            x = x if x.shape[1] < x.shape[0] else x.T  # x: [T, C]
        elif x.ndim != 1:
            raise ValueError(
                f"{name}: audio of shape {tuple(x.shape)}: give a 1-D array of samples, or 2-D (samples, channels)"
            )
        channels = 1 if x.ndim == 1 else x.shape[1]
        if rate == self.sample_rate and channels == 1:
            return x.reshape(-1)  # x: [T]
        got, want = describe(rate, channels), describe(self.sample_rate, 1)
        if self.audio_mismatch == "error":
            raise ValueError(
                f"{name}: audio is {got} but the model expects {want}; convert it (sox in.wav -r "
                f"{self.sample_rate} -c 1 out.wav) or decode with --audio_mismatch resample"
            )
        if (rate, channels) not in self._formats_logged:
            self._formats_logged.add((rate, channels))
            logging.warning(
                f"{name}: audio is {got}; converting to {want}, the model's rate (soxr; "
                f"--audio_mismatch error refuses such input instead)"
            )
        return conform(x.astype(np.float32, copy=False), rate, self.sample_rate)

    # ---- activation ---------------------------------------------------------------------------------
    @property
    def model_tasks(self) -> tuple:
        """Every task the model was trained with, primary first (the task mask's columns)."""
        return self.spec.tasks

    def parse_activation(self, activation: Union[str, Sequence[str], None]) -> tuple:
        """Validate a task set (``TaskSpec.active_tasks``); None means every task the model was trained with."""
        return self.spec.active_tasks(activation, "--task_activation")

    def _masks(self, batch: int, task_mask: Optional[torch.Tensor], activation) -> torch.Tensor:
        if task_mask is not None:
            return task_mask.long().view(batch, -1)
        active = self.parse_activation(activation) if activation is not None else self.default_active
        return torch.tensor([self.spec.mask(active)] * batch, dtype=torch.long)

    # ---- decoding -----------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        speech: Union[torch.Tensor, np.ndarray, str, Path],
        task_activation=None,
        task_mask: Optional[torch.Tensor] = None,
        sample_rate: Optional[int] = None,
        biasing=None,
    ):
        """ESPnet's single-utterance call, plus the tasks to activate. Returns [(text, tokens, ids, hyp)].
        ``biasing``: one list of phrases to pull the search toward (see ``decode_batch``).

        ``speech``: samples (``sample_rate``: their rate, default the model's; several channels are averaged) or an
        audio file path (any format soundfile reads). Other rates are resampled, see ``prepare_audio``."""
        if isinstance(speech, (str, Path)):
            from espnet2_ext.data.audio_io import load_audio

            speech, sample_rate = load_audio(str(speech))
        speech = torch.as_tensor(self.prepare_audio(speech, sample_rate))
        mask = self._masks(1, task_mask, task_activation).to(self.device)
        lengths = torch.tensor([speech.size(-1)])
        if self.search_type in OUR_SEARCHES:
            one = None if biasing is None else [biasing]  # [biasing] this utterance's list
            return self.decode_batch(speech.view(1, -1), lengths, mask, biasing=one)[0]
        self.biasing.graphs(biasing, 1, False, self.search_type)  # [biasing] ESPnet's searches refuse a list
        # ESPnet's search on our encoder output: ESPnet's __call__ minus its encode (which takes no mask).
        speech = speech.view(1, -1).to(self.device, getattr(torch, self.dtype))  # speech: [1, S]
        enc, _ = self.asr_model.encode(speech, lengths.to(self.device), task_mask=mask)  # enc: [1, T, D]
        with self._espnet_search_constrained(mask[0]):
            return self._decode_single_sample(enc[0])

    @torch.no_grad()
    def decode_batch(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        task_mask: Optional[torch.Tensor] = None,
        task_activation=None,
        with_frames: bool = False,
        biasing=None,
    ) -> List[list]:
        """Batched encoder + batched search: per utterance, the n-best list of (text, tokens, ids, hyp).

        ``biasing`` (contextual biasing, our searches): None; one list for every utterance (a ``BiasingList`` of
        ``text/biasing_list.py`` or a list of phrase strings); or one entry per utterance (a list or None). An empty
        list is no list: the output is exactly that of decoding without one.

        Our searches always give ``hyp.frames`` (encoder frame of each token; seconds = frame x
        ``self.frame_shift``). ESPnet's searches keep no frames: ``with_frames`` force-aligns their hypotheses."""
        batch = speech.size(0)
        mask = self._masks(batch, task_mask, task_activation).to(self.device)
        # [biasing] None, or one ContextGraph (or None) per utterance
        graphs = self.biasing.graphs(biasing, batch, self.search_type in OUR_SEARCHES, self.search_type)
        if self.search_type not in OUR_SEARCHES:
            out = [self(speech[i, : int(speech_lengths[i])], task_mask=mask[i : i + 1]) for i in range(batch)]
            return self._force_aligned(speech, speech_lengths, mask, out) if with_frames else out
        speech = speech.to(self.device, getattr(torch, self.dtype))
        enc, enc_lens = self.asr_model.encode(speech, speech_lengths.to(self.device), task_mask=mask)
        if isinstance(enc, tuple):
            enc = enc[0]
        suppress = self._suppress(mask)
        decoder, joint = self.asr_model.decoder, self.asr_model.joint_network
        if self.search_type == "greedy":
            seqs, frames = greedy_search_batch(
                enc,
                enc_lens,
                decoder,
                joint,
                suppress_mask=suppress,
                return_frames=True,
                blank_penalty=self.blank_penalty,
                span_grammar=self._span_grammar(),
                biasing=graphs,
            )
            nbests = [[Hypothesis(yseq=list(s), score=0.0, frames=f)] for s, f in zip(seqs, frames)]
        else:
            nbests = modified_beam_search(
                enc,
                enc_lens,
                decoder,
                joint,
                beam=self.beam_size,
                suppress_mask=suppress,
                nbest=self.nbest,
                length_norm=True,
                blank_penalty=self.blank_penalty,
                span_grammar=self._span_grammar(),
                biasing=graphs,
            )
        return [self._results(to_espnet_hypotheses(h, self.asr_model.blank_id)) for h in nbests]

    def decode_recording(self, path: Union[str, Path], long_form: str = "segment", task_activation=None, **options):
        """A whole recording (an audio file), decoded long-form in bounded memory: ``asr/long_form.py``
        (``long_form``: segment | stream | auto | none; ``options``: ``LongFormOptions`` fields). Returns a
        ``RecordingResult`` (tokens and times in the recording's clock, its segments)."""
        from espnet2_ext.asr.long_form import LongFormOptions
        from espnet2_ext.asr.long_form_dir import decode_recording
        from espnet2_ext.data.audio_blocks import RecordingReader

        reader = RecordingReader(path, self.sample_rate)
        return decode_recording(
            self, reader, Path(path).stem, LongFormOptions(mode=long_form, **options), task_activation
        )

    @property
    def frame_shift(self) -> float:
        """Seconds per encoder frame, from the frontend's CNN strides / S3PRL hop and the encoder's subsampling."""
        from espnet2_ext.asr.timing import frame_shift_seconds

        return frame_shift_seconds(self.asr_model, getattr(self, "sample_rate", 16000))

    def _force_aligned(self, speech, speech_lengths, mask, results: List[list]) -> List[list]:
        """ESPnet hypotheses with ``frames`` from a forced alignment of their tokens (timing.force_align_frames)."""
        from espnet2_ext.asr.timing import TimedHypothesis, force_align_frames

        speech = speech.to(self.device, getattr(torch, self.dtype))
        enc, enc_lens = self.asr_model.encode(speech, speech_lengths.to(self.device), task_mask=mask)
        enc = enc[0] if isinstance(enc, tuple) else enc  # enc: [B, T, D]
        out = []
        for i, nbest in enumerate(results):
            row = []
            for text, token, token_int, hyp in nbest:
                frames = force_align_frames(
                    enc[i, : int(enc_lens[i])], self.asr_model.decoder, self.asr_model.joint_network, token_int
                )
                hyp = TimedHypothesis(
                    score=hyp.score, yseq=hyp.yseq, dec_state=hyp.dec_state, lm_state=hyp.lm_state, frames=frames
                )
                row.append((text, token, token_int, hyp))
            out.append(row)
        return out

    def _span_grammar(self) -> Optional[SpanGrammar]:
        """[NE] ... [/NE] kept well formed (closed before [ENDP]/[SCD]/a language token), when configured."""
        return self._grammar

    def _build_span_grammar(self) -> Optional[SpanGrammar]:
        ids = {token_surface(t): i for i, t in enumerate(self.token_list)}
        if NE_OPEN not in ids or NE_CLOSE not in ids:
            return None
        closing = [t for task in ("scd", "endp", "lid") for t in self.spec.aux_tokens.get(task, ())]
        return SpanGrammar(ids[NE_OPEN], ids[NE_CLOSE], tuple(ids[t] for t in closing if t in ids))

    def _suppress(self, mask: torch.Tensor) -> Optional[torch.Tensor]:
        if not self.constrained:
            return None
        return suppress_mask_from_task_mask(self.token_list, self.spec, mask).to(mask.device)

    @contextlib.contextmanager
    def _espnet_search_constrained(self, mask_row: torch.Tensor):
        suppress = self._suppress(mask_row.view(1, -1))
        search = self.beam_search_transducer
        if (suppress is None and not self.blank_penalty) or search is None:
            yield
            return
        bias = torch.zeros(len(self.token_list))  # [V]
        if suppress is not None:
            bias = bias.masked_fill(suppress[0].cpu(), -1e9)
        bias[self.asr_model.blank_id] -= self.blank_penalty
        joint = search.joint_network
        search.joint_network = _MaskedJoint(joint, bias)
        try:
            yield
        finally:
            search.joint_network = joint

    def _results(self, hyps: List[TransHypothesis]) -> list:
        out = []
        for hyp in hyps[: self.nbest]:
            token_int = [int(t) for t in hyp.yseq[1:] if int(t) != self.asr_model.blank_id]
            token = self.converter.ids2tokens(token_int)
            text = self.tokenizer.tokens2text(token) if self.tokenizer is not None else None
            out.append((text, token, token_int, hyp))
        return out

    # ---- loading ------------------------------------------------------------------------------------
    @staticmethod
    def from_pretrained(
        model_tag: Optional[str] = None, allow_network: bool = False, **kwargs
    ) -> "TokenVerseSpeech2Text":
        """Build from a packed model (zip made by the recipe's pack stage, or its unpacked dir), offline.

        ``model_tag`` may also be given as ``asr_train_config``/``asr_model_file`` keyword arguments instead.
        ``allow_network``: the config may name an upstream that downloads (``utils/config_guard.py``).
        """
        from espnet2_ext.utils.config_guard import network_upstreams_allowed

        if model_tag is not None:
            kwargs.update(unpack_model(model_tag))
        with network_upstreams_allowed(allow_network):
            return TokenVerseSpeech2Text(**kwargs)


def unpack_model(path: Union[str, Path], cache_dir: Optional[str] = None) -> Dict[str, str]:
    """Paths of config/model files of a packed model: a zip/tar from ``espnet2.bin.pack`` or its unpacked dir.

    Archives are checked before anything is written (``utils/safe_archive.py``: no member outside ``cache_dir``, no
    links, bounded size); an unsafe one is an ``UnsafeModelError`` naming the member.
    """
    from espnet2_ext.utils.safe_archive import safe_unpack

    path = Path(path)
    if path.is_dir():
        found = _files_from_meta(path)
        if not found:
            raise FileNotFoundError(
                f"{path}: no meta.yaml (or its files are missing); give a zip made by the pack "
                f"stage or the directory it was unpacked into"
            )
    elif path.exists():
        out = cache_dir or tempfile.mkdtemp(prefix="tokenverse_model_")
        try:
            found = safe_unpack(str(path), out)
        except Exception:
            if cache_dir is None:  # ours: leave no empty temp dir behind
                shutil.rmtree(out, ignore_errors=True)
            raise
    else:
        raise FileNotFoundError(f"{path}: no such packed model (model-hub tags need network; give a local file)")
    return {k: v for k, v in found.items() if k in ("asr_train_config", "asr_model_file")}


def _files_from_meta(root: Path) -> Optional[Dict[str, str]]:
    """Files listed by the meta.yaml of an unpacked model, resolved against the dir (inside ``root``) where they
    exist; entries that are absolute or climb out with ``..`` are refused."""
    from espnet2_ext.utils.safe_archive import check_meta_entries, load_yaml_bytes

    root = root.absolute()
    for meta in sorted(root.rglob("meta.yaml")):
        entries = check_meta_entries(load_yaml_bytes(meta.read_bytes(), str(meta)), root, str(meta), resolve=False)
        for base in (meta.parent, meta.parent.parent, root):
            if base != root and root not in base.parents:
                continue
            if entries and all((base / v).exists() for v in entries.values()):
                return {k: str(base / v) for k, v in entries.items()}
    return None
