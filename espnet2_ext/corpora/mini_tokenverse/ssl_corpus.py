"""``ssl_corpus``: the pretraining corpus of the XLSR stand-in, disjoint from ``mini_tokenverse``.

XLS-R is pretrained on many hours of speech in many languages and voices, none of it from the downstream
corpus. This is the same idea at the mini recipe's scale: generic read speech in en/de/es/fr synthesised with
espeak-ng, from word sequences drawn from each language's frequency list (the ``wordfreq`` package), spoken by
voices that ``mini_tokenverse`` never uses.

Disjointness from ``mini_tokenverse`` (checked by :func:`check_disjoint`, tested):

* voices: espeak-ng *variants* outside ``mini_tokenverse_words.VARIANTS`` (so no mini speaker, seen or held
  out, of any seed, is a pretraining speaker);
* entities: no word of any mini entity name (any language) occurs in the pretraining text;
* templates: no sentence contains a run of three or more consecutive fixed words of any mini template.

Common words (``the``, ``you``, ``morgen``) do occur, as they do in any real pretraining corpus.
Everything is a function of the seed; synthesis reuses ``mini_tokenverse``'s renderer (resumable, atomic).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse as M
from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse_plan as P
from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse_words as W

LANGUAGES: Tuple[str, ...] = W.LANGUAGES
# espeak-ng 1.51 variants that sound like a person (robot, whisper and croak voices left out) and that the mini
# corpus never uses (its VARIANTS are m1-m7, f1-f5).
VARIANTS: Tuple[str, ...] = (
    "adam",
    "Alex",
    "Alicia",
    "Andrea",
    "Andy",
    "Annie",
    "antonio",
    "aunty",
    "belinda",
    "benjamin",
    "boris",
    "caleb",
    "david",
    "Denis",
    "Diogo",
    "ed",
    "edward",
    "edward2",
    "Gene",
    "Gene2",
    "gustave",
    "Henrique",
    "Hugo",
    "iven",
    "iven2",
    "iven3",
    "iven4",
    "Jacky",
    "john",
    "kaukovalta",
    "Lee",
    "linda",
    "marcelo",
    "Marco",
    "Mario",
    "max",
    "Michael",
    "michel",
    "miguel",
    "Mike",
    "Mr",
    "Nguyen",
    "pablo",
    "paul",
    "pedro",
    "quincy",
    "rob",
    "robert",
    "steph",
    "steph2",
    "steph3",
    "Storm",
    "zac",
    "anika",
    "AnxiousAndy",
    "grandpa",
    "grandma",
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
    "klatt5",
    "klatt6",
    "m8",
    "norbert",
    "sandro",
    "shelby",
    "travis",
    "victor",
)
N_WORDS = 4000  # size of each language's word list (most frequent first)
SENT_WORDS = (4, 11)  # words per sentence, inclusive
SECONDS_PER_UTT = 3.2  # measured average with these settings, used only to plan the count
DEV_UTTS_PER_LANG = 40
_WORD_RE = re.compile(r"^[^\W\d_]+$")  # letters only (accents included): no digits, apostrophes, hyphens


def mini_entity_words() -> Set[str]:
    return {w for lang in W.ENTITIES.values() for names in lang.values() for n in names for w in n.split()}


def template_runs(min_len: int = 3) -> Set[Tuple[str, ...]]:
    """Every run of ``min_len`` consecutive fixed (non-slot) words of every mini template, any language."""
    runs: Set[Tuple[str, ...]] = set()
    for templates in W.TEMPLATES.values():
        for t in templates:
            fixed: List[str] = []
            for tok in t.split() + ["{END}"]:
                if tok.startswith("{"):
                    runs.update(tuple(fixed[i : i + min_len]) for i in range(len(fixed) - min_len + 1))
                    fixed = []
                else:
                    fixed.append(tok)
    return runs


def word_list(lang: str, n: int = N_WORDS) -> Tuple[List[str], List[float]]:
    """The ``n`` most frequent letter-only words of ``lang`` (wordfreq) without mini entity words, with weights."""
    try:
        import wordfreq
    except ImportError as e:  # pragma: no cover - install.sh installs it
        raise RuntimeError("the 'wordfreq' package is missing: run 'bash tools/install.sh'") from e
    banned = mini_entity_words()
    words = [
        w
        for w in wordfreq.top_n_list(lang, 3 * n)
        if _WORD_RE.match(w) and w not in banned and (len(w) > 1 or w in ("a", "y", "o", "e", "à"))
    ][:n]
    # sqrt of the frequency: still Zipf-shaped, but rare words are heard often enough to matter
    weights = [math.sqrt(wordfreq.word_frequency(w, lang)) for w in words]
    return words, weights


def _contains_run(words: Sequence[str], runs: Set[Tuple[str, ...]], k: int = 3) -> bool:
    return any(tuple(words[i : i + k]) in runs for i in range(len(words) - k + 1))


def make_speakers(lang: str, n: int, seed: int) -> List[P.Voice]:
    rng = P._rng(seed, "ssl", lang, "speakers")
    combos = [(b, v) for b in W.BASE_VOICES[lang] for v in VARIANTS]
    rng.shuffle(combos)
    return [
        P.Voice(f"ssl{lang}{i:03d}", f"{b}+{v}", rng.randint(140, 200), rng.randint(20, 80))
        for i, (b, v) in enumerate((combos * (n // len(combos) + 1))[:n])
    ]


def _plan_split(
    lang: str,
    split: str,
    count: int,
    seed: int,
    pool: Sequence[P.Voice],
    words: Sequence[str],
    weights: Sequence[float],
    runs: Set[Tuple[str, ...]],
) -> List[P.PlannedUtt]:
    """The first ``count`` utterances of (lang, split): one rng stream per (seed, lang, split), so a larger
    ``count`` extends the list and never changes its head (the ASR+LID subset relies on it)."""
    rng = P._rng(seed, "ssl", lang, split)
    out = []
    for i in range(count):
        while True:
            sent = rng.choices(words, weights, k=rng.randint(*SENT_WORDS))
            if not _contains_run(sent, runs):
                break
        v = rng.choice(pool)
        utt_id = f"{v.speaker_id}-{split}-{i:05d}"
        out.append(
            P.PlannedUtt(utt_id, lang, split, "read", (P.Turn(v, tuple(sent), 0.0),), P._noise_seed(seed, utt_id))
        )
    return out


def _pools(lang: str, seed: int, speakers_per_lang: int) -> Dict[str, List[P.Voice]]:
    speakers = make_speakers(lang, speakers_per_lang + 4, seed)
    return {"train": speakers[:speakers_per_lang], "dev": speakers[speakers_per_lang:]}


def plan(
    hours: float = 4.0,
    seed: int = 0,
    languages: Sequence[str] = LANGUAGES,
    speakers_per_lang: int = 48,
    n_words: int = N_WORDS,
) -> Dict[str, List[P.PlannedUtt]]:
    """Planned utterances: ``train`` (``hours`` in total) and ``dev`` (held-out speakers), drawn from each
    language's ``n_words`` most frequent words."""
    if hours <= 0:
        raise ValueError(f"hours must be positive, got {hours}")
    if n_words < 100:
        raise ValueError(f"n_words must be at least 100 (a word list to draw sentences from), got {n_words}")
    runs = template_runs()
    n_train = max(1, int(round(hours * 3600 / SECONDS_PER_UTT / len(languages))))
    out: Dict[str, List[P.PlannedUtt]] = {"train": [], "dev": []}
    for lang in languages:
        words, weights = word_list(lang, n_words)
        pools = _pools(lang, seed, speakers_per_lang)
        for split, count in (("train", n_train), ("dev", min(DEV_UTTS_PER_LANG, n_train))):
            out[split] += _plan_split(lang, split, count, seed, pools[split], words, weights, runs)
    return out


