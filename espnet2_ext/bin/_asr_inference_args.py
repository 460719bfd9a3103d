"""The options of ``bin/asr_inference`` (also ``bin/decode_activation_sets``'s): ESPnet's ``asr_inference`` parser
plus our groups (tasks and search, streaming, biasing, long form). The options themselves are described in
``bin/asr_inference.py``'s docstring and the README.
"""

from __future__ import annotations

from espnet2.bin import asr_inference as espnet_inference
from espnet2.utils import config_argparse
from espnet2.utils.types import str2bool

from espnet2_ext.asr.speech2text import AUDIO_MISMATCH, ESPNET_SEARCHES, OUR_SEARCHES

# the first line of bin/asr_inference.py's docstring: the parser's description, as before the split
DESCRIPTION = (
    "Decode with a TokenVerse++ model: ESPnet's ``asr_inference`` options and output layout, plus task activation."
)


def get_parser() -> config_argparse.ArgumentParser:
    """ESPnet's ``asr_inference`` parser plus ours: tasks and search, streaming, biasing, long form."""
    parser = espnet_inference.get_parser()
    parser.description = DESCRIPTION
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
