"""A parser for the config strings that S3PRL/fairseq hand to ``eval`` (never ``eval`` itself).

wav2vec2/HuBERT configs store the CNN feature encoder as a Python expression, e.g. ``conv_feature_layers:
"[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2"``, and S3PRL builds the model with ``eval(cfg.
conv_feature_layers)``: a model's config.yaml could put any code there. This module reads exactly the grammar such
strings use and nothing else:

    expr   := term ('+' term)*
    term   := atom ('*' atom)*          (one side of each '*' an int)
    atom   := ['-'] INT | '[' [expr (',' expr)* [',']] ']' | '(' expr ')' | '(' [expr ',' (expr ',')* [expr]] ')'

INT is a decimal integer (optionally signed). ``+`` concatenates two lists or two tuples (or adds two ints),
``*`` repeats a list/tuple by an int (or multiplies ints), as Python does. Anything else (names, calls, attributes,
strings, floats, other operators) is a one-line ``ConfigLiteralError`` naming the key and the file. The text, the
nesting and the result are bounded, so a crafted string cannot exhaust memory either.
"""

from __future__ import annotations

import re
from typing import Any, List, Optional, Tuple

from espnet2_ext.utils.safe_archive import UnsafeModelError

MAX_TEXT = 4096  # the standard 7-layer spec is 50 characters
MAX_DEPTH = 16
MAX_ITEMS = 10_000  # elements in any list/tuple built while evaluating
MAX_INT = 10**9

_TOKEN = re.compile(r"\s*(?:(?P<int>[0-9]+)|(?P<op>[-+*\[\](),]))")


class ConfigLiteralError(UnsafeModelError):
    """A config string that S3PRL would ``eval`` is not a plain literal of the grammar above."""


def _tokens(text: str, fail) -> List[Tuple[str, Any, int]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos:].strip() == "":
                break
            fail(f"unexpected {text[pos : pos + 20]!r} at character {pos + 1}")
        if m.group("int") is not None:
            digits = m.group("int")  # no int() of a 4000-digit string: anything past 12 digits is too large anyway
            out.append(("int", int(digits) if len(digits) <= 12 else MAX_INT + 1, m.start("int")))
        else:
            out.append((m.group("op"), None, m.start("op")))
        pos = m.end()
    out.append(("end", None, len(text)))
    return out


class _Parser:
    def __init__(self, text: str, fail):
        self.fail = fail
        self.toks = _tokens(text, fail)
        self.i = 0

    def peek(self) -> str:
        return self.toks[self.i][0]

    def take(self, kind: Optional[str] = None):
        tok = self.toks[self.i]
        if kind is not None and tok[0] != kind:
            shown = "the end" if tok[0] == "end" else repr(tok[1] if tok[0] == "int" else tok[0])
            self.fail(f"expected {kind!r} but found {shown} at character {tok[2] + 1}")
        self.i += 1
        return tok

    # ---- grammar -----------------------------------------------------------------------------------
    def expr(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            self.fail(f"nested deeper than {MAX_DEPTH}")
        value = self.term(depth)
        while self.peek() == "+":
            self.take()
            value = self.combine(value, "+", self.term(depth))
        return value

    def term(self, depth: int) -> Any:
        value = self.atom(depth)
        while self.peek() == "*":
            self.take()
            value = self.combine(value, "*", self.atom(depth))
        return value

    def atom(self, depth: int) -> Any:
        kind, value, pos = self.take()
        if kind == "-" and self.peek() == "int":
            return -self.checked_int(self.take()[1])
        if kind == "int":
            return self.checked_int(value)
        if kind == "[":
            return self.items("]", depth)[0]
        if kind == "(":
            items, trailing_comma = self.items(")", depth)
            if len(items) == 1 and not trailing_comma:
                return items[0]  # parentheses around an expression
            return tuple(items)
        shown = "end of text" if kind == "end" else repr(kind)
        self.fail(f"unexpected {shown} at character {pos + 1}")

    def items(self, close: str, depth: int) -> Tuple[list, bool]:
        items, trailing_comma = [], False
        while self.peek() != close:
            items.append(self.expr(depth + 1))
            trailing_comma = False
            if self.peek() == ",":
                self.take()
                trailing_comma = True
            elif self.peek() != close:
                self.take(close)  # the error names what was expected
            if len(items) > MAX_ITEMS:
                self.fail(f"more than {MAX_ITEMS} items")
        self.take(close)
        return items, trailing_comma

    # ---- values ------------------------------------------------------------------------------------
    def checked_int(self, value: int) -> int:
        if abs(value) > MAX_INT:
            self.fail(f"an integer larger than {MAX_INT}")
        return value

    def combine(self, a: Any, op: str, b: Any) -> Any:
        ints = isinstance(a, int) and isinstance(b, int)
        if op == "+":
            if ints:
                return self.checked_int(a + b)
            if type(a) is type(b) and isinstance(a, (list, tuple)):
                return self.bounded(a + b)
            self.fail(f"'+' of {type(a).__name__} and {type(b).__name__}")
        if ints:
            return self.checked_int(a * b)
        seq, n = (a, b) if isinstance(b, int) else (b, a)
        if not isinstance(seq, (list, tuple)) or not isinstance(n, int):
            self.fail(f"'*' of {type(a).__name__} and {type(b).__name__} (only a list or tuple times an int)")
        if n > 0 and len(seq) * n > MAX_ITEMS:
            self.fail(f"more than {MAX_ITEMS} items")
        return self.bounded(seq * max(n, 0))

    def bounded(self, seq):
        if len(seq) > MAX_ITEMS:
            self.fail(f"more than {MAX_ITEMS} items")
        return seq


def parse_literal(text: Any, key: str, where: str) -> Any:
    """The value of ``text`` under the grammar in the module docstring; a one-line ``ConfigLiteralError`` otherwise.

    ``key`` (e.g. ``frontend_conf.upstream_skeleton.model_cfg.conv_feature_layers``) and ``where`` (the file) name
    the refused string in the error."""

    def fail(why: str):
        raise ConfigLiteralError(
            f"{where}: {key}: {why} in {str(text)[:80]!r}; only lists/tuples of integers "
            f"joined by '+' and repeated by '* int' are allowed here (S3PRL would eval this "
            f"string): refusing to build the model"
        )

    if not isinstance(text, str):
        fail(f"a {type(text).__name__}, not a string")
    if len(text) > MAX_TEXT:
        fail(f"{len(text)} characters (limit {MAX_TEXT})")
    parser = _Parser(text, fail)
    value = parser.expr(0)
    parser.take("end")
    return value


def parse_layer_spec(text: Any, key: str, where: str) -> List[Tuple[int, ...]]:
    """A wav2vec2/HuBERT ``conv_feature_layers`` string: a non-empty list of (dim, kernel, stride[, ...]) int tuples
    with positive entries."""
    value = parse_literal(text, key, where)
    ok = (
        isinstance(value, list)
        and value
        and all(
            isinstance(layer, tuple) and len(layer) >= 3 and all(isinstance(v, int) and v > 0 for v in layer)
            for layer in value
        )
    )
    if not ok:
        raise ConfigLiteralError(
            f"{where}: {key}: {str(text)[:80]!r} is not a list of (dim, kernel, stride) tuples "
            f"of positive integers: refusing to build the model"
        )
    return value


def layer_spec_text(layers: List[Tuple[int, ...]]) -> str:
    """The canonical string of parsed layers: what S3PRL gets to ``eval`` after the check (a plain literal)."""
    return "[" + ", ".join("(" + ", ".join(str(int(v)) for v in layer) + ")" for layer in layers) + "]"
