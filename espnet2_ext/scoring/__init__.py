"""Scoring of TokenVerse++ outputs: the metrics (WER, SCD/ENDP/NER F1, LID accuracy, ITT, time-based scores).
Tables and reports built on them live in ``espnet2_ext.reporting``."""
