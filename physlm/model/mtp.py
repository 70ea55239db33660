"""Multi-token prediction (Gloeckle et al. 2024; DeepSeek-V3's MTP modules): a train-only head that predicts the
token after next from the model's final hidden state, through the model's own output embedding.

``train.mtp = w > 0`` adds ``w`` x the cross-entropy of token t+2 at every position t whose next two tokens are
both targets (``loss_on``: in the solution). The head, ``x + down(gelu(up(ln(x))))`` on the final LayerNorm's
state, then the (tied) LM head, is trained with the model and saved in each checkpoint's training state (so a
resumed run is the same run), but it is not part of the model: the saved weights, evaluation, probes and
decoding are those of the plain model. The hope (an issue-15 lever): a state that must also say what follows the
next token plans further ahead ("Define A as" -> which parameter next). A fresh letter at t+2 is trained on the
letter the generator drew (``letter_targets`` shapes the next-token loss only). The logged training loss is the
next-token loss alone, comparable with runs without the head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class NextNextHead(torch.nn.Module):
    """``(n, d)`` final states -> ``(n, d)`` states whose unembedding predicts token t+2."""

    def __init__(self, width: int, std: float):
        super().__init__()
        self.ln = torch.nn.LayerNorm(width)
        self.up = torch.nn.Linear(width, width)
        self.down = torch.nn.Linear(width, width)
        for lin in (self.up, self.down):
            torch.nn.init.normal_(lin.weight, std=std)
            torch.nn.init.zeros_(lin.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.down(F.gelu(self.up(self.ln(hidden)), approximate="tanh"))


def loss_sum(
    head: NextNextHead, unembed, hidden: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, at: torch.Tensor
) -> torch.Tensor:
    """The summed cross-entropy of token t+2 over the positions t of ``at (b, T)`` (bool) whose tokens t+1 and
    t+2 are both targets; ``hidden (n, d)``: the final states at ``at``'s positions, row-major."""
    both = F.pad(mask[:, 2:] & mask[:, 1:-1], (0, 2))  # (b, T): position t has targets at t+1 and t+2
    keep = both[at]  # (n,)
    targets = F.pad(ids[:, 2:], (0, 2))[at][keep]
    logits = unembed(head(hidden[keep])).float()
    return F.cross_entropy(logits, targets, reduction="sum")
