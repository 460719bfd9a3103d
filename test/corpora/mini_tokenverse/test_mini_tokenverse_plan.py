"""mini_tokenverse planning (no audio, no espeak-ng): held-out names and voices, split sizes, vocabulary, per-seed
determinism."""

import espnet2_ext  # noqa: F401
from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse_plan as P
from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse_words as W
from espnet2_ext.text.strip_tasks import entities


def test_held_out_entities_and_voices():
    splits = P.plan_corpus(seed=0, size="default")  # planning only: no audio
    train = splits["train"]
    train_ents = {(p.lang, e) for p in train for e in p.entities()}
    test_ents = [(p.lang, e) for p in splits["test"] for e in p.entities()]
    unseen = sum(e not in train_ents for e in test_ents) / len(test_ents)
    assert 0.3 < unseen < 0.7
    conv_voices = {t.voice.speaker_id for p in train if p.subset == "conv" for t in p.turns}
    read_voices = {t.voice.speaker_id for p in train if p.subset == "read" for t in p.turns}
    assert conv_voices and read_voices and not conv_voices & read_voices
    test_voices = {t.voice.speaker_id for p in splits["test"] for t in p.turns}
    assert test_voices - conv_voices - read_voices  # some test voices never heard in train
    per_lang = {lang: [p for p in train if p.lang == lang] for lang in W.LANGUAGES}
    assert {lang: len(ps) for lang, ps in per_lang.items()} == {lang: 110 for lang in W.LANGUAGES}
    for lang, ps in per_lang.items():
        vocab = {w for p in ps for t in p.turns for w in t.spoken.split()}
        assert 50 <= len(vocab) <= 110, (lang, len(vocab))
        assert all(3 <= len(t.spoken.split()) <= 8 for p in ps for t in p.turns)
    # some turns continue the same speaker after a pause: [ENDP] without [SCD], so the two tasks differ
    same = sum(a.voice == b.voice for p in train if p.subset == "conv" for a, b in zip(p.turns, p.turns[1:]))
    assert 0 < same
    # read speech keeps entity names as plain words, never tagged
    assert all(entities(p.reference().split()) == [] for p in train if p.subset == "read")


def test_plan_is_deterministic_per_seed():
    a, b, c = P.plan_corpus(0, "small"), P.plan_corpus(0, "small"), P.plan_corpus(1, "small")
    ref = lambda s: [(p.utt_id, p.reference(), p.recipe()) for ps in s.values() for p in ps]  # noqa: E731
    assert ref(a) == ref(b) and ref(a) != ref(c)
    assert "test_partial" not in P.plan_corpus(0, "debug", partial=False)
