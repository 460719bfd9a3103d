"""Scoring of TokenVerse++ outputs: metrics (WER, SCD/ENDP/NER F1, LID accuracy, ITT), result tables and
task-vector analysis."""
