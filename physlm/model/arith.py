"""Weighted loss at a solution's arithmetic results (``train.arith_weight``).

A step of an iGSM solution ends with its arithmetic, mod 23: "so S = 19 + D = 19 + 0 = 19". The result
(the last "19") is the one token of the step that no copy can produce: the model must hold the mod-23
tables (23 x 23 entries for each of +, -, *). In the tiny preset's training a problem carries about 0.4
such results on average, so each entry of a table is seen a few dozen times in a whole run; teacher-forced,
the preset's model got 45 % of them right (op-3 problems of the training templates, 97 results: 29 % at
step 1,000, 42 % at 2,000, 45 % at 3,500), while it copies names and values almost without error.

``arith_weight`` multiplies the cross-entropy of those targets: a result is a number token right after
"<number> <op> <number> =". Every other position keeps weight 1, and the loss is still divided by the number
of target tokens, so at weight 1 this is the plain loss.
"""

from __future__ import annotations

import torch

from physlm.config import ConfigError
from physlm.igsm.graph import MOD


class ArithResults:
    """The token ids of the numbers 0..22, the operators and "=" of one tokenizer."""

    def __init__(self, tok):
        def one(text: str) -> int:
            ids = tok.encode(text)
            if len(ids) != 1:
                raise ConfigError(f"train.arith_weight: the tokenizer splits {text!r} into {len(ids)} tokens")
            return ids[0]

        self.numbers = torch.tensor([one(f" {k}") for k in range(MOD)])
        self.ops = torch.tensor([one(f" {c}") for c in "+-*"])
        self.equals = one(" =")

    def marks(self, ids: torch.Tensor) -> torch.Tensor:
        """``(b, T)`` bool: token t is a number right after "<number> <op> <number> =" (an arithmetic result)."""
        num = torch.isin(ids, self.numbers.to(ids.device))
        out = torch.zeros_like(num)
        out[:, 4:] = (
            num[:, 4:]
            & (ids[:, 3:-1] == self.equals)
            & num[:, 2:-2]
            & torch.isin(ids[:, 1:-3], self.ops.to(ids.device))
            & num[:, :-4]
        )
        return out