def plan_asr_lid(
    utts_per_lang: int,
    seed: int = 0,
    charset: Optional[Set[str]] = None,
    languages: Sequence[str] = LANGUAGES,
    speakers_per_lang: int = 48,
) -> List[P.PlannedUtt]:
    """The first ``utts_per_lang`` train utterances per language whose letters are all in ``charset`` (None: all):
    the same utterances, voices and wavs as the pretraining corpus of that seed (its head, in plan order), for
    fine-tuning as ASR+LID-only read speech with many more distinct words than the mini corpus has. ``charset``
    is the tokenizer's alphabet: a sentence with another letter would be trained towards ``<unk>``."""
    if utts_per_lang <= 0:
        raise ValueError(f"utts_per_lang must be positive, got {utts_per_lang}")
    runs, out = template_runs(), []
    for lang in languages:
        words, weights = word_list(lang)
        pool = _pools(lang, seed, speakers_per_lang)["train"]
        kept: List[P.PlannedUtt] = []
        count = utts_per_lang
        while len(kept) < utts_per_lang:
            count *= 2  # planning is cheap (no audio); the head of a longer plan is the shorter plan
            if count > 64 * utts_per_lang + 1000:
                raise ValueError(
                    f"ssl_corpus: fewer than {utts_per_lang} {lang} sentences use only the letters "
                    f"{''.join(sorted(charset or ()))}: give a larger charset or fewer utterances"
                )
            planned = _plan_split(lang, "train", count, seed, pool, words, weights, runs)
            kept = [p for p in planned if charset is None or set("".join(p.turns[0].tokens)) <= charset]
        out += kept[:utts_per_lang]
    return out


