"""Open-vocabulary entity names for the read (ASR + LID only) subset: Faker's per-locale name lists.

The mini corpus has ~20 trainable names per language, so a transducer learns its entity slot as a closed list and
spells no held-out name (RESULTS.md, "Why NER F1 ... are missed"). The paper's ASR+LID-only data (CommonVoice) has
thousands of names. ``--read_names P`` fills that share of the read subset's entity slots from these pools instead.

Pools: PER = first names, CITY = cities / provinces / counties / départements, ORG = surnames (most of the mini
ORG names are family names: bosch, porsche, renault, michelin). Each name is lower-cased, hyphens become spaces,
and it is kept only when it has 1-2 words, is spelled with the letters of its language's mini templates (what the
tokenizer is trained on) and shares **no word with any mini_tokenverse entity** of any language, so every held-out
dev/test entity stays unseen. Faker's lists are static data read from its provider classes; nothing is random here.
"""

from __future__ import annotations

import functools
import importlib
from typing import Dict, FrozenSet, Iterable, Tuple

from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse_words as W

# Faker locale -> the provider attributes each entity type is read from (tuples, dicts or (code, name) pairs).
_SOURCES: Dict[str, Tuple[Tuple[str, Dict[str, Tuple[str, ...]]], ...]] = {
    "en": (
        ("en_GB", {"PER": ("person.first_names",), "CITY": ("address.counties",), "ORG": ("person.last_names",)}),
        ("en_US", {"PER": ("person.first_names",), "CITY": ("address.states",), "ORG": ("person.last_names",)}),
    ),
    "de": (("de_DE", {"PER": ("person.first_names",), "CITY": ("address.cities",), "ORG": ("person.last_names",)}),),
    "es": (("es_ES", {"PER": ("person.first_names",), "CITY": ("address.states",), "ORG": ("person.last_names",)}),),
    "fr": (
        (
            "fr_FR",
            {
                "PER": ("person.first_names",),
                "CITY": ("address.departments", "address.regions"),
                "ORG": ("person.last_names",),
            },
        ),
    ),
}
MAX_WORDS = 2


def supported_languages() -> Tuple[str, ...]:
    return tuple(_SOURCES)


@functools.lru_cache(maxsize=None)
def entity_words() -> FrozenSet[str]:
    """Every word of every mini_tokenverse entity (all languages, seen and held out, extension included)."""
    return frozenset(
        w for per_lang in W.ENTITIES.values() for names in per_lang.values() for name in names for w in name.split()
    )


@functools.lru_cache(maxsize=None)
def alphabet(lang: str) -> FrozenSet[str]:
    """Letters of the language's templates and slot fillers (the tokenizer's training text spells with these)."""
    text = " ".join([*W.TEMPLATES[lang], *(v for vals in W.SLOTS[lang].values() for v in vals)])
    return frozenset(c for c in text if c.isalpha())


def _provider_values(locale: str, attr: str) -> Iterable[str]:
    kind, name = attr.split(".")
    try:
        provider = importlib.import_module(f"faker.providers.{kind}.{locale}").Provider
    except ModuleNotFoundError as e:
        raise RuntimeError(
            "--read_names needs the 'faker' package (its name lists): run 'bash tools/install.sh'"
        ) from e
    for v in getattr(provider, name):  # OrderedDict (name -> weight), tuple of names, or (code, name) pairs
        yield v[-1] if isinstance(v, tuple) else v


def normalise(raw: str, lang: str) -> str:
    """The pool form of a raw name, or "" when it is not usable (see the module docstring)."""
    words = raw.lower().replace("-", " ").replace("'", " ").split()
    if not 1 <= len(words) <= MAX_WORDS or any(len(w) < 2 for w in words):
        return ""
    letters = alphabet(lang)
    if any(c not in letters for w in words for c in w) or any(w in entity_words() for w in words):
        return ""
    return " ".join(words)


@functools.lru_cache(maxsize=None)
def name_pools(lang: str) -> Dict[str, Tuple[str, ...]]:
    """Entity type -> sorted names usable in ``lang``'s read subset (none of them a mini_tokenverse entity)."""
    if lang not in _SOURCES:
        raise ValueError(f"--read_names has no name lists for language '{lang}'; it supports {', '.join(_SOURCES)}")
    pools: Dict[str, set] = {typ: set() for typ in W.ENTITY_TYPES}
    for locale, attrs in _SOURCES[lang]:
        for typ, sources in attrs.items():
            for attr in sources:
                pools[typ].update(n for n in (normalise(v, lang) for v in _provider_values(locale, attr)) if n)
    return {typ: tuple(sorted(names)) for typ, names in pools.items()}
