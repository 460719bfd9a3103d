"""The stand-in pretraining objectives: the wav2vec2 model with its head, the losses, and held-out CTC scoring.

* ``hubert``: cross-entropy on the k-means cluster of each masked frame.
* ``ctc``: character CTC on the transcript; :func:`evaluate_ctc` gives the held-out loss and greedy CER.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from espnet2_ext.ssl import sources
from espnet2_ext.ssl.targets import make_batches
from espnet2_ext.upstream.xlsr_standin import build_wav2vec2


class Pretrainer(torch.nn.Module):
    """wav2vec2 stand-in + a pretraining head (cluster logits or CTC characters)."""

    def __init__(self, model_cfg: Dict, n_out: int, seed: int, freeze_feature_encoder: bool = False):
        super().__init__()
        self.model_cfg = dict(model_cfg)
        self.wav2vec2 = build_wav2vec2(model_cfg, seed)
        # the quantiser/projection of wav2vec2's own contrastive objective are not used here: freeze them so the
        # optimiser state stays small and their weights stay as initialised (the frontend freezes them too)
        used = ("feature_extractor", "layer_norm", "post_extract_proj", "encoder", "mask_emb")
        for name, p in self.wav2vec2.named_parameters():
            top = name.split(".")[0]
            p.requires_grad_(top in used and not (freeze_feature_encoder and top == "feature_extractor"))
        dim = model_cfg["encoder_embed_dim"]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            self.head = torch.nn.Linear(dim, n_out)

    def forward(
        self,
        wav: Optional[torch.Tensor],
        pad: torch.Tensor,
        mask_indices: Optional[torch.Tensor],
        cnn_feats: Optional[torch.Tensor] = None,
    ):
        """wav: [B, L], pad: [B, L] (True = padding), mask_indices: [B, T] or None
        -> logits [B, T, n_out], frame padding [B, T].
        With ``cnn_feats`` [B, T, C] (cached outputs of the frozen CNN) the CNN is skipped: ``wav`` is unused and
        ``pad`` is the frame padding [B, T].

        The steps of ``Wav2Vec2Model.forward`` up to the transformer, called one by one because its own masking
        path gathers the masked targets with ``.view(B, -1, C)``, which needs the same masked count in every row.
        """
        w = self.wav2vec2
        if cnn_feats is None:
            feats = w.feature_extractor(wav).transpose(1, 2)  # [B, T, C]
            lens = w._get_feat_extract_output_lengths((~pad).sum(-1))  # [B]
        else:
            feats, lens = cnn_feats, (~pad).sum(-1)  # [B, T, C], [B]
        feats = w.layer_norm(feats)
        T = feats.shape[1]
        fpad = torch.arange(T, device=feats.device)[None, :] >= lens[:, None]  # [B, T]
        if w.post_extract_proj is not None:
            feats = w.post_extract_proj(feats)  # [B, T, D]
        if mask_indices is not None:
            feats = torch.where(mask_indices[:, :T, None], w.mask_emb.to(feats.dtype), feats)
        x, _ = w.encoder(feats, padding_mask=fpad if fpad.any() else None)  # [B, T, D]
        return self.head(x), fpad


def objective_loss(
    objective: str,
    logits: torch.Tensor,
    fpad: torch.Tensor,
    mask: Optional[torch.Tensor],
    targets: List[torch.Tensor],
    frame_lens: List[int],
) -> Tuple[torch.Tensor, float]:
    """(loss, a float to log): hubert = cross-entropy on the masked frames and their accuracy; ctc = CTC loss and the
    share of frames predicted blank."""
    B, T, V = logits.shape
    if objective == "hubert":
        # masked frames only (HuBERT's alpha = 1): predicting unmasked frames is nearly copying MFCC
        tgt = torch.full((B, T), -100, dtype=torch.long)
        for b in range(B):
            n = min(frame_lens[b], T, len(targets[b]))
            tgt[b, :n] = targets[b][:n]
        tgt = tgt.to(logits.device)
        sel = mask & (tgt >= 0) & ~fpad  # [B, T]
        loss = F.cross_entropy(logits[sel], tgt[sel])
        acc = (logits[sel].argmax(-1) == tgt[sel]).float().mean().item()
        return loss, acc
    logp = logits.log_softmax(-1).transpose(0, 1)  # [T, B, V]
    in_lens = (~fpad).sum(1)
    tgt_lens = torch.tensor([len(t) for t in targets])
    # the lengths stay on the CPU (what both CTC kernels accept); the targets go where the logits are
    loss = F.ctc_loss(logp, torch.cat(targets).to(logits.device), in_lens.cpu(), tgt_lens, blank=0, zero_infinity=True)
    # greedy frame-level proxy: share of frames predicted blank (falls as the head learns characters)
    err = (logits.argmax(-1)[~fpad] == 0).float().mean().item()
    return loss, err


def ctc_targets(items, vocab: List[str]) -> List[torch.Tensor]:
    """Character ids of each transcript (space = ``|``); characters outside ``vocab`` are left out."""
    index = {c: i for i, c in enumerate(vocab)}
    return [torch.tensor([index[c] for c in t.replace(" ", "|") if c in index], dtype=torch.long) for _, _, t in items]


@torch.no_grad()
def evaluate_ctc(
    model: Pretrainer,
    source,
    targets: List[torch.Tensor],
    vocab: List[str],
    batch_samples: int,
    device: torch.device,
    cached: bool,
) -> Dict[str, float]:
    """CTC loss per character and greedy character error rate (jiwer) on a held-out set, without masking."""
    import jiwer

    model.eval()
    lengths = sources.sample_lengths(source, cached)
    refs, hyps, loss_sum, chars = [], [], 0.0, 0
    for idx in make_batches(lengths, batch_samples, 0, 0):
        wav, pad, feats = sources.batch(source, idx, device, cached)
        logits, fpad = model(wav, pad, None, feats)  # [B, T, V]
        tgts = [targets[i] for i in idx]
        loss, _ = objective_loss("ctc", logits, fpad, None, tgts, [])
        n = sum(len(t) for t in tgts)
        loss_sum, chars = loss_sum + loss.item() * n, chars + n
        best = logits.argmax(-1).cpu()  # [B, T]
        for b, t in enumerate(tgts):
            ids = torch.unique_consecutive(best[b][: int((~fpad[b]).sum())]).tolist()
            hyps.append("".join(vocab[i] for i in ids if i != 0).replace("|", " ").strip())
            refs.append("".join(vocab[i] for i in t.tolist()).replace("|", " ").strip())
    model.train()
    return {"loss": loss_sum / max(chars, 1), "cer": 100.0 * jiwer.cer(refs, hyps)}
