"""Biasing lists for evaluation (issue #29 item 4), the protocol of Le et al. 2021 (the LibriSpeech biasing lists):
each list holds the reference entities of what it covers plus N *distractors* drawn with a seed from open name
pools (``name_pools``: Faker's names, none sharing a word with any mini_tokenverse entity).

Three list kinds:

* ``utt``: per utterance, its reference entities + N distractors;
* ``conv``: per conversation (the recording of ``segments``/``orig_segments``), the entities of all its
  utterances + N distractors. A data dir where every utterance is its own conversation (mini_tokenverse: one
  utterance = one 2-4-turn conversation) gets no ``conv`` lists: they would be the ``utt`` lists again
  (``manifest.json`` says so);
* ``lang``: a per-language catalogue, every entity of the set in that language + N distractors, one file shared
  by all utterances of the language (so the decoder builds its graph once).

Reference entities are the ``[NE] ... [/NE]`` spans of ``text``. Utterances not annotated for ``ner`` (read speech:
``[DE] guten morgen anna``) carry no spans; for mini_tokenverse, ``corpus_seed`` takes them from the corpus plan
(``mini_tokenverse_plan``, checked word for word against ``text``).

Distractors: a group's (utterance, conversation or language) pool is its language's names, then the other
languages' names (each part shuffled with ``random.Random(f"{seed}|{kind}|{group}")``), minus every reference
entity of the set and every name sharing a word with the set's reference words outside entities (Le et al.'s
distractors are rare words; "good" or "la coruña" would make ordinary words biased); the first N are taken, so
the list of N = 100 is contained in that of N = 500 and 1000. French has ~530 usable names: at N = 1000 the rest
comes from the other languages' pools (counted in the manifest). Lists are written sorted (the order carries no
hint of which phrases are the references).

Layout of ``out_dir`` (written whole or not at all): ``<kind>_n<N>/utt2biasing`` (``<utt-id> lists/<group>.txt``,
``text/biasing_list.py``'s format), ``<kind>_n<N>/lists/<group>.txt``, ``manifest.json``.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from espnet2_ext.common import DataError, PathLike, atomic_dir
from espnet2_ext.task_spec import NE_CLOSE, NE_OPEN
from espnet2_ext.text.normalize import normalize_words
from espnet2_ext.text.strip_tasks import entities

KINDS = ("utt", "conv", "lang")
DEFAULT_DISTRACTORS = (0, 100, 500, 1000)
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class EvalUtt:
    """What list generation needs of one utterance: its language, conversation and reference entities."""

    utt_id: str
    lang: str
    conversation: str
    entities: Tuple[str, ...]
    annotated: bool  # its reference carries entity spans (utt2tasks has ner, or spans from the corpus plan)
    other_words: Tuple[str, ...] = ()  # reference words outside its entities (what U-WER is counted on)


# ---- reading the data dir ------------------------------------------------------------------------------
def _language(u, where: str) -> str:
    if u.lang:
        return u.lang
    first = u.text.split()[:1]
    if first and first[0].startswith("[") and first[0] not in (NE_OPEN, NE_CLOSE):
        return first[0][1:-1].lower()
    raise DataError(
        f"{where}: utterance {u.utt_id} has no language (no utt2lang line, no language token first "
        f"in text); add utt2lang"
    )


_READ_ID = re.compile(r"^(?P<lang>[a-z]+)-[a-z]\d+-(?P<split>.+)-r(?P<index>\d{4})$")


def planned_entities(utt_ids: Sequence[str], texts: Mapping[str, str], seed: int) -> Dict[str, Tuple[str, ...]]:
    """Entities of mini_tokenverse read utterances (``<lang>-r01-<split>-r0003``) from the corpus plan of ``seed``;
    a ``DataError`` when an id is not a read utterance or the plan's words differ from ``texts`` (another seed)."""
    from espnet2_ext.corpora.mini_tokenverse.mini_tokenverse_plan import plan_split

    wanted: Dict[Tuple[str, str], int] = {}
    for utt in utt_ids:
        m = _READ_ID.match(utt)
        if not m:
            raise DataError(
                f"utterance {utt}: not a mini_tokenverse read utterance id (<lang>-r01-<split>-r0003); "
                f"drop --corpus_seed or annotate its entities with [NE] ... [/NE] in text"
            )
        key = (m["lang"], m["split"])
        wanted[key] = max(wanted.get(key, 0), int(m["index"]) + 1)
    plans = {p.utt_id: p for (lang, split), n in sorted(wanted.items()) for p in plan_split(lang, split, 0, n, seed)}
    out: Dict[str, Tuple[str, ...]] = {}
    for utt in utt_ids:
        p = plans.get(utt)
        tokens = [w for t in p.turns for w in t.tokens] if p else []
        spoken = [w for w in tokens if w not in (NE_OPEN, NE_CLOSE)]
        if p is None or spoken != [w for w in texts[utt].split() if not w.startswith("[")]:
            raise DataError(
                f"utterance {utt}: its text is not what the mini_tokenverse plan of seed {seed} says; "
                f"give the --corpus_seed the corpus was made with"
            )
        out[utt] = tuple(normalize_words(e) for e in entities(tokens))
    return out