def check_disjoint(plans: Dict[str, List[P.PlannedUtt]]) -> None:
    """Raise ValueError if any planned utterance breaks the disjointness rules of the module docstring."""
    banned, runs, mini_variants = mini_entity_words(), template_runs(), set(W.VARIANTS)
    for utts in plans.values():
        for p in utts:
            words = [w for t in p.turns for w in t.tokens]
            variant = p.turns[0].voice.espeak.split("+", 1)[1]
            if variant in mini_variants:
                raise ValueError(f"{p.utt_id}: voice variant '{variant}' is a mini_tokenverse voice")
            if banned.intersection(words):
                raise ValueError(f"{p.utt_id}: mini entity word(s) {sorted(banned.intersection(words))}")
            if _contains_run(words, runs):
                raise ValueError(f"{p.utt_id}: contains a mini_tokenverse template phrase")


def corpus_name(hours: float, seed: int, n_words: int = N_WORDS) -> str:
    """``h<hours>-seed<seed>[-w<n_words>]``: names the wav folder, so corpora of other word lists never share wavs
    (utterance ids repeat across word lists, and synthesis reuses a wav that exists)."""
    return f"h{hours:g}-seed{seed}" + (f"-w{n_words}" if n_words != N_WORDS else "")


def prepare_ssl_corpus(
    out_dir,
    hours: float = 4.0,
    seed: int = 0,
    nj: int = 2,
    wav_dir=None,
    log: Callable[[str], None] = print,
    n_words: int = N_WORDS,
) -> Dict[str, list]:
    """Synthesise the corpus into Kaldi dirs ``out_dir/{train,dev}`` (text = plain words, no tags) and
    ``out_dir/corpus_stats.md``. Wavs under ``wav_dir/<corpus_name>`` (resumable)."""
    from espnet2_ext.common import atomic_write_text
    from espnet2_ext.data.kaldi_dir import Utterance, write_data_dir

    out_dir = Path(out_dir)
    wav_dir = Path(wav_dir) if wav_dir else Path(os.path.normpath(out_dir / ".." / "downloads" / "ssl_wav"))
    wav_dir = wav_dir / corpus_name(hours, seed, n_words)
    plans = plan(hours, seed, n_words=n_words)
    check_disjoint(plans)
    durations = M.render_all([p for ps in plans.values() for p in ps], wav_dir, nj, log)
    dirs = {}
    for split, utts in plans.items():
        dirs[split] = [
            Utterance(
                p.utt_id,
                p.speaker,
                " ".join(p.turns[0].tokens),
                p.lang,
                ("asr", "lid"),
                str(wav_dir / f"{p.utt_id}.wav"),
                duration=round(durations[p.utt_id], 3),
            )
            for p in utts
        ]
        write_data_dir(dirs[split], out_dir / split)
    lines = [
        "# ssl_corpus statistics (pretraining corpus of the XLSR stand-in)",
        "",
        f"seed {seed}; espeak-ng variants: {len(VARIANTS)} (none used by mini_tokenverse); "
        f"words: the {n_words} most frequent letter-only words per language (wordfreq "
        f"{_wordfreq_version()}), mini entity words removed",
        "",
        "| split | language | #utts | #speakers | hours | distinct words |",
        "|---|---|---|---|---|---|",
    ]
    for split, utts in plans.items():
        for lang in LANGUAGES:
            part = [p for p in utts if p.lang == lang]
            if part:
                hrs = sum(durations[p.utt_id] for p in part) / 3600
                lines.append(
                    f"| {split} | {lang} | {len(part)} | {len({p.speaker for p in part})} | {hrs:.2f} | "
                    f"{len({w for p in part for w in p.turns[0].tokens})} |"
                )
    total = sum(durations[p.utt_id] for p in plans["train"]) / 3600
    lines += ["", f"train total: {len(plans['train'])} utterances, {total:.2f} h", ""]
    atomic_write_text(out_dir / "corpus_stats.md", "\n".join(lines))
    log(f"ssl_corpus: wrote {out_dir / 'train'}, {out_dir / 'dev'} ({total:.2f} h of training speech)")
    return dirs


