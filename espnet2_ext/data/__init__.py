"""Kaldi data dirs as a library: read, write, validate, fix and subset them (``kaldi_dir``, ``validate_dir``), read
their audio (``audio_io``, ``audio_blocks``, ``audio_check``), and derive sets from existing dirs (``replay``,
``long_form_set``). Making a dir from a source corpus is corpus preparation: ``espnet2_ext/corpora/``."""
