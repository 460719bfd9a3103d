"""The embedded synthetic corpus and what is drawn from its pools (espeak-ng + sox, seeded, deterministic).

* ``mini_tokenverse.prepare_mini_tokenverse()``: the corpus (``bin/prepare_mini_tokenverse``); its plan in
  ``mini_tokenverse_plan``, its words and templates in ``mini_tokenverse_words``, open name lists in ``name_pools``;
* ``ssl_corpus.prepare_ssl_corpus()``: the XLSR stand-in's pretraining corpus (``bin/prepare_ssl_corpus``);
* ``biasing_lists.make_lists()``: evaluation biasing lists, distractors from ``name_pools``
  (``bin/make_biasing_lists``).
"""
