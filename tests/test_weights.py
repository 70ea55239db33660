"""The weighted loss at chosen solution positions (train.arith_weight, train.plan_weight): where each applies
and what the loss then equals."""

import pytest
import torch

from physlm.config import ConfigError, ModelConfig, TrainConfig
from physlm.model.gpt import build
from physlm.model.letters import FreshLetters
from physlm.model.train import NextTokenLoss
from physlm.model.weights import PositionWeights

PROBLEM = "The number of each Red Room's Backpack equals 3."
SOLUTION = (
    " Define Red Room's Backpack as p; so p = 3. Define Red Room's Overlander as I; so I = 4 * p = 4 * 3 = 12."
    " Define Willow Room's Backpack as q; R = p + I = 3 + 12 = 15; so q = 20 - R = 20 - 15 = 5."
)


def _marked(tok, ids, marks) -> list[str]:
    return [tok.decode([ids[t % len(ids)]]) for t in marks.nonzero()[:, 0].tolist()]


def test_results_are_the_numbers_after_an_operation(tok):
    """Marked: the 12, 15 and 5 that end "4 * 3 =", "3 + 12 =", "20 - 15 ="; not the copied 3 of "p = 3", not
    the operands restated after "= 4 * p =", not the answer."""
    ids, _ = tok.encode_unit(PROBLEM, SOLUTION, 5)
    marks = PositionWeights(tok).results(torch.tensor([ids + ids]))[0]
    assert _marked(tok, ids, marks) == [" 12", " 15", " 5"] * 2


def test_choices_are_the_names_after_define(tok):
    """Marked: both names of each defined parameter, in the solution only ("Define" opens a step)."""
    ids, _ = tok.encode_unit(PROBLEM, SOLUTION, 5)
    marks = PositionWeights(tok).choices(torch.tensor([ids]))[0]
    assert _marked(tok, ids, marks) == [" Red Room", " Backpack", " Red Room", " Overlander", " Willow Room"] + [
        " Backpack"
    ]


@pytest.mark.parametrize("letters", [False, True])
@pytest.mark.parametrize(("arith", "plan"), [(5.0, 1.0), (1.0, 3.0), (5.0, 3.0)])
def test_weighted_loss_adds_the_marked_cross_entropies(tok, letters, arith, plan):
    """Weights (a, p): the plain loss (or the letters' expected loss) plus (a - 1) times the cross-entropy of
    each result and (p - 1) times that of each plan choice; weights 1 give the plain loss exactly."""
    ids, mask = tok.encode_unit(PROBLEM, SOLUTION, 5)
    ids, mask = torch.tensor([ids]), torch.tensor([mask])
    torch.manual_seed(0)
    model = build(ModelConfig.from_name("GPT2-1-1", vocab_size=tok.vocab_size, n_ctx=128)).eval()
    fl = FreshLetters(tok) if letters else None
    w = PositionWeights(tok, arith, plan)
    with torch.no_grad():
        plain = NextTokenLoss(model, sparse=True, letters=fl)(ids, mask)
        same = NextTokenLoss(model, sparse=True, letters=fl, weights=PositionWeights(tok))(ids, mask)
        got = NextTokenLoss(model, sparse=True, letters=fl, weights=w)(ids, mask)
        logp = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)  # position t predicts t+1
    torch.testing.assert_close(same, plain, rtol=1e-6, atol=1e-6)
    want = plain.clone()
    for marks, weight in ((w.results(ids), arith), (w.choices(ids), plan)):
        at = marks[0].nonzero()[:, 0]
        want += (weight - 1) * -logp[at - 1, ids[0, at]].sum()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_weights_must_be_positive():
    with pytest.raises(ConfigError, match="arith_weight"):
        TrainConfig(arith_weight=0)
    with pytest.raises(ConfigError, match="plan_weight"):
        TrainConfig(plan_weight=-1)
