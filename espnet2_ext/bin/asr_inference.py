"""Decode with a TokenVerse++ model: ESPnet's ``asr_inference`` options and output layout, plus task activation.

    python -m espnet2_ext.bin.asr_inference --asr_train_config exp/asr/config.yaml \
        --asr_model_file exp/asr/valid.loss.best.pth --output_dir exp/asr/decode_asr+scd/test \
        --data_path_and_name_and_type data/test/wav.scp,speech,sound --task_activation asr,scd

Added options: ``--task_activation`` (default: every task the model was trained with), ``--search_type``
(shortcut for ``transducer_conf.search_type``; default ``modified_beam_search``), ``--blank_penalty`` (shortcut for
``transducer_conf.blank_penalty``, subtracted from the blank logit; default 0), ``--span_grammar`` (shortcut for
``transducer_conf.span_grammar``: every ``[NE]`` closed by ``[/NE]`` before the turn's next tag),
``--constrained_decoding``, ``--model_file`` (a packed zip or unpacked dir, offline), ``--audio_mismatch`` (audio
at another rate or with
several channels: ``resample`` to the model's rate and mono, logged once per input format (default), or ``error``).
``sound`` inputs are read with soundfile (wav/flac/ogg/opus/mp3) and keep their rate. Per-utterance activation:
also pass the data dir's ``utt2tasks`` as ``--data_path_and_name_and_type data/test/utt2tasks,tasks,text``.
Unlike ESPnet's, ``--batch_size`` > 1 decodes utterances together (batched encoder and search).
Output: ``<output_dir>/<n>best_recog/{text,token,token_int,score}``, as ESPnet writes them, plus
``1best_recog/{ctm,rttm,events.jsonl}`` (word times, segments cut at ``[SCD]``, endpoints and entity spans; see
docs/data_formats.md; ``--write_times false`` skips them).
Contextual biasing: ``--biasing_list FILE`` (one list for every utterance) or ``--utt2biasing FILE`` (per
utterance or recording), ``--biasing_weight``, ``--biasing_mode``, ``--biasing_close_bonus`` (README, "Contextual
biasing").
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

import torch
from espnet2.bin import asr_inference as espnet_inference
from espnet2.fileio.datadir_writer import DatadirWriter
from espnet2.utils import config_argparse
from espnet2.utils.types import str2bool

from espnet2_ext.asr.audio_input import AudioAtModelRate
from espnet2_ext.asr.nbest_output import write_nbest
from espnet2_ext.asr.speech2text import (
    AUDIO_MISMATCH,
    ESPNET_SEARCHES,
    OUR_SEARCHES,
    TokenVerseSpeech2Text,
    unpack_model,
)
from espnet2_ext.bin._cli import cli_main
from espnet2_ext.common import TASK_MASK
from espnet2_ext.tasks.tokenverse_asr import TokenVerseASRTask


def get_parser() -> config_argparse.ArgumentParser:
    """ESPnet's ``asr_inference`` parser plus ours: tasks and search, streaming, biasing, long form."""
    parser = espnet_inference.get_parser()
    parser.description = __doc__.splitlines()[0]
    add_tokenverse_arguments(parser)
    from espnet2_ext.asr.streaming import add_streaming_arguments

    add_streaming_arguments(parser)
    add_biasing_arguments(parser)
    from espnet2_ext.asr.long_form_dir import add_long_form_arguments

    add_long_form_arguments(parser)  # --long_form, --max_segment_s, ... (issue #30)
    parser.set_defaults(beam_size=4)
    return parser


