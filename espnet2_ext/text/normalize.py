"""Word normalisation shared by references, importers and biasing lists: one rule for what a "word" is."""

from __future__ import annotations

import unicodedata
from typing import List


def normalize_words(text: str) -> str:
    """Lowercase words without punctuation (letters incl. accents, digits and in-word apostrophes kept);
    ``[NE]``/``[/NE]`` and other bracketed tags pass through in upper case."""
    out: List[str] = []
    for tok in unicodedata.normalize("NFC", text).split():
        if len(tok) > 2 and tok[0] == "[" and tok[-1] == "]" and " " not in tok:
            out.append(tok.upper())
            continue
        chars = [c if (unicodedata.category(c)[0] in "LMN") else ("'" if c in "'’" else " ") for c in tok.lower()]
        out.extend(w.strip("'") for w in "".join(chars).split() if w.strip("'"))
    return " ".join(out)
