"""Issue 33: the parser for the config strings S3PRL would eval: never executes, accepts every real layer spec."""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from espnet2_ext.upstream.xlsr_standin import PRESETS
from espnet2_ext.utils.config_literal import (
    MAX_ITEMS,
    ConfigLiteralError,
    layer_spec_text,
    parse_layer_spec,
    parse_literal,
)

STANDARD = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
REAL_SPECS = {  # text -> its value, written out by hand (fairseq's / S3PRL's dataclass defaults, our presets)
    "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2": STANDARD,  # fairseq wav2vec2
    "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2": STANDARD,  # fairseq HuBERT, S3PRL hubert
    "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]": STANDARD,  # S3PRL wav2vec2 default
    "[(512, 10, 5), (512, 8, 4), (512, 4, 2), (512, 4, 2), (512, 4, 2), (512, 1, 1), (512, 1, 1), (512, 1, 1)]": [
        (512, 10, 5),
        (512, 8, 4),
        (512, 4, 2),
        (512, 4, 2),
        (512, 4, 2),
        (512, 1, 1),
        (512, 1, 1),
        (512, 1, 1),
    ],
    "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2": [(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2,
    "[(512, 10, 5, 0)] + 4 * [(512, 3, 2, 0)]": [(512, 10, 5, 0)] + [(512, 3, 2, 0)] * 4,
}


def test_every_real_layer_spec_is_accepted_with_its_value():
    for text, value in REAL_SPECS.items():
        if all(v > 0 for layer in value for v in layer):
            assert parse_layer_spec(text, "k", "f") == value, text
        assert parse_literal(text, "k", "f") == value, text
    for name, preset in PRESETS.items():  # our stand-in presets (tiny ... xlsr_300m)
        layers = parse_layer_spec(preset["conv_feature_layers"], "k", name)
        assert [layer[1:] for layer in layers] == [(10, 5)] + [(3, 2)] * 4 + [(2, 2)] * 2, name
        assert parse_layer_spec(layer_spec_text(layers), "k", name) == layers  # the canonical text round-trips


# ---- generated specs: structure drawn first, then written out the ways fairseq configs write them --------------
_space = st.sampled_from(["", " ", "  "])


@st.composite
def specs(draw):
    """(text, value): a sum of repeated single-layer lists, as every real spec is."""
    text, value = [], []
    for _ in range(draw(st.integers(1, 6))):
        layer = tuple(draw(st.lists(st.integers(1, 4096), min_size=3, max_size=4)))
        n = draw(st.integers(1, 8))
        sp = draw(_space)
        inner = "(" + f",{sp}".join(map(str, layer)) + ")"
        if n == 1 and draw(st.booleans()):
            part = f"[{inner}]"
        elif draw(st.booleans()):
            part = f"[{inner}]{sp}*{sp}{n}"
        else:
            part = f"{n}{sp}*{sp}[{inner}]"
        text.append(part)
        value += [layer] * n
    return f"{draw(_space)}+{draw(_space)}".join(text), value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_generated_layer_specs_parse_to_their_value(spec):
    text, value = spec
    assert parse_layer_spec(text, "k", "f") == value
    assert parse_layer_spec(layer_spec_text(value), "k", "f") == value


# ---- fuzzed strings: refused in one line, never executed --------------------------------------------------------
_PIECES = [
    "[",
    "]",
    "(",
    ")",
    ",",
    "+",
    "*",
    "-",
    " ",
    "1",
    "512",
    "10",
    "**",
    ".",
    "'",
    "x",
    "__import__",
    "open('M','w')",
    "lambda: 0",
    "if",
    "else",
    ":",
    "\n",
    "0x1f",
    "1e3",
    "{",
    "}",
    "@",
    "os.system",
]


_watching: list = []  # while non-empty, code execution events are recorded into _watching[-1]


def _audit(event, args):
    if _watching and event in ("exec", "compile", "import", "os.system", "subprocess.Popen", "open"):
        _watching[-1].append(event)


sys.addaudithook(_audit)  # audit hooks cannot be removed: gated by _watching


def watched_parse(text, key="frontend_conf.x", where="model/config.yaml", layers=False):
    """parse_* with every eval/exec/compile/import/open/system reported by the interpreter's audit hooks."""
    events: list = []
    _watching.append(events)
    try:
        return (parse_layer_spec if layers else parse_literal)(text, key, where), events
    except ConfigLiteralError as e:
        return e, events
    finally:
        _watching.pop()


def _plain(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, (list, tuple)) and all(_plain(v) for v in value)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.lists(st.sampled_from(_PIECES), max_size=30).map("".join), st.text(max_size=60)))
def test_fuzzed_strings_never_execute_and_fail_in_one_line(text):
    value, events = watched_parse(text)
    assert not events, (text, events)  # nothing compiled, executed, imported or opened
    if isinstance(value, ConfigLiteralError):
        msg = str(value)
        assert "\n" not in msg and msg.startswith("model/config.yaml: frontend_conf.x: "), msg
    else:
        assert _plain(value), (text, value)  # only ints, lists and tuples come out


def test_the_audit_hook_sees_eval():
    """The watch above is not vacuous: eval of a payload is reported."""
    events: list = []
    _watching.append(events)
    try:
        eval("1 + 1")
    finally:
        _watching.pop()
    assert "exec" in events or "compile" in events


def test_payloads_refused_and_leave_no_trace(tmp_path):
    marker = tmp_path / "CODE_RAN"
    layers = "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2"
    payloads = [
        f"{layers} if open({str(marker)!r}, 'w') else []",
        f"__import__('os').system('touch {marker}') or {layers}",
        f"[open({str(marker)!r}, 'w')]",
        "[(1, 2, 3)] * 10 ** 10",  # a memory bomb for eval
        "[(1, 2, 3)] * 100000000",
        "[" * 200 + "]" * 200,
        f"{layers}\n# trailing",
        "(lambda: 0)()",
    ]
    key = "frontend_conf.upstream_skeleton.model_cfg.conv_feature_layers"
    for text in payloads:
        err, events = watched_parse(text, key, "exp/config.yaml", layers=True)
        assert isinstance(err, ConfigLiteralError) and not events, (text, err, events)
        assert "\n" not in str(err) and f"exp/config.yaml: {key}:" in str(err), str(err)
    assert not marker.exists()


@pytest.mark.parametrize(
    "text, why",
    [
        ("[(512, 10)]", "not a list of \\(dim, kernel, stride\\)"),
        ("[(512, 0, 5)]", "positive"),
        ("[]", "not a list"),
        ("(512, 10, 5)", "not a list"),
        ("[[512, 10, 5]]", "not a list of"),
        (f"[(1,1,1)] * {MAX_ITEMS + 1}", "more than"),
        (123, "a int, not a string"),
    ],
)
def test_layer_spec_shape_is_checked(text, why):
    with pytest.raises(ConfigLiteralError, match=why):
        parse_layer_spec(text, "k", "f")