def add_tokenverse_arguments(parser) -> None:
    group = parser.add_argument_group("TokenVerse++")
    group.add_argument(
        "--task_activation",
        type=str,
        default=None,
        help="comma-separated tasks to switch on, e.g. asr,scd,lid (default: all trained tasks)",
    )
    group.add_argument(
        "--search_type",
        type=str,
        default=None,
        choices=OUR_SEARCHES + ESPNET_SEARCHES,
        help="overrides transducer_conf.search_type (default modified_beam_search)",
    )
    group.add_argument(
        "--blank_penalty",
        type=float,
        default=None,
        help="overrides transducer_conf.blank_penalty: subtracted from the blank logit at every "
        "frame (icefall's blank_penalty; fewer deletions, more insertions; 0 = off)",
    )
    group.add_argument(
        "--span_grammar",
        type=str2bool,
        default=None,
        help="overrides transducer_conf.span_grammar: keep [NE] ... [/NE] well formed ([NE] only "
        "outside a span, [/NE] only inside, closed before [ENDP]/[SCD]/a language token)",
    )
    group.add_argument(
        "--constrained_decoding",
        type=str2bool,
        default=True,
        help="forbid tokens of inactive tasks (ITT = 0); false: let the model decide",
    )
    group.add_argument(
        "--model_file",
        type=str,
        default=None,
        help="packed model (zip from the pack stage, or its unpacked dir): replaces "
        "--asr_train_config/--asr_model_file; no network needed",
    )
    group.add_argument(
        "--allow_network_upstream",
        action="store_true",
        help="let the model's config name an S3PRL/hub upstream that downloads (default: refused)",
    )
    group.add_argument(
        "--audio_mismatch",
        type=str,
        default="resample",
        choices=AUDIO_MISMATCH,
        help="audio whose rate or channel count differs from the model's: resample/downmix it "
        "(one log line per input format) or stop with an error",
    )
    group.add_argument(
        "--write_times",
        type=str2bool,
        default=True,
        help="also write 1best_recog/{ctm,rttm,events.jsonl}: word times, segments cut at [SCD], "
        "endpoints and entity spans (in the recording's clock when the data dir has "
        "segments/orig_segments)",
    )
    group.add_argument(
        "--rttm_labels",
        type=str,
        default="alternate",
        choices=("alternate", "segment"),
        help="RTTM segment labels: A/B alternating at each [SCD] (two-party calls) or one label "
        "per segment; either way a change detection, not speaker identities",
    )


def build_speech2text(args) -> TokenVerseSpeech2Text:
    if args.ngpu > 1:
        raise ValueError("--ngpu > 1: only single-device decoding is supported; split the data with --key_file")
    device = "cuda" if args.ngpu >= 1 else "cpu"
    paths = (
        unpack_model(args.model_file)
        if args.model_file
        else {"asr_train_config": args.asr_train_config, "asr_model_file": args.asr_model_file}
    )
    transducer_conf = dict(args.transducer_conf or {})
    if args.search_type:
        transducer_conf["search_type"] = args.search_type
    if args.blank_penalty is not None:
        transducer_conf["blank_penalty"] = args.blank_penalty
    if args.span_grammar is not None:
        transducer_conf["span_grammar"] = args.span_grammar
    from espnet2_ext.asr.streaming import speech2text_for

    return speech2text_for(
        args,
        **paths,
        transducer_conf=transducer_conf,
        task_activation=args.task_activation,
        constrained_decoding=args.constrained_decoding,
        lm_train_config=args.lm_train_config,
        lm_file=args.lm_file,
        token_type=args.token_type,
        bpemodel=args.bpemodel,
        device=device,
        dtype=args.dtype,
        beam_size=args.beam_size,
        lm_weight=args.lm_weight,
        nbest=args.nbest,
        audio_mismatch=args.audio_mismatch,
        biasing_weight=args.biasing_weight,
        biasing_mode=args.biasing_mode,
        biasing_close_bonus=args.biasing_close_bonus,
        biasing_rescore_bonus=args.biasing_rescore_bonus,
        biasing_rescore_top_k=args.biasing_rescore_top_k,
    )


def add_biasing_arguments(parser) -> None:
    from espnet2_ext.asr.biasing import (
        BIASING_MODES,
        DEFAULT_BIASING_WEIGHT,
        DEFAULT_RESCORE_BONUS,
        DEFAULT_RESCORE_TOP_K,
    )

    group = parser.add_argument_group("Contextual biasing (our searches)")
    group.add_argument(
        "--biasing_list",
        type=str,
        default=None,
        help="phrases to bias every utterance toward: one per line, optional ' :weight', # comments",
    )
    group.add_argument(
        "--utt2biasing",
        type=str,
        default=None,
        help="per-utterance lists: '<utt-or-recording-id> <list file>' or '<id> | phrase | ...'; "
        "recording ids need a segments file in the same folder",
    )
    group.add_argument(
        "--biasing_weight",
        type=float,
        default=None,
        help=f"bonus per matched token of a phrase without its own weight (default "
        f"{DEFAULT_BIASING_WEIGHT}; a failed partial match gives it back)",
    )
    group.add_argument(
        "--biasing_mode",
        type=str,
        default=None,
        choices=BIASING_MODES,
        help="ungated: bonus anywhere (default); gated: only inside an open [NE] span; rescore: the search is not "
        "biased, then each [NE] span of the result becomes the list phrase the model scores best, if it beats the "
        "heard words by --biasing_rescore_bonus (not with --streaming)",
    )
    group.add_argument(
        "--biasing_close_bonus",
        type=float,
        default=None,
        help="bonus for [/NE] right after a complete phrase (default 0)",
    )
    group.add_argument(
        "--biasing_rescore_bonus",
        type=float,
        default=None,
        help=f"mode rescore: log-likelihood bonus of a list phrase over the heard words of a span (default "
        f"{DEFAULT_RESCORE_BONUS}, chosen on dev; higher replaces more spans)",
    )
    group.add_argument(
        "--biasing_rescore_top_k",
        type=int,
        default=None,
        help=f"mode rescore: phrases per span the transducer scores, the best of a CTC prefilter (default "
        f"{DEFAULT_RESCORE_TOP_K}; 0 or a model without CTC head: all)",
    )


