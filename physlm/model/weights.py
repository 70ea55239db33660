"""Weighted loss at chosen solution positions: arithmetic results (``train.arith_weight``) and plan choices
(``train.plan_weight``).

A step of an iGSM solution is "Define <name> as <letter>; so <letter> = <operands> = <values> = <result>". Two
kinds of its tokens carry what a small model learns last:

- **the arithmetic result**, the number right after "<number> <op> <number> =": the one token that no copy
  produces; the model must hold the mod-23 tables (23 x 23 entries for each of +, -, *). A tiny-preset problem
  carries about 0.4 of them, so each entry is seen a few dozen times in a whole run; teacher-forced, the
  preset's model gets 40 % of them right (254 results of 300 op 2-4 problems);
- **the plan choice**, the two name tokens right after "Define" (whole-name tokenizer: " <item>", "'s",
  " <item>"): which parameter to compute next. The preset's op-3 failures are mostly there (`wrong_dependency`:
  a step skipped, the chain cut short, one term of an abstract sum left out).

A weight w multiplies the cross-entropy of those targets; every other position keeps weight 1, and the loss is
still divided by the number of target tokens, so at weight 1 this is the plain loss.
"""

from __future__ import annotations

import torch

from physlm.igsm.graph import MOD


class PositionWeights:
    """The per-token loss weights of one tokenizer's solutions: ``arith`` at arithmetic results, ``plan`` at
    the names of the parameter each step defines."""

    def __init__(self, tok, arith: float = 1.0, plan: float = 1.0):
        def one(text: str) -> int:
            return tok.one_id(text, "train.arith_weight/plan_weight")

        self.numbers = torch.tensor([one(f" {k}") for k in range(MOD)])
        self.ops = torch.tensor([one(f" {c}") for c in "+-*"])
        self.equals, self.define, self.possessive = one(" ="), one(" Define"), one("'s")
        self.arith, self.plan = arith, plan

    def results(self, ids: torch.Tensor) -> torch.Tensor:
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

    def choices(self, ids: torch.Tensor) -> torch.Tensor:
        """``(b, T)`` bool: token t is the first name after "Define", or the second one after "Define <name>'s"."""
        out = torch.zeros_like(ids, dtype=torch.bool)
        after = ids[:, :-1] == self.define
        out[:, 1:] = after
        out[:, 3:] |= after[:, :-2] & (ids[:, 2:-1] == self.possessive)
        return out

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        """``(b, T)`` float32: the weight of token t as a target."""
        w = torch.ones(ids.shape, dtype=torch.float32, device=ids.device)
        if self.arith != 1:
            w = torch.where(self.results(ids), self.arith, w)
        if self.plan != 1:
            w = torch.where(self.choices(ids), self.plan, w)
        return w