def read_eval_utts(data_dir: PathLike, corpus_seed: Optional[int] = None) -> List[EvalUtt]:
    """The data dir's utterances (``read_data_dir``: files checked for consistency) as ``EvalUtt``s."""
    from espnet2_ext.data.kaldi_dir import read_data_dir

    utts = read_data_dir(data_dir)
    where = str(Path(data_dir))
    unannotated = [u.utt_id for u in utts if "ner" not in u.tasks]
    planned = (
        planned_entities(unannotated, {u.utt_id: u.text for u in utts}, corpus_seed)
        if corpus_seed is not None and unannotated
        else {}
    )
    out = []
    for u in utts:
        conv = u.recording_id or (u.origin[0] if u.origin else u.utt_id)
        if u.utt_id in planned:
            ents, annotated = planned[u.utt_id], True
        else:
            ents = tuple(normalize_words(e) for e in entities(u.text.split()))
            annotated = "ner" in u.tasks
        ents = tuple(e for e in ents if e)
        words = Counter(w for w in u.text.split() if not w.startswith("["))
        other = words - Counter(w for e in ents for w in e.split())
        out.append(EvalUtt(u.utt_id, _language(u, where), conv, ents, annotated, tuple(sorted(other))))
    return out


# ---- drawing -------------------------------------------------------------------------------------------
def distractor_order(
    lang: str, pools: Mapping[str, Sequence[str]], exclude: set, seed: int, kind: str, group: str
) -> List[str]:
    """The group's distractors in draw order: its language's names, then the other languages' (each part shuffled
    by the group's own RNG), each name once and none of ``exclude``."""
    rng = random.Random(f"{seed}|{kind}|{group}")  # str seeds hash with sha512: stable across runs and platforms
    out: List[str] = []
    seen = set(exclude)
    for part in [lang] + sorted(k for k in pools if k != lang):
        names = sorted(set(pools[part]) - seen)
        rng.shuffle(names)
        out += names
        seen.update(names)
    return out


def language_pools(langs: Sequence[str]) -> Dict[str, Tuple[str, ...]]:
    """Every open name (all entity types) per language, for the languages ``name_pools`` has."""
    from espnet2_ext.corpora.mini_tokenverse.name_pools import name_pools, supported_languages

    missing = sorted(set(langs) - set(supported_languages()))
    if missing:
        raise DataError(
            f"no distractor names for language '{missing[0]}'; name_pools has {', '.join(supported_languages())}"
        )
    return {
        lang: tuple(sorted({n for names in name_pools(lang).values() for n in names})) for lang in supported_languages()
    }


def groups_of(utts: Sequence[EvalUtt], kind: str) -> Dict[str, Tuple[str, List[EvalUtt]]]:
    """group id -> (language, its utterances) for a list kind; a conversation in two languages is a DataError."""
    out: Dict[str, Tuple[str, List[EvalUtt]]] = {}
    for u in utts:
        gid = {"utt": u.utt_id, "conv": u.conversation, "lang": u.lang}[kind]
        lang, members = out.setdefault(gid, (u.lang, []))
        if lang != u.lang:
            raise DataError(
                f"conversation {gid} has utterances in {lang} and {u.lang} ({u.utt_id}); a list per "
                f"conversation needs one language per recording"
            )
        members.append(u)
    return out


