"""``mini_tokenverse``: a small synthetic multilingual conversation corpus generated with espeak-ng + sox.

Two subsets, like the paper's mix of fully and partially annotated data:

* conversations (2-4 turns, 1 template sentence per turn, several espeak voices, 0.2-0.5 s pauses), fully
  annotated: ``[EN] hello [NE] maria [/NE] how are you [ENDP] [SCD] i am fine thank you [ENDP]``,
  utt2tasks ``asr scd endp ner lid``;
* read sentences spoken by other voices, annotated for ASR + LID only (``[DE] guten morgen anna``),
  utt2tasks ``asr lid`` (like CommonVoice).

Everything (texts, ids, voices, pauses, audio) is a function of the seed. A share of the entity names and of
the voices is held out of train so test measures generalisation. Audio is 16 kHz mono 16-bit; a wav is only
synthesised again when its recipe (text, voices, pauses, espeak version) or its content changed.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

from espnet2_ext.common import atomic_output, atomic_write_text
from espnet2_ext.data import mini_tokenverse_words as W
from espnet2_ext.task_spec import NE_CLOSE, NE_OPEN, language_token

SAMPLE_RATE = 16000
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
HELD_OUT_ENTITY_SHARE = 0.4   # of each entity list, never used in train
P_UNSEEN_ENTITY = 0.5         # dev/test: chance an entity slot takes a held-out name
P_UNSEEN_VOICE = 0.5          # test: chance a conversation includes a voice not heard in train
P_SAME_SPEAKER = 0.2          # a turn continued by the same speaker after a pause: [ENDP] without [SCD]
N_CONV_VOICES, N_UNSEEN_CONV_VOICES, N_READ_VOICES, N_UNSEEN_READ_VOICES = 6, 2, 3, 1
LEAD_S, TAIL_S, NOISE_STD = 0.15, 0.25, 4.0  # noise floor in 16-bit LSBs: no exact digital silence


@dataclass(frozen=True)
class Voice:
    speaker_id: str
    espeak: str   # e.g. "en-gb+f2"
    speed: int    # words per minute
    pitch: int    # 0-99

    def args(self) -> List[str]:
        return ["-v", self.espeak, "-s", str(self.speed), "-p", str(self.pitch)]


@dataclass(frozen=True)
class Turn:
    voice: Voice
    tokens: Tuple[str, ...]   # words, with [NE] ... [/NE] around entities
    pause_after: float
    question: bool = False    # its template is a question (W.QUESTIONS): [Q] of the extension task qst

    @property
    def spoken(self) -> str:
        return " ".join(w for w in self.tokens if w not in (NE_OPEN, NE_CLOSE))


@dataclass(frozen=True)
class PlannedUtt:
    utt_id: str
    lang: str
    split: str        # train | dev | test | test_partial (extension data: qst_train, ...)
    subset: str       # conv | read | qst (conversations annotated asr + qst only)
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
        return {"turns": [{"args": t.voice.args(), "text": t.spoken, "pause": t.pause_after} for t in self.turns],
                "noise_seed": self.noise_seed, "lead": LEAD_S, "tail": TAIL_S, "noise": NOISE_STD}


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
    return {"conv": voices[:a], "conv_unseen": voices[a:b], "read": voices[b:b + N_READ_VOICES],
            "read_unseen": voices[b + N_READ_VOICES:]}


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


def plan_split(lang: str, split: str, n_conv: int, n_read: int, seed: int, kind: str = "") -> List[PlannedUtt]:
    """``kind`` "qst": conversations annotated asr + qst only, from their own RNG stream (split ``qst_<split>``)."""
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
            turns.append(Turn(v, tokens, round(rng.uniform(0.2, 0.5), 2) if k < n_turns - 1 else 0.0,
                              template in W.QUESTIONS.get(lang, ())))
        utt_id = f"{seq[0].speaker_id}-{name}-c{i:04d}"
        plans.append(PlannedUtt(utt_id, lang, name, "qst" if kind == "qst" else "conv", tuple(turns),
                                _noise_seed(seed, utt_id)))
    read_pool = voices["read"] + (voices["read_unseen"] if split != "train" else [])
    for i in range(n_read):
        v = rng.choice(read_pool)
        tokens = tuple(fill_template(rng.choice(W.TEMPLATES[lang]), lang, rng, pick_entity))
        utt_id = f"{v.speaker_id}-{name}-r{i:04d}"
        plans.append(PlannedUtt(utt_id, lang, name, "read", (Turn(v, tokens, 0.0),), _noise_seed(seed, utt_id)))
    return plans


def plan_corpus(seed: int = 0, size: str = "default", partial: bool = True,
                languages: Sequence[str] = W.LANGUAGES,
                train_read: Optional[int] = None) -> Dict[str, List[PlannedUtt]]:
    """Planned utterances per split: train, dev, test (conversations) and test_partial (read).

    ``train_read``: read (asr+lid only) utterances per language in train instead of the size's default. Read
    utterances are drawn after the conversations from the same per-language stream, so a larger value keeps the
    conversations and the first reads and only appends reads."""
    if size not in SIZES:
        raise ValueError(f"unknown size '{size}'; choose one of {', '.join(SIZES)}")
    if train_read is not None and train_read < 0:
        raise ValueError(f"train_read must be >= 0, got {train_read}")
    s = dict(SIZES[size], **({} if train_read is None else {"train_read": train_read}))
    out: Dict[str, List[PlannedUtt]] = {"train": [], "dev": [], "test": [], "test_partial": []}
    for lang in languages:
        out["train"] += plan_split(lang, "train", s["train_conv"], s["train_read"] if partial else 0, seed)
        out["dev"] += plan_split(lang, "dev", s["dev_conv"], 0, seed)
        out["test"] += plan_split(lang, "test", s["test_conv"], 0, seed)
        if partial:
            out["test_partial"] += plan_split(lang, "test_partial", 0, s["test_read"], seed)
    return {k: v for k, v in out.items() if v}


# ------------------------------------------------------------------------------------------------ synthesis
def check_tools() -> str:
    """espeak-ng version string; a clear error when espeak-ng or sox is missing."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found on PATH; install it (apt-get install espeak-ng sox)")
    return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout.strip()


