"""N-best hypotheses in ESPnet's decode layout: ``<n>best_recog/{text,token,token_int,score}`` (what
``espnet2.bin.asr_inference`` writes), for batch (``bin/asr_inference``) and streaming decoding alike."""

from __future__ import annotations

from typing import Sequence


def write_nbest(writer, key: str, nbest: Sequence) -> None:
    """``writer``: an ESPnet ``DatadirWriter``; ``nbest``: ``(text, tokens, token ids, hypothesis)`` per rank."""
    for n, (text, token, token_int, hyp) in enumerate(nbest, 1):
        w = writer[f"{n}best_recog"]
        w["token"][key] = " ".join(token)
        w["token_int"][key] = " ".join(map(str, token_int))
        w["score"][key] = str(float(hyp.score))
        if text is not None:  # no tokenizer: token ids only
            w["text"][key] = text
