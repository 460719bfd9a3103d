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
The options: ``bin/_asr_inference_args.py``; the decoding into the output dir: ``asr/decode_dir.py``.
"""

from __future__ import annotations

import logging
import sys
from typing import List, Optional

from espnet2_ext.asr.decode_dir import decode_to_dir
from espnet2_ext.asr.speech2text import TokenVerseSpeech2Text, unpack_model
from espnet2_ext.bin._asr_inference_args import get_parser
from espnet2_ext.bin._cli import cli_main
from espnet2_ext.tasks.tokenverse_asr import TokenVerseASRTask


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


def inference(args) -> None:
    s2t = build_speech2text(args)
    # task_mask: [1, 1+K]
    decode_to_dir(s2t, args, args.output_dir, s2t.task_mask(args.task_activation), TokenVerseASRTask)


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