def biasing_lookup(args, s2t: TokenVerseSpeech2Text):
    """utterance id -> its ``BiasingList`` (or None), from --biasing_list / --utt2biasing; None when neither."""
    from espnet2_ext.data.kaldi_dir import read_table
    from espnet2_ext.text.biasing_list import read_biasing_list, read_lists_for

    if args.biasing_list and args.utt2biasing:
        raise ValueError(
            "give --biasing_list or --utt2biasing, not both (an utt2biasing line may name a shared list file)"
        )
    # refused (ESPnet's searches; mode rescore in streaming) or the graph built now, before any decoding
    check = s2t.biasing.graphs if getattr(args, "streaming", False) else s2t.biasing.plan
    if args.biasing_list:
        lst = read_biasing_list(args.biasing_list)
        check(lst, 1, s2t.search_type in OUR_SEARCHES, s2t.search_type)
        return lambda key: lst
    if args.utt2biasing:
        scps = [p for p, _, kind in args.data_path_and_name_and_type if kind == "sound"]
        utt_ids = list(read_table(scps[0], strict=False).values) if scps else []  # the whole set, not --key_file's
        lists = read_lists_for(args.utt2biasing, utt_ids)
        if lists:
            check(next(iter(lists.values())), 1, s2t.search_type in OUR_SEARCHES, s2t.search_type)
        return lists.get
    return None


def _batches(loader, task_mask: torch.Tensor):
    """The loader's batches, each with its ``task_mask`` [B, 1+K] (the preprocessor's; the CLI's for every
    utterance when the model's preprocessor is not ``tokenverse`` and emits none). An input error raised in a
    DataLoader worker comes back as its own one-line message (PyTorch re-raises it with the worker's traceback
    folded into the text)."""
    try:
        for keys, batch in loader:
            if TASK_MASK not in batch:
                batch[TASK_MASK] = task_mask.expand(len(keys), -1)
            yield keys, batch
    except ValueError as e:
        text = str(e)
        if "Original Traceback" not in text:
            raise
        last = [line for line in text.splitlines() if line.strip()][-1]
        raise type(e)(last.split(": ", 1)[1] if ": " in last else last) from None


class _TimedOutputs:
    """Collects the 1-best tokens with their emission times and writes ctm/rttm/events.jsonl
    (``text/time_outputs.py``). Utterances listed in the data dir's ``segments``/``orig_segments`` are placed in
    their recording's clock."""

    def __init__(self, s2t: TokenVerseSpeech2Text, args):
        from espnet2_ext.text.time_outputs import read_origins

        self.s2t, self.shift, self.utts = s2t, s2t.frame_shift, []
        scps = [path for path, _, kind in args.data_path_and_name_and_type if kind == "sound"]
        self.origins = read_origins(Path(scps[0]).parent) if scps else {}
        self.subword = getattr(s2t.asr_train_args, "token_type", "bpe") != "word"
        self.labels = getattr(args, "rttm_labels", "alternate")

    def add(self, key: str, tokens: List[str], hyp, n_samples: int) -> None:
        from espnet2_ext.asr.timing import frames_to_seconds
        from espnet2_ext.text.time_outputs import TimedUtterance

        frames = getattr(hyp, "frames", None)
        if frames is None or len(frames) != len(tokens):
            raise ValueError(
                f"utterance {key}: the search returned no emission frames; decode with --write_times false"
            )
        rec, off = self.origins.get(key, (key, 0.0))
        self.utts.append(
            TimedUtterance(
                key,
                list(tokens),
                frames_to_seconds(frames, self.shift),
                self.shift,
                n_samples / float(getattr(self.s2t, "sample_rate", 16000)),
                rec,
                off,
            )
        )

    def write(self, out_dir: Path) -> None:
        from espnet2_ext.text.time_outputs import write_time_outputs

        write_time_outputs(out_dir, self.utts, self.s2t.spec, self.subword, self.labels)