def letters_of_text(path) -> Set[str]:
    """The letters of a Kaldi ``text`` file's words, task tokens (``[NE]``, ``[EN]``) left out: the alphabet a
    sentencepiece model trained on it with character_coverage 1.0 has."""
    from espnet2_ext.data.kaldi_dir import read_table
    from espnet2_ext.task_spec import TaskSpec

    is_tag = TaskSpec.default().looks_like_tag
    return {c for words in read_table(path).values.values() for w in words.split() if not is_tag(w) for c in w}


def prepare_asr_lid(
    out_dir,
    utts_per_lang: int,
    seed: int = 0,
    charset: Optional[Set[str]] = None,
    nj: int = 2,
    wav_dir=None,
    log: Callable[[str], None] = print,
) -> List:
    """Synthesise :func:`plan_asr_lid` into one Kaldi dir ``out_dir`` labelled for ASR + LID only (text
    ``[EN] words ...``, utt2tasks ``asr lid``): partially labelled read speech for fine-tuning, the role
    CommonVoice plays in the paper. Wavs under ``wav_dir/asr_lid-seed<seed>`` (resumable, shared by any size)."""
    from espnet2_ext.data.kaldi_dir import Utterance, write_data_dir
    from espnet2_ext.task_spec import language_token

    out_dir = Path(out_dir)
    wav_dir = Path(wav_dir) if wav_dir else Path(os.path.normpath(out_dir / ".." / ".." / "downloads" / "ssl_wav"))
    wav_dir = wav_dir / f"asr_lid-seed{seed}"
    plans = plan_asr_lid(utts_per_lang, seed, charset)
    check_disjoint({"train": plans})
    durations = M.render_all(plans, wav_dir, nj, log)
    utts = [
        Utterance(
            p.utt_id,
            p.speaker,
            " ".join((language_token(p.lang),) + p.turns[0].tokens),
            p.lang,
            ("asr", "lid"),
            str(wav_dir / f"{p.utt_id}.wav"),
            duration=round(durations[p.utt_id], 3),
        )
        for p in plans
    ]
    write_data_dir(utts, out_dir)
    hours = sum(u.duration for u in utts) / 3600
    words = {w for p in plans for w in p.turns[0].tokens}
    log(f"ssl_corpus: wrote {out_dir} ({len(utts)} ASR+LID utterances, {hours:.2f} h, {len(words)} distinct words)")
    return utts


def _wordfreq_version() -> str:
    try:
        from importlib.metadata import version

        return version("wordfreq")
    except Exception:  # pragma: no cover
        return "?"
