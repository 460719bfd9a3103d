"""Scratch record of a dev trial (session 11, not part of the package): internal-LM subtraction in modified beam
search, by monkeypatching the joint scorer. For each frame, the log-probs of non-blank tokens get
- ILM * log_softmax over non-blank of joint(0, decoder): the prediction network's own prior (the encoder term zeroed,
its projection bias included), as in ILM estimation for RNN-T. Not kept: dev WER rises at every weight
(RESULTS.md)."""

import math
import os
import sys

import torch

import espnet2_ext  # noqa
import espnet2_ext.asr.transducer.modified_beam_search as MBS
from espnet2_ext.asr.transducer import search_common as SC

LAM = float(os.environ["ILM"])
stash = {}
orig_logits = SC.JointScorer.logits


def logits(self, enc, dec):
    out = orig_logits(self, enc, dec)
    if self.split and LAM:
        ilm = self.joint(torch.zeros_like(enc), dec, no_projection=True)
        ilm = ilm.clone()
        ilm[..., self.blank_id] = -math.inf
        ilm = ilm.log_softmax(-1)
        ilm[..., self.blank_id] = 0.0
        stash["ilm"] = ilm
    return out


SC.JointScorer.logits = logits
orig_mlp = MBS.masked_log_probs


def mlp(lg, mask):
    lp = orig_mlp(lg, mask)
    ilm = stash.pop("ilm", None)
    if ilm is not None:
        lp = lp - LAM * ilm.to(lp.dtype)
    return lp


MBS.masked_log_probs = mlp
from espnet2_ext.bin.decode_activation_sets import main

sys.exit(main(sys.argv[1:]))
