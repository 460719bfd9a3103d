"""Word material of the ``mini_tokenverse`` corpus: per-language sentence templates, slot fillers, entity
lists and espeak-ng voices.

Kept deliberately small (a closed vocabulary of roughly 60-100 words per language, 3-7 word sentences) so a
tiny model can learn the corpus in minutes on a CPU. Everything is lowercase without punctuation (no
apostrophes either: French templates avoid elisions). ``{PER}``, ``{CITY}``, ``{ORG}`` are entity slots
(tagged ``[NE] ... [/NE]`` in conversations); lowercase slots such as ``{day}`` take words from ``SLOTS``.
"""
from __future__ import annotations

from typing import Dict, Tuple

LANGUAGES: Tuple[str, ...] = ("en", "de", "es", "fr")
ENTITY_TYPES: Tuple[str, ...] = ("PER", "CITY", "ORG")

# espeak-ng base voices per language; speakers are base voice + variant + speed + pitch.
BASE_VOICES: Dict[str, Tuple[str, ...]] = {
    "en": ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-us-nyc", "en-029"),
    "de": ("de",),
    "es": ("es", "es-419"),
    "fr": ("fr-fr", "fr-be", "fr-ch"),
}
VARIANTS: Tuple[str, ...] = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")

TEMPLATES: Dict[str, Tuple[str, ...]] = {
    "en": (
        "hello {PER} how are you", "good morning {PER}", "i am fine thank you", "are you going to {CITY} {day}",
        "yes i am flying to {CITY} {day}", "no i will stay at home", "{PER} works for {ORG} now",
        "do you know {PER}", "i met {PER} in {CITY}", "the meeting with {ORG} is {day}",
        "we should call {PER} {day}", "that sounds good to me", "sorry i can not hear you",
        "let us meet in {CITY}", "my brother lives in {CITY}", "i have a new job at {ORG}",
        "what time is the train", "the train leaves at {hour}", "see you {day} then", "thank you very much",
        "where is {PER} {day}", "{PER} is in {CITY} this week", "please send the report to {PER}",
        "i think {ORG} is a good company",
    ),
    "de": (
        "hallo {PER} wie geht es dir", "guten morgen {PER}", "mir geht es gut danke", "fährst du {day} nach {CITY}",
        "ja ich fliege {day} nach {CITY}", "nein ich bleibe zu hause", "{PER} arbeitet jetzt bei {ORG}",
        "kennst du {PER}", "ich habe {PER} in {CITY} getroffen", "das treffen mit {ORG} ist {day}",
        "wir sollten {PER} {day} anrufen", "das klingt gut", "entschuldigung ich kann dich nicht hören",
        "lass uns in {CITY} treffen", "mein bruder wohnt in {CITY}", "ich habe eine neue stelle bei {ORG}",
        "wann fährt der zug", "der zug fährt um {hour}", "bis {day} dann", "vielen dank für alles",
        "wo ist {PER} {day}", "{PER} ist diese woche in {CITY}", "bitte schick den bericht an {PER}",
        "ich finde {ORG} ist eine gute firma",
    ),
    "es": (
        "hola {PER} cómo estás", "buenos días {PER}", "estoy bien gracias", "vas a {CITY} {day}",
        "sí voy a {CITY} {day}", "no me quedo en casa", "{PER} trabaja ahora en {ORG}", "conoces a {PER}",
        "vi a {PER} en {CITY}", "la reunión con {ORG} es {day}", "deberíamos llamar a {PER} {day}",
        "eso suena bien", "perdón no te oigo bien", "nos vemos en {CITY}", "mi hermano vive en {CITY}",
        "tengo un trabajo nuevo en {ORG}", "a qué hora sale el tren", "el tren sale a {hour}",
        "hasta {day} entonces", "muchas gracias por todo", "dónde está {PER} {day}",
        "{PER} está en {CITY} esta semana", "por favor manda el informe a {PER}",
        "creo que {ORG} es una buena empresa",
    ),
    "fr": (
        "bonjour {PER} comment vas tu", "salut {PER} ça va", "je vais bien merci", "tu vas à {CITY} {day}",
        "oui je pars à {CITY} {day}", "non je reste à la maison", "{PER} travaille chez {ORG} maintenant",
        "tu connais {PER}", "nous avons vu {PER} à {CITY}", "la réunion avec {ORG} est {day}",
        "nous devons appeler {PER} {day}", "très bonne idée", "pardon je ne comprends pas",
        "on se voit à {CITY}", "mon frère habite à {CITY}", "mon nouveau travail est chez {ORG}",
        "à quelle heure part le train", "le train part à {hour}", "à {day} alors", "merci beaucoup pour tout",
        "où est {PER} {day}", "{PER} est à {CITY} cette semaine", "envoie le rapport à {PER} {day}",
        "je pense que {ORG} est une bonne entreprise",
    ),
}

SLOTS: Dict[str, Dict[str, Tuple[str, ...]]] = {
    "en": {"day": ("today", "tomorrow", "tonight", "on monday", "on friday"),
           "hour": ("nine", "ten", "noon")},
    "de": {"day": ("heute", "morgen", "heute abend", "am montag", "am freitag"),
           "hour": ("neun uhr", "zehn uhr", "elf uhr")},
    "es": {"day": ("hoy", "mañana", "esta noche", "el lunes", "el viernes"),
           "hour": ("las nueve", "las diez", "las once")},
    "fr": {"day": ("demain", "ce soir", "lundi", "vendredi", "samedi"),
           "hour": ("neuf heures", "dix heures", "midi")},
}

