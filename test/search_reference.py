"""Reference implementations for the transducer search tests: small random ESPnet models (``TransducerDecoder`` +
``JointNetwork``) and exact scores computed with ESPnet's own unbatched ``decoder.score`` and the full
``joint_network`` forward, independent of the search code (used by test/asr/test_search.py, test_timestamps.py and
test_biasing_search.py).
"""

import math
from typing import Dict, List, Optional, Tuple

import torch
from espnet2.asr.decoder.transducer_decoder import TransducerDecoder
from espnet2.asr.transducer.beam_search_transducer import Hypothesis as EspnetHypothesis
from espnet2.asr_transducer.joint_network import JointNetwork

import espnet2_ext  # noqa: F401  (first: keeps ESPnet's import offline)

D_ENC = 10


def make_model(seed: int, vocab: int = 12, hidden: int = 16, rnn: str = "lstm", layers: int = 1, sharpen: float = 1.0):
    torch.manual_seed(seed)
    dec = TransducerDecoder(vocab, rnn_type=rnn, num_layers=layers, hidden_size=hidden).eval()
    joint = JointNetwork(vocab, D_ENC, hidden, joint_space_size=20).eval()
    with torch.no_grad():  # sharper distributions make beams differ from greedy
        joint.lin_out.weight.mul_(sharpen)
    return dec, joint


def make_enc(seed: int, lens: List[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lens), max(lens), D_ENC, generator=g)
    return x, torch.tensor(lens)


@torch.no_grad()
def ref_dec_out(dec, seq: Tuple[int, ...], cache: Dict) -> torch.Tensor:
    """Decoder output after label prefix ``seq`` via ESPnet's unbatched ``decoder.score``; ``cache`` maps a
    prefix to (output, state, yseq) so a prefix extends its parent's state."""
    if seq not in cache:
        if seq:
            ref_dec_out(dec, seq[:-1], cache)
            _, state, yseq = cache[seq[:-1]]
            hyp = EspnetHypothesis(score=0.0, yseq=yseq + [seq[-1]], dec_state=state)
        else:
            hyp = EspnetHypothesis(score=0.0, yseq=[dec.blank_id], dec_state=dec.init_state(1))
        out, state, _ = dec.score(hyp, {})
        cache[seq] = (out, state, hyp.yseq)
    return cache[seq][0]


@torch.no_grad()
def ref_logp(dec, joint, enc_t: torch.Tensor, seq: Tuple[int, ...], cache: Dict) -> torch.Tensor:
    """log-softmax of the full joint forward for one frame after label prefix ``seq``."""
    return torch.log_softmax(joint(enc_t, ref_dec_out(dec, seq, cache)).double(), dim=-1)


def log_add(a: float, b: float) -> float:
    hi, lo = max(a, b), min(a, b)
    return hi + math.log1p(math.exp(lo - hi)) if lo > -math.inf else hi


def exact_sequence_scores(
    dec, joint, enc: torch.Tensor, mask: Optional[torch.Tensor] = None
) -> Dict[Tuple[int, ...], float]:
    """Exhaustive search (one step per frame: blank or one symbol): log P(sequence) summed over alignments."""
    cache: Dict = {}
    blank = dec.blank_id
    hyps = {(): 0.0}
    for t in range(enc.size(0)):
        new: Dict[Tuple[int, ...], float] = {}
        for seq, score in hyps.items():
            logp = ref_logp(dec, joint, enc[t], seq, cache)
            if mask is not None:  # suppressed tokens leave the softmax: renormalise over the allowed ones
                allowed = ~mask.clone()
                allowed[blank] = True
                logp = logp.masked_fill(~allowed, float("-inf"))
                logp = logp - torch.logsumexp(logp, dim=-1)
            logp = logp.tolist()
            for k in range(len(logp)):
                if mask is not None and mask[k] and k != blank:
                    continue
                key = seq if k == blank else seq + (k,)
                val = score + logp[k]
                new[key] = val if key not in new else log_add(new[key], val)
        hyps = new
    return hyps


def ref_greedy(dec, joint, enc: torch.Tensor, max_sym: int) -> List[int]:
    """Straightforward unbatched greedy search with up to ``max_sym`` symbols per frame."""
    cache: Dict = {}
    seq: Tuple[int, ...] = ()
    for t in range(enc.size(0)):
        for _ in range(max_sym):
            k = int(ref_logp(dec, joint, enc[t], seq, cache).argmax())
            if k == dec.blank_id:
                break
            seq += (k,)
    return list(seq)