def _tts(args: List[str], text: str) -> np.ndarray:
    """One sentence as int16 at 16 kHz: espeak-ng (22.05 kHz) resampled by sox without dither (deterministic)."""
    wav = subprocess.run(["espeak-ng", *args, "--stdout", text], capture_output=True, check=True).stdout
    raw = subprocess.run(["sox", "-D", "-t", "wav", "-", "-t", "raw", "-r", str(SAMPLE_RATE), "-e", "signed-integer",
                          "-b", "16", "-c", "1", "-L", "-"], input=wav, capture_output=True, check=True).stdout
    x = np.frombuffer(raw, dtype="<i2")
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > 300)  # trim espeak's own leading/trailing silence
    if loud.size:
        margin = int(0.02 * SAMPLE_RATE)
        x = x[max(0, loud[0] - margin): loud[-1] + margin]
    return x


def synthesize(recipe: dict, out_path: Path, turn_bounds: Optional[list] = None) -> int:
    """Render one utterance to ``out_path`` (written atomically); returns the number of samples. ``turn_bounds``,
    when given, receives each turn's [start, end] in seconds (where its speech starts and ends in the wav)."""
    zeros = lambda s: np.zeros(int(round(s * SAMPLE_RATE)), dtype=np.int16)  # noqa: E731
    pieces = [zeros(recipe["lead"])]
    pos = len(pieces[0])
    for turn in recipe["turns"]:
        speech = _tts(turn["args"], turn["text"])
        if turn_bounds is not None:
            turn_bounds.append([round(pos / SAMPLE_RATE, 3), round((pos + len(speech)) / SAMPLE_RATE, 3)])
        pieces += [speech, zeros(turn["pause"])]
        pos += len(speech) + len(pieces[-1])
    pieces.append(zeros(recipe["tail"]))
    x = np.concatenate(pieces).astype(np.float64)
    x += np.random.default_rng(recipe["noise_seed"]).normal(0.0, recipe["noise"], x.shape)
    x = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    with atomic_output(out_path) as tmp:
        sf.write(str(tmp), x, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return len(x)


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def render_all(plans: Sequence[PlannedUtt], wav_dir: Path, nj: int = 2,
               log: Callable[[str], None] = print, turn_times: Optional[Dict[str, list]] = None) -> Dict[str, float]:
    """Synthesise every planned wav not already present with the same recipe and content; returns
    utt_id -> duration (s). ``wav_dir/manifest.json`` records recipe hash, content hash, length and each turn's
    [start, end] (s), which ``turn_times`` (utt_id -> list) receives when given."""
    version = check_tools()
    wav_dir.mkdir(parents=True, exist_ok=True)
    # A run killed with SIGKILL cannot clean up its temporary wavs (synthesize's finally never runs): drop them.
    for stale in wav_dir.glob(".*.tmp.wav"):
        stale.unlink()
    manifest_path = wav_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    todo, durations = [], {}
    for p in plans:
        rh = hashlib.sha1(json.dumps([version, p.recipe()], sort_keys=True).encode()).hexdigest()
        path = wav_dir / f"{p.utt_id}.wav"
        m = manifest.get(path.name)
        # Manifests written before turn times were recorded lack "turns": such wavs are rendered again.
        if m and m.get("recipe") == rh and "turns" in m and path.is_file() and _sha1(path) == m.get("sha1"):
            durations[p.utt_id] = m["samples"] / SAMPLE_RATE
            if turn_times is not None:
                turn_times[p.utt_id] = m["turns"]
        else:
            todo.append((p, rh, path))
    log(f"mini_tokenverse: {len(plans)} wavs, {len(plans) - len(todo)} up to date, synthesising {len(todo)} "
        f"with {nj} jobs")
    step = max(1, len(todo) // 10)
    with ThreadPoolExecutor(max_workers=max(1, nj)) as pool:  # each job drives espeak-ng/sox subprocesses
        bounds: Dict[str, list] = {p.utt_id: [] for p, _, _ in todo}
        futures = {pool.submit(synthesize, p.recipe(), path, bounds[p.utt_id]): (p, rh, path) for p, rh, path in todo}
        for k, fut in enumerate(as_completed(futures), 1):
            p, rh, path = futures[fut]
            n = fut.result()
            manifest[path.name] = {"recipe": rh, "sha1": _sha1(path), "samples": n, "turns": bounds[p.utt_id]}
            durations[p.utt_id] = n / SAMPLE_RATE
            if turn_times is not None:
                turn_times[p.utt_id] = bounds[p.utt_id]
            if k % step == 0 or k == len(todo):  # checkpoint: an interrupted run resumes from here
                atomic_write_text(manifest_path, json.dumps(manifest, indent=0, sort_keys=True))
                log(f"mini_tokenverse: synthesised {k}/{len(todo)} ({100 * k // len(todo)}%)")
    atomic_write_text(manifest_path, json.dumps(manifest, indent=0, sort_keys=True))
    return durations


# ------------------------------------------------------------------------------------------------ outputs
def _row(name: str, subset: str, plans: Sequence[PlannedUtt], durations: Dict[str, float],
         train_voices: set, train_entities: set) -> str:
    voices = {t.voice.speaker_id for p in plans for t in p.turns}
    refs = [p.reference().split() for p in plans]
    ents = [(p.lang, e) for p in plans for e in p.entities()]
    conv = subset == "conversations"
    unseen_ent = "-"
    if conv and name != "train" and ents:
        unseen_ent = f"{100.0 * sum(e not in train_entities for e in ents) / len(ents):.0f}"
    langs = ", ".join(lang for lang in W.LANGUAGES if any(p.lang == lang for p in plans))
    tasks = " ".join(plans[0].tasks)
    hours = sum(durations[p.utt_id] for p in plans) / 3600
    na = lambda n: str(n) if conv else "n/a"  # noqa: E731  (not annotated in read speech)
    return (f"| {name} | {subset} | {tasks} | {len(plans)} | {len(voices)} ({len(voices - train_voices)}) | "
            f"{hours:.3f} | {na(sum(r.count('[SCD]') for r in refs))} | {na(sum(r.count('[ENDP]') for r in refs))} | "
            f"{na(len(ents))} | {unseen_ent} | {langs} |")


def corpus_stats(splits: Dict[str, List[PlannedUtt]], durations: Dict[str, float], seed: int, size: str) -> str:
    """Markdown table in the spirit of the paper's Table I."""
    train = splits["train"]
    train_voices = {t.voice.speaker_id for p in train for t in p.turns}
    train_entities = {(p.lang, e) for p in train for e in p.entities()}
    lines = [f"# mini_tokenverse corpus statistics (seed {seed}, size {size})", "",
             "| split | subset | tasks | #utts | #speakers (unseen in train) | hours | #SCD | #ENDP | #entities | "
             "% entities unseen in train | languages |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, plans in splits.items():
        for subset, key in (("conversations", "conv"), ("read", "read")):
            part = [p for p in plans if p.subset == key]
            if part:
                lines.append(_row(name, subset, part, durations, train_voices, train_entities))
    total = sum(durations[p.utt_id] for p in train) / 3600
    vocab = {lang: {w for p in train if p.lang == lang for t in p.turns for w in t.spoken.split()}
             for lang in W.LANGUAGES if any(p.lang == lang for p in train)}
    lines += ["", f"train total: {len(train)} utterances, {total:.3f} h; `train_full_only` = the conversations "
              f"of train (fully annotated baseline).", "",
              "Vocabulary (distinct words in train references, tags excluded): "
              + ", ".join(f"{lang} {len(words)}" for lang, words in vocab.items()), ""]
    return "\n".join(lines)


def ref_turns(plan: PlannedUtt, bounds: Sequence[Sequence[float]]) -> tuple:
    """The reference turns of a planned utterance (``utt2turns``) from the synthesised turn bounds."""
    from espnet2_ext.data.ref_turns import RefTurn

    if len(bounds) != len(plan.turns):
        raise RuntimeError(f"{plan.utt_id}: {len(bounds)} turn times for {len(plan.turns)} turns; delete its wav "
                           f"and re-run to synthesise it again")
    return tuple(RefTurn(float(s), float(e), t.voice.speaker_id) for (s, e), t in zip(bounds, plan.turns))


def prepare(out_dir, seed: int = 0, size: str = "default", nj: int = 2, partial: bool = True,
            wav_dir=None, log: Callable[[str], None] = print, train_read: Optional[int] = None) -> Dict[str, list]:
    """Generate the corpus: wavs, Kaldi dirs ``train``, ``train_full_only``, ``dev``, ``test``
    (+ ``test_partial``) under ``out_dir`` and ``out_dir/corpus_stats.md``. Returns dir name -> utterances.

    ``train_read`` N additionally writes ``train_read<N>``: the conversations of train + N read utterances per
    language (a larger ASR+LID-only subset); ``train`` and every other dir stay exactly what they are without it.

    Wavs go to ``<wav_dir>/<size>-seed<seed>/`` (default ``wav_dir``: ``<out_dir>/../downloads/mini_tokenverse/
    wav``) so corpora of other sizes/seeds never overwrite each other's audio. Paths in wav.scp are written as
    given: relative to the current directory when ``wav_dir`` is relative, as Kaldi recipes expect.
    """
    from espnet2_ext.data.kaldi_dir import Utterance, write_data_dir

    out_dir = Path(out_dir)
    wav_dir = Path(wav_dir) if wav_dir else Path(os.path.normpath(out_dir / ".." / "downloads" / "mini_tokenverse"
                                                                 / "wav"))
    wav_dir = wav_dir / f"{size}-seed{seed}"
    splits = plan_corpus(seed, size, partial)
    if train_read is not None and not partial:
        raise ValueError("train_read sets the size of the read-speech subset: it cannot go with partial=False "
                         "(--no_partial)")
    if train_read is not None:  # same utt ids as in train are the same plans (same stream): synthesised once
        splits[f"train_read{train_read}"] = plan_corpus(seed, size, partial, train_read=train_read)["train"]
    unique = {p.utt_id: p for ps in splits.values() for p in ps}
    times: Dict[str, list] = {}
    durations = render_all(list(unique.values()), wav_dir, nj, log, turn_times=times)

    def utts(plans):
        return [Utterance(p.utt_id, p.speaker, p.reference(), p.lang, p.tasks, str(wav_dir / f"{p.utt_id}.wav"),
                          duration=round(durations[p.utt_id], 3), turns=ref_turns(p, times[p.utt_id]))
                for p in plans]

    dirs = {name: utts(plans) for name, plans in splits.items()}
    dirs["train_full_only"] = utts([p for p in splits["train"] if p.subset == "conv"])
    for name, records in dirs.items():
        write_data_dir(records, out_dir / name)
    atomic_write_text(out_dir / "corpus_stats.md", corpus_stats(splits, durations, seed, size))
    log(f"mini_tokenverse: wrote {', '.join(str(out_dir / n) for n in dirs)} and {out_dir / 'corpus_stats.md'}")
    return dirs


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
    for split, n_conv, n_read in (("train", s["train_conv"], s["train_conv"] + s["train_read"]),
                                  ("dev", s["dev_conv"], s["dev_conv"]), ("test", s["test_conv"],
                                                                          s["test_conv"] + s["test_read"])):
        if extension == "qst":
            out[f"qst_{split}"] = [p for lang in W.LANGUAGES for p in plan_split(lang, split, n_conv, 0, seed, "qst")]
        else:
            out[f"{extension}_{split}"] = plan_split(extension, split, 0, n_read, seed)
    return out


def prepare_extension(out_dir, extension: str, seed: int = 0, size: str = "default", nj: int = 2, wav_dir=None,
                      log: Callable[[str], None] = print) -> Dict[str, list]:
    """Write the Kaldi dirs of ``plan_extension`` under ``out_dir`` (wavs beside the default corpus's, same
    ``<wav_dir>/<size>-seed<seed>/``; their utt ids never collide). Returns dir name -> utterances."""
    from espnet2_ext.data.kaldi_dir import Utterance, write_data_dir

    out_dir = Path(out_dir)
    wav_dir = Path(wav_dir) if wav_dir else Path(os.path.normpath(out_dir / ".." / "downloads" / "mini_tokenverse"
                                                                 / "wav"))
    wav_dir = wav_dir / f"{size}-seed{seed}"
    splits = plan_extension(extension, seed, size)
    times: Dict[str, list] = {}
    durations = render_all([p for ps in splits.values() for p in ps], wav_dir, nj, log, turn_times=times)
    dirs = {name: [Utterance(p.utt_id, p.speaker, p.reference(), p.lang, p.tasks, str(wav_dir / f"{p.utt_id}.wav"),
                             duration=round(durations[p.utt_id], 3), turns=ref_turns(p, times[p.utt_id]))
                   for p in plans] for name, plans in splits.items()}
    for name, records in dirs.items():
        write_data_dir(records, out_dir / name)
    log(f"mini_tokenverse: wrote {', '.join(str(out_dir / n) for n in dirs)} (extension {extension})")
    return dirs