def decode_to_dir(s2t: TokenVerseSpeech2Text, args, output_dir: str, task_mask: torch.Tensor) -> None:
    """Decode ``args.data_path_and_name_and_type`` into ESPnet's ``<output_dir>/<n>best_recog`` layout. The tasks
    come as a mask only: ``task_mask`` [1, 1+K] (``--task_activation``, resolved in ``inference``) for every
    utterance without a tasks-file entry; per-utterance ones come with the loader's batches."""
    from espnet2_ext.asr.long_form_dir import decode_recordings_to_dir, wants_long_form

    if wants_long_form(args):  # whole recordings, read lazily, cut and stitched: asr/long_form_dir.py
        # [biasing] keys are the wav.scp's recording ids: a recording's list (a call's CRM record) biases each piece
        decode_recordings_to_dir(s2t, args, output_dir, task_mask, biasing_of=biasing_lookup(args, s2t))
        return
    batches = _batches(_loader(s2t, args, task_mask), task_mask)
    biasing_of = biasing_lookup(args, s2t)  # [biasing] utt -> list, or None
    timed = _TimedOutputs(s2t, args) if getattr(args, "write_times", True) else None
    if getattr(args, "streaming", False):  # utterance by utterance, fed in pieces; see asr/streaming.py
        from espnet2_ext.asr.streaming import decode_streaming_to_dir

        decode_streaming_to_dir(s2t, batches, output_dir, args.sim_chunk_length, timed, biasing_of=biasing_of)
        return
    with DatadirWriter(output_dir) as writer:
        for keys, batch in batches:
            results = s2t.decode_masked(
                batch["speech"],  # speech: [B, S]
                batch["speech_lengths"],
                batch[TASK_MASK],  # task_mask: [B, 1+K]
                with_frames=timed is not None,
                biasing=None if biasing_of is None else [biasing_of(k) for k in keys],
            )
            for i, (key, nbest) in enumerate(zip(keys, results)):
                write_nbest(writer, key, nbest)
                if timed is not None and nbest:
                    timed.add(key, nbest[0][1], nbest[0][3], int(batch["speech_lengths"][i]))
    if timed is not None:
        timed.write(Path(output_dir) / "1best_recog")


def _loader(s2t: TokenVerseSpeech2Text, args, task_mask: torch.Tensor):
    """ESPnet's streaming iterator over the inputs, read at the model's rate, with the training config's
    preprocessor: it builds each utterance's task mask, from the tasks file's entry when one is given
    (``--data_path_and_name_and_type utt2tasks,tasks,text``), else from ``task_mask``'s tasks (its
    ``default_active``; see ``train/preprocessor.py``)."""
    train_args = s2t.asr_train_args
    if getattr(train_args, "preprocessor", None) == "tokenverse":
        pconf = {
            **(train_args.preprocessor_conf or {}),
            "default_active": list(s2t.spec.active_from_mask(task_mask[0])),
        }
        train_args = argparse.Namespace(**{**vars(train_args), "preprocessor_conf": pconf})
    # 'sound' entries reach AudioAtModelRate as text (the wav.scp value), so their rate is not lost.
    sound = {name: path for path, name, kind in args.data_path_and_name_and_type if kind == "sound"}
    triplets = [(p, n, "text" if n in sound else k) for p, n, k in args.data_path_and_name_and_type]
    return TokenVerseASRTask.build_streaming_iterator(
        triplets,
        dtype=args.dtype,
        batch_size=args.batch_size,
        key_file=args.key_file,
        num_workers=args.num_workers,
        preprocess_fn=AudioAtModelRate(s2t.audio, sound, TokenVerseASRTask.build_preprocess_fn(train_args, False)),
        collate_fn=TokenVerseASRTask.build_collate_fn(train_args, False),
        allow_variable_data_keys=args.allow_variable_data_keys,
        inference=True,
    )


def inference(args) -> None:
    s2t = build_speech2text(args)
    decode_to_dir(s2t, args, args.output_dir, s2t.task_mask(args.task_activation))  # task_mask: [1, 1+K]


def run(cmd: Optional[List[str]] = None) -> None:
    parser = get_parser()
    args = parser.parse_args(cmd)
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    if not args.model_file and not args.asr_train_config and not args.model_tag:
        parser.error("give --model_file (packed model) or --asr_train_config and --asr_model_file")
    if args.model_tag and not args.model_file:
        args.model_file = args.model_tag  # a local packed model; hub tags would need network
    from espnet2_ext.utils.config_guard import network_upstreams_allowed

    with network_upstreams_allowed(args.allow_network_upstream):  # issue 33: off unless asked
        inference(args)


main = cli_main(run, prog="asr_inference: error", errors=(ValueError, FileNotFoundError))

if __name__ == "__main__":
    sys.exit(main())
