"""The weighted loss at arithmetic results (train.arith_weight): where it applies and what it equals."""

import pytest
import torch

from physlm.config import ConfigError, ModelConfig, TrainConfig
from physlm.model import tokenizer as T
from physlm.model.arith import ArithResults
from physlm.model.gpt import build
from physlm.model.letters import FreshLetters
from physlm.model.train import NextTokenLoss

PROBLEM = "The number of each Red Room's Backpack equals 3."
SOLUTION = (
    " Define Red Room's Backpack as p; so p = 3. Define Red Room's Overlander as I; so I = 4 * p = 4 * 3 = 12."
    " Define Willow Room's Backpack as q; R = p + I = 3 + 12 = 15; so q = 20 - R = 20 - 15 = 5."
)


@pytest.fixture(scope="module")
def tok():
    return T.build_wordlevel()


def test_results_are_the_numbers_after_an_operation(tok):
    """Marked: the 12, 15 and 5 that end "4 * 3 =", "3 + 12 =", "20 - 15 ="; not the copied 3 of "p = 3", not
    the operands restated after "= 4 * p =", not the answer."""
    ids, _ = tok.encode_unit(PROBLEM, SOLUTION, 5)
    marks = ArithResults(tok).marks(torch.tensor([ids + ids]))[0]
    at = marks.nonzero()[:, 0].tolist()
    assert [tok.decode([ids[t % len(ids)]]) for t in at] == [" 12", " 15", " 5"] * 2
    assert all(tok.decode(ids[t - 4 : t]).endswith(" =") for t in at[:3])


@pytest.mark.parametrize("letters", [False, True])
def test_weighted_loss_adds_the_results_cross_entropy(tok, letters):
    """Weight w: the plain loss (or the letters' expected loss) plus (w - 1) times the cross-entropy of each
    result; weight 1 is the plain loss exactly."""
    ids, mask = tok.encode_unit(PROBLEM, SOLUTION, 5)
    ids, mask = torch.tensor([ids]), torch.tensor([mask])
    torch.manual_seed(0)
    model = build(ModelConfig.from_name("GPT2-1-1", vocab_size=tok.vocab_size, n_ctx=128)).eval()
    fl, res = (FreshLetters(tok) if letters else None), ArithResults(tok)
    with torch.no_grad():
        plain = NextTokenLoss(model, sparse=True, letters=fl)(ids, mask)
        same = NextTokenLoss(model, sparse=True, letters=fl, results=res, result_weight=1.0)(ids, mask)
        got = NextTokenLoss(model, sparse=True, letters=fl, results=res, result_weight=5.0)(ids, mask)
        logp = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)  # position t predicts t+1
    assert same == plain
    at = res.marks(ids)[0].nonzero()[:, 0]
    want = plain + 4.0 * -logp[at - 1, ids[0, at]].sum()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_weight_must_be_positive():
    with pytest.raises(ConfigError, match="arith_weight"):
        TrainConfig(arith_weight=0)
