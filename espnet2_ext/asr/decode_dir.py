"""Decode a data dir into ESPnet's ``<output_dir>/<n>best_recog`` layout (``bin/asr_inference``,
``bin/decode_activation_sets``): batched, streaming (``asr/streaming.py``) or long-form (``asr/long_form_dir.py``),
with per-utterance biasing lists and ``1best_recog/{ctm,rttm,events.jsonl}`` (``text/time_outputs.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List

import torch
from espnet2.fileio.datadir_writer import DatadirWriter

from espnet2_ext.asr.audio_input import AudioAtModelRate
from espnet2_ext.asr.nbest_output import write_nbest
from espnet2_ext.asr.speech2text import OUR_SEARCHES, TokenVerseSpeech2Text
from espnet2_ext.common import TASK_MASK


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


def decode_to_dir(s2t: TokenVerseSpeech2Text, args, output_dir: str, task_mask: torch.Tensor, task) -> None:
    """Decode ``args.data_path_and_name_and_type`` into ESPnet's ``<output_dir>/<n>best_recog`` layout. The tasks
    come as a mask only: ``task_mask`` [1, 1+K] (``--task_activation``, resolved in ``bin/asr_inference``) for every
    utterance without a tasks-file entry; per-utterance ones come with the loader's batches. ``task``: the ESPnet
    task class whose iterator, preprocessor and collate function read the inputs (``TokenVerseASRTask``, passed
    in: tasks/ sits above asr/)."""
    from espnet2_ext.asr.long_form_dir import decode_recordings_to_dir, wants_long_form

    if wants_long_form(args):  # whole recordings, read lazily, cut and stitched: asr/long_form_dir.py
        # [biasing] keys are the wav.scp's recording ids: a recording's list (a call's CRM record) biases each piece
        decode_recordings_to_dir(s2t, args, output_dir, task_mask, biasing_of=biasing_lookup(args, s2t))
        return
    batches = _batches(_loader(s2t, args, task_mask, task), task_mask)
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


def _loader(s2t: TokenVerseSpeech2Text, args, task_mask: torch.Tensor, task):
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
    return task.build_streaming_iterator(
        triplets,
        dtype=args.dtype,
        batch_size=args.batch_size,
        key_file=args.key_file,
        num_workers=args.num_workers,
        preprocess_fn=AudioAtModelRate(s2t.audio, sound, task.build_preprocess_fn(train_args, False)),
        collate_fn=task.build_collate_fn(train_args, False),
        allow_variable_data_keys=args.allow_variable_data_keys,
        inference=True,
    )
