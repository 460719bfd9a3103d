"""Importers of outside corpora into Kaldi data dirs: ``import_commonvoice`` (CommonVoice releases),
``import_jsonl`` (JSONL conversations) and ``import_stm`` (STM/RTTM conversations); CLIs in ``bin/import_*``."""