def group_lists(
    utts: Sequence[EvalUtt], kind: str, distractors: Sequence[int], seed: int, pools: Mapping[str, Sequence[str]]
) -> Tuple[Dict[int, Dict[str, List[str]]], Dict[str, int]]:
    """({N: {group: sorted phrases}}, counts) for one kind; counts: groups, reference phrases, borrowed names."""
    exclude = {e for u in utts for e in u.entities}
    out: Dict[int, Dict[str, List[str]]] = {n: {} for n in distractors}
    counts: Counter = Counter()
    for gid, (lang, members) in groups_of(utts, kind).items():
        refs = sorted({e for u in members for e in u.entities})
        order = distractor_order(lang, pools, exclude, seed, kind, gid)
        own = len(set(pools[lang]) - exclude)
        counts["groups"] += 1
        counts["reference_phrases"] += len(refs)
        for n in distractors:
            if n > len(order):
                raise DataError(
                    f"{n} distractors asked for, but the name pools hold {len(order)} usable names; "
                    f"ask for at most {len(order)}"
                )
            out[n][gid] = sorted(refs + order[:n])
            counts[f"borrowed_n{n}"] += max(0, n - own)
    return out, dict(counts)


# ---- writing -------------------------------------------------------------------------------------------
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _file_name(gid: str) -> str:
    return _SAFE.sub("_", gid) + ".txt"


def write_kind(
    out: Path, kind: str, n: int, lists: Mapping[str, List[str]], utts: Sequence[EvalUtt], seed: int
) -> None:
    """``out/<kind>_n<N>/{utt2biasing, lists/*.txt}``."""
    d = out / f"{kind}_n{n}"
    (d / "lists").mkdir(parents=True)
    names: Dict[str, str] = {}
    for gid, phrases in lists.items():
        name = _file_name(gid)
        if name in names.values():
            raise DataError(
                f"groups '{gid}' and '{[g for g, v in names.items() if v == name][0]}' map to one file name; rename one"
            )
        names[gid] = name
        head = f"# {kind} list of {gid}: its reference entities + {n} distractors (seed {seed}), sorted\n"
        (d / "lists" / name).write_text(head + "".join(p + "\n" for p in phrases), encoding="utf-8")
    gid_of = {"utt": lambda u: u.utt_id, "conv": lambda u: u.conversation, "lang": lambda u: u.lang}[kind]
    lines = [f"{u.utt_id} lists/{names[gid_of(u)]}\n" for u in sorted(utts, key=lambda u: u.utt_id)]
    (d / "utt2biasing").write_text("".join(lines), encoding="utf-8")


def make_lists(
    data_dir: PathLike,
    out_dir: PathLike,
    seed: int = 0,
    distractors: Sequence[int] = DEFAULT_DISTRACTORS,
    kinds: Sequence[str] = KINDS,
    corpus_seed: Optional[int] = None,
) -> Dict[str, object]:
    """Write every (kind, N) list set of ``data_dir`` into ``out_dir`` (whole or not at all); returns the manifest."""
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise DataError(f"list kind '{bad[0] if bad else ''}' unknown; choose from {', '.join(KINDS)}")
    if not distractors or any(n < 0 for n in distractors):
        raise DataError(f"distractor counts {list(distractors)}: give numbers >= 0, e.g. 0,100,500,1000")
    utts = read_eval_utts(data_dir, corpus_seed)
    # A distractor sharing a word with the set's ordinary words ("good", "la coruña") would turn those into biased
    # words at some N only: left out, so every N biases the same reference words and U-WER counts the same ones.
    common = {w for u in utts for w in u.other_words}
    all_names = language_pools(sorted({u.lang for u in utts}))
    pools = {lang: tuple(n for n in names if not common.intersection(n.split())) for lang, names in all_names.items()}
    n_conv = len({u.conversation for u in utts})
    manifest: Dict[str, object] = {
        "data_dir": str(data_dir),
        "seed": seed,
        "corpus_seed": corpus_seed,
        "distractors": list(distractors),
        "n_utts": len(utts),
        "n_conversations": n_conv,
        "n_reference_entities": sum(len(u.entities) for u in utts),
        "utts_without_entity_annotation": sum(not u.annotated for u in utts),
        "pool_sizes": {lang: len(names) for lang, names in pools.items()},
        "pool_names_dropped_as_common_words": {lang: len(all_names[lang]) - len(pools[lang]) for lang in pools},
        "kinds": {},
    }
    with atomic_dir(out_dir) as tmp:
        for kind in kinds:
            if kind == "conv" and n_conv == len(utts):
                manifest["kinds"][kind] = {
                    "skipped": "every utterance is its own conversation: the conv lists would be the utt lists"
                }
                continue
            lists, counts = group_lists(utts, kind, distractors, seed, pools)
            for n in distractors:
                write_kind(tmp, kind, n, lists[n], utts, seed)
            manifest["kinds"][kind] = counts
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest
