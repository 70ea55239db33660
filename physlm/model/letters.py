"""Expected cross-entropy at the solution's fresh letters (``train.letter_targets="expected"``).

A solution names each new quantity with a letter drawn uniformly from the letters it has not used yet
("Define Hepatocyte as I; so I = p = 18": I is any letter but p). The token after " as" (or after ";",
an intermediate step's letter) is therefore noise: the plain loss trains on the one letter drawn, whose
gradient says little but "not the used ones", buried in the noise of which unused one came out. A small
model trained so keeps a favourite letter and, greedy, reuses it: "Define Goblet Cell as L; so L = 18.
Define Hepatocyte as L; so L = L = 18" (the `redefined_symbol` mistake, 17 of the tiny model's 29 op-2
failures).

"expected" replaces the cross-entropy at such a position by its expectation over the generator's law, the
mean over the unused letters u of -log p(u). That is the same objective in expectation (the same optimum),
with the noise of the draw removed (Rao-Blackwellised): every such position now says "the used letters are
wrong, every unused one is equally right". Only the targets change: the model, its inputs and every other
position are as before.

A fresh position is a letter token right after " as" or ";" inside a solution (between the solution and
answer markers of one packed unit); its unused letters are those not defined at an earlier fresh position
of the same solution.
"""

from __future__ import annotations

import torch

from physlm.igsm.graph import LETTERS


class FreshLetters:
    """The token ids a solution's letters and their definition sites are written with, for one tokenizer."""

    def __init__(self, tok):
        def one(text: str) -> int:
            return tok.one_id(text, "train.letter_targets")

        self.letter_ids = torch.tensor([one(" " + c) for c in LETTERS])  # (L,)
        self.lut = torch.full((tok.vocab_size,), -1, dtype=torch.long)  # token id -> letter index, or -1
        self.lut[self.letter_ids] = torch.arange(len(LETTERS))
        self.sites = torch.tensor([one(" as"), one(";")])  # a fresh letter follows one of these
        self.solution, self.answer = tok.markers.solution, tok.markers.answer

    def marks(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``fresh`` (b, T): token t is a fresh letter; ``unused`` (b, T, L): letters not defined before t in
        t's solution."""
        lut = self.lut.to(ids.device)
        letter = lut[ids]  # (b, T)
        in_solution = (ids == self.solution).cumsum(1) > (ids == self.answer).cumsum(1)
        after_site = torch.zeros_like(in_solution)
        after_site[:, 1:] = torch.isin(ids[:, :-1], self.sites.to(ids.device))
        fresh = (letter >= 0) & in_solution & after_site
        defined = torch.nn.functional.one_hot(letter.clamp(min=0), len(LETTERS)) * fresh[..., None]  # (b, T, L)
        upto = defined.cumsum(1)  # definitions at positions <= t
        # Definitions before this solution began: the count at its solution marker (one unit, one solution).
        arange = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
        start = torch.where(ids == self.solution, arange, 0).cummax(1).values  # (b, T)
        before = upto.gather(1, start[..., None].expand_as(upto))
        unused = (upto - defined - before) == 0  # not defined at an earlier position of the same solution
        return fresh, unused

    def loss_sum(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        fresh: torch.Tensor,
        unused: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sum over positions of the cross-entropy, expected over the unused letters where ``fresh``: logits
        (n, V) float, targets (n,) with -100 = not a target, fresh (n,), unused (n, L); ``weight`` (n,), if
        given, multiplies each position's term."""
        valid = targets != -100
        log_z = torch.logsumexp(logits, -1)
        hard = log_z - logits.gather(1, targets.clamp(min=0)[:, None])[:, 0]
        u = unused.to(logits.dtype)
        soft = log_z - (logits[:, self.letter_ids.to(logits.device)] * u).sum(-1) / u.sum(-1).clamp(min=1)
        per = torch.where(fresh & valid, soft, hard).masked_fill(~valid, 0)
        return (per if weight is None else per * weight).sum()
