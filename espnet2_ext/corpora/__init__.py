"""Corpus preparation (lhotse's ``recipes`` in spirit): code that *makes* Kaldi data dirs from a source corpus,
apart from the library that reads and checks them (``data/``).

* ``mini_tokenverse/``: the embedded synthetic corpus (``prepare_mini_tokenverse``), its name and word pools,
  the SSL stand-in's corpus (``prepare_ssl_corpus``) and the evaluation biasing lists drawn from the pools;
* ``importers/``: outside corpora (CommonVoice, JSONL and STM conversations) into Kaldi dirs.

Named ``corpora`` rather than ``recipes``: in ESPnet a recipe is an ``egs2/`` folder of shell stages, which calls
these modules through their thin CLIs in ``bin/`` (prepare_mini_tokenverse, prepare_ssl_corpus, import_*). This is
the layer just below ``bin/``: nothing else in the package imports it.
"""
