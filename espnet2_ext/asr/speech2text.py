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

import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from espnet2.bin.asr_inference import Speech2Text

from espnet2_ext.asr import search_driver
from espnet2_ext.asr.audio_input import AUDIO_MISMATCH, AudioPreparer, model_sample_rate
from espnet2_ext.asr.biasing import DecoderBiasing, biasing_conf
from espnet2_ext.asr.espnet_search import ESPNET_SEARCHES, decode_espnet
from espnet2_ext.asr.search_driver import OUR_SEARCHES, build_span_grammar
from espnet2_ext.asr.transducer.search import token_surface
from espnet2_ext.asr.transducer.search_common import SpanGrammar, check_blank_penalty
from espnet2_ext.task_spec import task_spec_of

# re-exported: the CLIs and users import them from here
__all__ = [
    "AUDIO_MISMATCH",
    "ESPNET_SEARCHES",
    "OUR_SEARCHES",
    "TokenVerseSpeech2Text",
    "model_sample_rate",
    "unpack_model",
]


def _search_conf(transducer_conf: Optional[Dict]) -> tuple:
    """``transducer_conf`` -> (search type, blank penalty, span grammar on?, the rest for ESPnet), validated."""
    conf = dict(transducer_conf or {})
    search_type = conf.pop("search_type", "modified_beam_search")
    # subtracted from the blank logit in every search (ours and ESPnet's); ESPnet's own searches know no such key
    blank_penalty = check_blank_penalty(conf.pop("blank_penalty", 0.0))
    # well-formed [NE] ... [/NE] (search_common.SpanGrammar): our searches only, ESPnet's know no such rule
    span_grammar = conf.pop("span_grammar", False)
    if not isinstance(span_grammar, bool):
        raise ValueError(f"transducer_conf.span_grammar must be true or false, got {span_grammar!r}")
    if search_type not in OUR_SEARCHES + ESPNET_SEARCHES:
        raise ValueError(
            f"transducer_conf.search_type '{search_type}' is unknown: choose one of "
            f"{', '.join(OUR_SEARCHES + ESPNET_SEARCHES)}"
        )
    if span_grammar and search_type not in OUR_SEARCHES:
        raise ValueError(
            f"transducer_conf.span_grammar works with the searches {', '.join(OUR_SEARCHES)}, not "
            f"ESPnet's '{search_type}': drop span_grammar or change search_type"
        )
    return search_type, blank_penalty, span_grammar, conf


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
        biasing_rescore_bonus: Optional[float] = None,
        biasing_rescore_top_k: Optional[int] = None,
        **kwargs,
    ):
        if audio_mismatch not in AUDIO_MISMATCH:
            raise ValueError(f"audio_mismatch '{audio_mismatch}' is unknown: choose {' or '.join(AUDIO_MISMATCH)}")
        self.search_type, self.blank_penalty, self.span_grammar, conf = _search_conf(transducer_conf)
        bias_conf = biasing_conf(
            conf, biasing_weight, biasing_mode, biasing_close_bonus, biasing_rescore_bonus, biasing_rescore_top_k
        )
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
        # token ids of the span rule: once per model
        self._grammar = build_span_grammar(self.token_list, self.spec) if self.span_grammar else None
        self.sample_rate, self.audio_mismatch = model_sample_rate(self.asr_train_args), audio_mismatch
        self.audio = AudioPreparer(self.sample_rate, audio_mismatch)
        self.biasing = DecoderBiasing(
            bias_conf, self.token_list, self.tokenizer, self.converter, self.asr_model.blank_id, token_surface
        )
        self.rescorer = search_driver.build_rescorer(self) if self.biasing.rescoring else None  # mode rescore

    # ---- audio input --------------------------------------------------------------------------------
    def prepare_audio(self, speech, sample_rate: Optional[int] = None, name: str = "input") -> np.ndarray:
        """Audio at any rate and channel count -> mono at the model's rate (``audio_input.AudioPreparer``)."""
        return self.audio(speech, sample_rate, name)

    # ---- the task selection: names -> mask, at the public calls only ----------------------------------
    @property
    def model_tasks(self) -> tuple:
        """Every task the model was trained with, primary first (the task mask's columns)."""
        return self.spec.tasks

    def parse_activation(self, activation: Union[str, Sequence[str], None]) -> tuple:
        """Validate a task set (``TaskSpec.active_tasks``); None means every task the model was trained with."""
        return self.spec.active_tasks(activation, "--task_activation")

    def task_mask(self, task_activation=None, batch: int = 1) -> torch.Tensor:
        """The one step from task names to the task mask: ``task_activation`` (names, a comma-separated string, or
        None = the constructor's ``task_activation``) -> ``task_mask`` [B, 1+K] (0/1 over ``model_tasks``)."""
        active = self.parse_activation(task_activation) if task_activation is not None else self.default_active
        return torch.tensor([self.spec.mask(active)] * batch, dtype=torch.long)  # task_mask: [B, 1+K]

    def _selection(self, batch: int, task_activation, task_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """What a public call was given -> ``task_mask`` [B, 1+K]: its mask as it is, else its names."""
        if task_mask is not None:
            return task_mask.long().view(batch, -1)
        return self.task_mask(task_activation, batch)

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
        """ESPnet's single-utterance call, plus the tasks to activate (names, or ``task_mask`` [1, 1+K]). Returns
        [(text, tokens, ids, hyp)]. ``biasing``: one list of phrases to pull the search toward (see
        ``decode_batch``).

        ``speech``: samples (``sample_rate``: their rate, default the model's; several channels are averaged) or an
        audio file path (any format soundfile reads). Other rates are resampled, see ``prepare_audio``."""
        speech, lengths = self.audio.utterance(speech, sample_rate)  # speech: [1, S], lengths: [1]
        mask = self._selection(1, task_activation, task_mask)  # task_mask: [1, 1+K]
        return self.decode_masked(speech, lengths, mask, biasing=None if biasing is None else [biasing])[0]

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
        """Batched encoder + batched search: per utterance, the n-best list of (text, tokens, ids, hyp). The tasks:
        ``task_mask`` [B, 1+K], else the names ``task_activation`` (None: the constructor's).

        ``biasing`` (contextual biasing, our searches): None; one list for every utterance (a ``BiasingList`` of
        ``text/biasing_list.py`` or a list of phrase strings); or one entry per utterance (a list or None). An empty
        list is no list: the output is exactly that of decoding without one.

        Our searches always give ``hyp.frames`` (encoder frame of each token; seconds = frame x
        ``self.frame_shift``). ESPnet's searches keep no frames: ``with_frames`` force-aligns their hypotheses."""
        mask = self._selection(speech.size(0), task_activation, task_mask)  # task_mask: [B, 1+K]
        return self.decode_masked(speech, speech_lengths, mask, with_frames, biasing)

    @torch.no_grad()
    def decode_masked(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        task_mask: torch.Tensor,
        with_frames=False,
        biasing=None,
    ) -> List[list]:
        """The one decoding core (``__call__``, ``decode_batch`` and the CLIs' loops call it): the tasks come as
        the mask only. ``speech``: [B, S]; ``speech_lengths``: [B]; ``task_mask``: [B, 1+K]; ``biasing`` as in
        ``decode_batch``."""
        ours = self.search_type in OUR_SEARCHES
        task_mask = task_mask.to(self.device)  # task_mask: [B, 1+K]
        # [biasing] graphs: None, or one ContextGraph (or None) per utterance for the search; lists: one list (or
        # None) per utterance, for mode rescore after it. ESPnet's searches refuse a list here.
        graphs, lists = self.biasing.plan(biasing, speech.size(0), ours, self.search_type)
        if not ours:
            return decode_espnet(self, speech, speech_lengths, task_mask, with_frames)
        speech = speech.to(self.device, getattr(torch, self.dtype))  # speech: [B, S]
        enc, enc_lens = self.asr_model.encode(speech, speech_lengths.to(self.device), task_mask=task_mask)
        enc = enc[0] if isinstance(enc, tuple) else enc  # enc: [B, T, D]
        rescore = lists if self.rescorer is not None else None
        return search_driver.search(self, enc, enc_lens, task_mask, graphs, rescore_lists=rescore)

    def decode_recording(self, path: Union[str, Path], long_form: str = "segment", task_activation=None, **options):
        """A whole recording (an audio file), decoded long-form in bounded memory: ``asr/long_form.py``
        (``long_form``: segment | stream | auto | none; ``options``: ``LongFormOptions`` fields). Returns a
        ``RecordingResult`` (tokens and times in the recording's clock, its segments)."""
        from espnet2_ext.asr.long_form import LongFormOptions
        from espnet2_ext.asr.long_form_dir import decode_recording
        from espnet2_ext.data.audio_blocks import RecordingReader

        reader = RecordingReader(path, self.sample_rate)
        mask = self.task_mask(task_activation)  # task_mask: [1, 1+K]
        return decode_recording(self, reader, Path(path).stem, LongFormOptions(mode=long_form, **options), mask)

    @property
    def frame_shift(self) -> float:
        """Seconds per encoder frame, from the frontend's CNN strides / S3PRL hop and the encoder's subsampling."""
        from espnet2_ext.asr.timing import frame_shift_seconds

        return frame_shift_seconds(self.asr_model, getattr(self, "sample_rate", 16000))

    def _span_grammar(self) -> Optional[SpanGrammar]:
        """[NE] ... [/NE] kept well formed (closed before [ENDP]/[SCD]/a language token), when configured."""
        return self._grammar

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