# Entities: 1-2 words each. A seeded share of each list is held out of train (test names unseen in train).
ENTITIES: Dict[str, Dict[str, Tuple[str, ...]]] = {
    "en": {
        "PER": ("maria", "john", "sarah", "david", "emma", "michael", "laura", "peter smith", "anna brown", "james",
                "lucy", "robert", "kevin", "olivia", "thomas", "helen"),
        "CITY": ("london", "paris", "boston", "chicago", "new york", "berlin", "dublin", "sydney", "toronto",
                 "madrid"),
        "ORG": ("google", "microsoft", "amazon", "siemens", "nokia", "apple", "ikea", "tesla", "samsung"),
    },
    "de": {
        "PER": ("anna", "thomas", "julia", "stefan", "katrin", "michael", "laura", "peter müller", "lena schmidt",
                "jonas", "sabine", "markus", "claudia", "felix", "hannah", "tobias"),
        "CITY": ("berlin", "münchen", "hamburg", "köln", "wien", "zürich", "dresden", "leipzig", "frankfurt",
                 "bremen"),
        "ORG": ("siemens", "bosch", "lufthansa", "adidas", "porsche", "allianz", "bayer", "telekom", "audi"),
    },
    "es": {
        "PER": ("maría", "carlos", "lucía", "javier", "carmen", "pablo", "elena", "juan garcía", "ana lópez",
                "diego", "sofía", "miguel", "isabel", "andrés", "marta", "raúl"),
        "CITY": ("madrid", "barcelona", "sevilla", "valencia", "bilbao", "málaga", "granada", "lima", "bogotá",
                 "quito"),
        "ORG": ("telefónica", "iberia", "santander", "zara", "repsol", "mapfre", "seat", "mercadona", "inditex"),
    },
    "fr": {
        "PER": ("marie", "pierre", "sophie", "julien", "camille", "nicolas", "claire", "jean dupont", "léa martin",
                "louis", "chloé", "antoine", "manon", "hugo", "céline", "mathieu"),
        "CITY": ("paris", "lyon", "marseille", "toulouse", "nice", "bordeaux", "lille", "nantes", "genève",
                 "bruxelles"),
        "ORG": ("renault", "peugeot", "danone", "airbus", "michelin", "carrefour", "decathlon", "chanel", "orange"),
    },
}

# ---- extension material (bin/prepare_mini_tokenverse --extension; README "Adding a task or a language") ------
# Not part of the default corpus: LANGUAGES above stays as it is, so the default corpus and its RNG streams are
# unchanged. Italian avoids letters the default corpus never has (ì, ò), which a tokenizer trained on it lacks.
EXTENSION_LANGUAGES: Tuple[str, ...] = ("it",)
BASE_VOICES["it"] = ("it",)
TEMPLATES["it"] = (
    "ciao {PER} come stai", "buongiorno {PER}", "sto bene grazie", "vai a {CITY} {day}", "certo vado a {CITY} {day}",
    "no resto a casa", "{PER} lavora per {ORG} adesso", "conosci {PER}", "ho visto {PER} a {CITY}",
    "la riunione con {ORG} è {day}", "dobbiamo chiamare {PER} {day}", "mi sembra una buona idea",
    "scusa non ti sento bene", "ci vediamo a {CITY}", "mio fratello abita a {CITY}", "ho un nuovo lavoro da {ORG}",
    "a che ora parte il treno", "il treno parte alle {hour}", "a {day} allora", "grazie mille per tutto",
    "dove è {PER} {day}", "{PER} è a {CITY} questa settimana", "per favore manda il rapporto a {PER}",
    "penso che {ORG} sia una buona azienda",
)
SLOTS["it"] = {"day": ("oggi", "domani", "stasera", "sabato", "domenica"), "hour": ("nove", "dieci", "undici")}
ENTITIES["it"] = {
    "PER": ("marco", "giulia", "luca", "francesca", "paolo", "chiara", "matteo", "sara", "andrea", "elena",
            "marco rossi", "anna bianchi"),
    "CITY": ("roma", "milano", "napoli", "torino", "firenze", "venezia", "bologna", "genova"),
    "ORG": ("fiat", "enel", "barilla", "ferrari", "pirelli", "benetton", "luxottica"),
}

# The sentence templates that are questions: the new auxiliary task "qst" tags such a turn with [Q] at its end.
QUESTIONS: Dict[str, Tuple[str, ...]] = {
    "en": ("hello {PER} how are you", "are you going to {CITY} {day}", "do you know {PER}", "what time is the train",
           "where is {PER} {day}"),
    "de": ("hallo {PER} wie geht es dir", "fährst du {day} nach {CITY}", "kennst du {PER}", "wann fährt der zug",
           "wo ist {PER} {day}"),
    "es": ("hola {PER} cómo estás", "vas a {CITY} {day}", "conoces a {PER}", "a qué hora sale el tren",
           "dónde está {PER} {day}"),
    "fr": ("bonjour {PER} comment vas tu", "salut {PER} ça va", "tu vas à {CITY} {day}", "tu connais {PER}",
           "à quelle heure part le train", "où est {PER} {day}"),
    "it": ("ciao {PER} come stai", "vai a {CITY} {day}", "conosci {PER}", "a che ora parte il treno",
           "dove è {PER} {day}"),
}
assert all(q in TEMPLATES[lang] for lang, qs in QUESTIONS.items() for q in qs)
