"""``mini_tokenverse`` planning: what the corpus says and who says it, as pure functions of the seed.

Voices (espeak-ng voice, speed, pitch) and their disjoint train / unseen pools, entity names with a held-out share,
template sentences filled per turn, and the utterances of every split (``plan_corpus``) and of the extension data
(``plan_extension``) as ``PlannedUtt``: turns, pauses, the reference text and the task annotation. Nothing here runs
espeak-ng or touches the disk; ``mini_tokenverse`` renders the plans to audio and writes the data dirs.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse_words as W
from espnet2_ext.task_spec import NE_CLOSE, NE_OPEN, language_token

CONV_TASKS = ("asr", "scd", "endp", "ner", "lid")
READ_TASKS = ("asr", "lid")
QST_TASKS = ("asr", "qst")  # extension task: questions
QUESTION = "[Q]"
EXTENSIONS = ("qst", "it")  # prepare_extension: a new task, a new language
SIZES: Dict[str, Dict[str, int]] = {  # per language
    "debug": dict(train_conv=3, train_read=2, dev_conv=3, test_conv=3, test_read=2),
    "small": dict(train_conv=35, train_read=20, dev_conv=4, test_conv=8, test_read=4),
    "default": dict(train_conv=70, train_read=40, dev_conv=8, test_conv=15, test_read=8),
}
HELD_OUT_ENTITY_SHARE = 0.4  # of each entity list, never used in train
P_UNSEEN_ENTITY = 0.5  # dev/test: chance an entity slot takes a held-out name
P_UNSEEN_VOICE = 0.5  # test: chance a conversation includes a voice not heard in train
P_SAME_SPEAKER = 0.2  # a turn continued by the same speaker after a pause: [ENDP] without [SCD]
N_CONV_VOICES, N_UNSEEN_CONV_VOICES, N_READ_VOICES, N_UNSEEN_READ_VOICES = 6, 2, 3, 1
LEAD_S, TAIL_S, NOISE_STD = 0.15, 0.25, 4.0  # noise floor in 16-bit LSBs: no exact digital silence


@dataclass(frozen=True)
class Voice:
    speaker_id: str
    espeak: str  # e.g. "en-gb+f2"
    speed: int  # words per minute
    pitch: int  # 0-99

    def args(self) -> List[str]:
        return ["-v", self.espeak, "-s", str(self.speed), "-p", str(self.pitch)]


@dataclass(frozen=True)
class Turn:
    voice: Voice
    tokens: Tuple[str, ...]  # words, with [NE] ... [/NE] around entities
    pause_after: float
    question: bool = False  # its template is a question (W.QUESTIONS): [Q] of the extension task qst

    @property
    def spoken(self) -> str:
        return " ".join(w for w in self.tokens if w not in (NE_OPEN, NE_CLOSE))


@dataclass(frozen=True)
class PlannedUtt:
    utt_id: str
    lang: str
    split: str  # train | dev | test | test_partial (extension data: qst_train, ...)
    subset: str  # conv | read | qst (conversations annotated asr + qst only)
    turns: Tuple[Turn, ...]
    noise_seed: int

    @property
    def speaker(self) -> str:
        return self.turns[0].voice.speaker_id

    @property
    def tasks(self) -> Tuple[str, ...]:
        return CONV_TASKS if self.subset == "conv" else QST_TASKS if self.subset == "qst" else READ_TASKS

    def reference(self) -> str:
        if self.subset == "qst":  # words + [Q] at the end of each question turn, nothing else annotated
            return " ".join(w for t in self.turns for w in [*t.spoken.split(), *([QUESTION] if t.question else [])])
        out = [language_token(self.lang)]
        for i, turn in enumerate(self.turns):
            if self.subset == "read":
                out.extend(w for w in turn.tokens if w not in (NE_OPEN, NE_CLOSE))
                continue
            if i and turn.voice != self.turns[i - 1].voice:
                out.append("[SCD]")
            out.extend(turn.tokens)
            out.append("[ENDP]")
        return " ".join(out)

    def entities(self) -> List[str]:
        from espnet2_ext.text.strip_tasks import entities

        return entities([w for t in self.turns for w in t.tokens]) if self.subset == "conv" else []

    def recipe(self) -> dict:
        return {
            "turns": [{"args": t.voice.args(), "text": t.spoken, "pause": t.pause_after} for t in self.turns],
            "noise_seed": self.noise_seed,
            "lead": LEAD_S,
            "tail": TAIL_S,
            "noise": NOISE_STD,
        }


# ------------------------------------------------------------------------------------------------ planning
def _rng(seed: int, *parts: str) -> random.Random:
    return random.Random("-".join([str(seed), *parts]))  # str seeds hash with sha512: stable across runs


def make_voices(lang: str, seed: int) -> Dict[str, List[Voice]]:
    """Disjoint voice pools: conversation voices (train), extra test-only conversation voices, read voices."""
    rng = _rng(seed, lang, "voices")
    combos = [(b, v) for b in W.BASE_VOICES[lang] for v in W.VARIANTS]
    n = N_CONV_VOICES + N_UNSEEN_CONV_VOICES + N_READ_VOICES + N_UNSEEN_READ_VOICES
    chosen = rng.sample(combos, n)
    voices = []
    for i, (base, var) in enumerate(chosen):
        kind = "c" if i < N_CONV_VOICES + N_UNSEEN_CONV_VOICES else "r"
        num = i + 1 if kind == "c" else i + 1 - N_CONV_VOICES - N_UNSEEN_CONV_VOICES
        voices.append(Voice(f"{lang}-{kind}{num:02d}", f"{base}+{var}", rng.randint(160, 190), rng.randint(30, 70)))
    a, b = N_CONV_VOICES, N_CONV_VOICES + N_UNSEEN_CONV_VOICES
    return {
        "conv": voices[:a],
        "conv_unseen": voices[a:b],
        "read": voices[b : b + N_READ_VOICES],
        "read_unseen": voices[b + N_READ_VOICES :],
    }


def split_entities(lang: str, seed: int) -> Tuple[Dict[str, List[str]], Dict[str, List[str]]]:
    """(names usable in train, names held out of train) per entity type."""
    rng = _rng(seed, lang, "entities")
    seen, unseen = {}, {}
    for typ in W.ENTITY_TYPES:
        names = list(W.ENTITIES[lang][typ])
        rng.shuffle(names)
        k = max(1, round(len(names) * HELD_OUT_ENTITY_SHARE))
        unseen[typ], seen[typ] = sorted(names[:k]), sorted(names[k:])
    return seen, unseen


def fill_template(template: str, lang: str, rng: random.Random, pick_entity: Callable[[str], str]) -> List[str]:
    out: List[str] = []
    for tok in template.split():
        if tok.startswith("{"):
            slot = tok[1:-1]
            if slot in W.ENTITY_TYPES:
                out += [NE_OPEN, *pick_entity(slot).split(), NE_CLOSE]
            else:
                out += rng.choice(W.SLOTS[lang][slot]).split()
        else:
            out.append(tok)
    return out


def _noise_seed(seed: int, utt_id: str) -> int:
    return int(hashlib.sha1(f"{seed}:{utt_id}".encode()).hexdigest()[:8], 16)


def read_names_percent(read_names: float) -> int:
    """The ``read_names`` share in whole percent, which names its utt ids and data dir (so two shares never share
    a wav); anything else is refused."""
    if not 0.0 < read_names <= 1.0 or abs(100 * read_names - round(100 * read_names)) > 1e-9:
        raise ValueError(f"read_names is a share of entity slots in (0, 1] in steps of 0.01, got {read_names}")
    return round(100 * read_names)


def plan_split(
    lang: str, split: str, n_conv: int, n_read: int, seed: int, kind: str = "", read_names: float = 0.0
) -> List[PlannedUtt]:
    """``kind`` "qst": conversations annotated asr + qst only, from their own RNG stream (split ``qst_<split>``).

    ``read_names`` P: each entity slot of a read utterance takes, with probability P, a name from the open pools of
    ``name_pools`` instead (own RNG stream, drawn after the usual pick, so templates, voices and every other draw
    stay those of P = 0; the read utt ids carry ``n<100 P>`` so their wavs never replace the P = 0 ones)."""
    voices = make_voices(lang, seed)
    seen, unseen = split_entities(lang, seed)
    p_unseen = 0.0 if split == "train" else P_UNSEEN_ENTITY

    rng = _rng(seed, lang, f"{kind}-{split}" if kind else split)
    name = f"{kind}_{split}" if kind else split

    def pick_entity(typ: str) -> str:
        return rng.choice(unseen[typ] if rng.random() < p_unseen else seen[typ])

    plans: List[PlannedUtt] = []
    for i in range(n_conv):
        n_turns = rng.choice((2, 3, 4))
        pool = rng.sample(voices["conv"], min(n_turns, rng.choice((2, 3))))
        if split == "test" and rng.random() < P_UNSEEN_VOICE:
            pool[rng.randrange(len(pool))] = rng.choice(voices["conv_unseen"])
        seq = [pool[0]]
        for _ in range(1, n_turns):
            if rng.random() < P_SAME_SPEAKER:
                seq.append(seq[-1])
            else:
                seq.append(rng.choice([v for v in pool if v != seq[-1]]))
        if len(set(seq)) < 2:  # a conversation has at least one speaker change
            seq[1] = next(v for v in pool if v != seq[0])
        turns = []
        for k, v in enumerate(seq):  # draws in the order of the original one-expression form: same stream
            template = rng.choice(W.TEMPLATES[lang])
            tokens = tuple(fill_template(template, lang, rng, pick_entity))
            turns.append(
                Turn(
                    v,
                    tokens,
                    round(rng.uniform(0.2, 0.5), 2) if k < n_turns - 1 else 0.0,
                    template in W.QUESTIONS.get(lang, ()),
                )
            )
        utt_id = f"{seq[0].speaker_id}-{name}-c{i:04d}"
        plans.append(
            PlannedUtt(utt_id, lang, name, "qst" if kind == "qst" else "conv", tuple(turns), _noise_seed(seed, utt_id))
        )
    read_pool = voices["read"] + (voices["read_unseen"] if split != "train" else [])
    pick_read, read_tag = pick_entity, ""
    if read_names:
        from espnet2_ext.corpora.mini_tokenverse.name_pools import name_pools

        pools, names_rng = name_pools(lang), _rng(seed, lang, split, "read-names")
        read_tag = f"n{read_names_percent(read_names):03d}-"

        def pick_read(typ: str) -> str:
            usual = pick_entity(typ)  # keeps the main stream exactly as without read_names
            return names_rng.choice(pools[typ]) if names_rng.random() < read_names else usual

    for i in range(n_read):
        v = rng.choice(read_pool)
        tokens = tuple(fill_template(rng.choice(W.TEMPLATES[lang]), lang, rng, pick_read))
        utt_id = f"{v.speaker_id}-{name}-{read_tag}r{i:04d}"
        plans.append(PlannedUtt(utt_id, lang, name, "read", (Turn(v, tokens, 0.0),), _noise_seed(seed, utt_id)))
    return plans


def plan_corpus(
    seed: int = 0,
    size: str = "default",
    partial: bool = True,
    languages: Sequence[str] = W.LANGUAGES,
    train_read: Optional[int] = None,
    read_names: float = 0.0,
    dev_read: Optional[int] = None,
) -> Dict[str, List[PlannedUtt]]:
    """Planned utterances per split: train, dev, test (conversations) and test_partial (read).

    ``train_read``: read (asr+lid only) utterances per language in train instead of the size's default. Read
    utterances are drawn after the conversations from the same per-language stream, so a larger value keeps the
    conversations and the first reads and only appends reads. ``read_names``: see ``plan_split`` (train only).
    ``dev_read`` N adds ``dev_partial``: N read utterances per language drawn as ``test_partial`` is (held-out
    names at the same rate, the unseen read voice among the speakers) from a stream of its own, so that the
    read-speech target has a dev set to tune on; every other split is unchanged."""
    if size not in SIZES:
        raise ValueError(f"unknown size '{size}'; choose one of {', '.join(SIZES)}")
    for opt, val in (("train_read", train_read), ("dev_read", dev_read)):
        if val is not None and val < 0:
            raise ValueError(f"{opt} must be >= 0, got {val}")
    s = dict(SIZES[size], **({} if train_read is None else {"train_read": train_read}))
    out: Dict[str, List[PlannedUtt]] = {"train": [], "dev": [], "test": [], "test_partial": []}
    for lang in languages:
        out["train"] += plan_split(
            lang, "train", s["train_conv"], s["train_read"] if partial else 0, seed, read_names=read_names
        )
        out["dev"] += plan_split(lang, "dev", s["dev_conv"], 0, seed)
        out["test"] += plan_split(lang, "test", s["test_conv"], 0, seed)
        if partial:
            out["test_partial"] += plan_split(lang, "test_partial", 0, s["test_read"], seed)
        if dev_read:
            out.setdefault("dev_partial", []).extend(plan_split(lang, "dev_partial", 0, dev_read, seed))
    return {k: v for k, v in out.items() if v}


# ------------------------------------------------------------------------------------------------ extension data
def plan_extension(extension: str, seed: int = 0, size: str = "default") -> Dict[str, List[PlannedUtt]]:
    """Data for extending a trained model (bin/extend_model), from RNG streams of its own (the default corpus is
    unchanged): ``qst`` = conversations of the default languages annotated asr + qst ([Q] after each question
    turn); ``it`` = Italian read speech annotated asr + lid. Splits ``<extension>_{train,dev,test}``."""
    if extension not in EXTENSIONS:
        raise ValueError(f"unknown extension '{extension}'; choose one of {', '.join(EXTENSIONS)}")
    if size not in SIZES:
        raise ValueError(f"unknown size '{size}'; choose one of {', '.join(SIZES)}")
    s = SIZES[size]
    out: Dict[str, List[PlannedUtt]] = {}
    for split, n_conv, n_read in (
        ("train", s["train_conv"], s["train_conv"] + s["train_read"]),
        ("dev", s["dev_conv"], s["dev_conv"]),
        ("test", s["test_conv"], s["test_conv"] + s["test_read"]),
    ):
        if extension == "qst":
            out[f"qst_{split}"] = [p for lang in W.LANGUAGES for p in plan_split(lang, split, n_conv, 0, seed, "qst")]
        else:
            out[f"{extension}_{split}"] = plan_split(extension, split, 0, n_read, seed)
    return out
