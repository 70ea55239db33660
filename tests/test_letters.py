"""The expected letter loss (train.letter_targets="expected"): where it applies and what it equals."""

import pytest
import torch

from physlm.config import ConfigError, ModelConfig, TrainConfig
from physlm.igsm.config import Family, GenConfig
from physlm.igsm.graph import LETTERS
from physlm.model.data import OnlineProblems
from physlm.model.gpt import build
from physlm.model.letters import FreshLetters
from physlm.model.train import NextTokenLoss, train

GEN = GenConfig(family=Family("tiny", max_op=4, max_edge=6))
SOLUTION = (
    " Define Red Room's Backpack as p; so p = 3. Define Red Room's Overlander as I; so I = p = 3."
    " Define Willow Room's Backpack as q; R = p + I = 3 + 3 = 6; so q = R = 6."
)


def _defined(letters: FreshLetters, unused_row) -> list[str]:
    return [LETTERS[j] for j in range(len(LETTERS)) if not unused_row[j]]


def test_fresh_letters_and_their_unused_sets_reset_per_solution(tok):
    """Fresh = a letter after " as" or ";" in a solution (p, I, q, R; not the p of "I = p"); unused = the letters
    not defined earlier in the same solution, so a second packed unit starts again from all 52."""
    ids, _ = tok.encode_unit("The number of each Red Room's Backpack equals 3.", SOLUTION, 6)
    fl = FreshLetters(tok)
    fresh, unused = fl.marks(torch.tensor([ids + ids]))
    at = fresh[0].nonzero()[:, 0].tolist()
    assert [tok.decode([ids[t % len(ids)]]) for t in at] == [" p", " I", " q", " R"] * 2
    seen = [_defined(fl, unused[0, t]) for t in at]
    assert seen[:4] == [[], ["p"], ["p", "I"], ["p", "q", "I"]] and seen[4:] == seen[:4]


def test_expected_loss_is_the_mean_over_unused_letters(tok):
    """At a fresh position the loss is exactly the average of the plain cross-entropy over every letter the
    generator could have drawn there; elsewhere it is the plain cross-entropy."""
    ids, mask = tok.encode_unit("The number of each Red Room's Backpack equals 3.", SOLUTION, 6)
    ids, mask = torch.tensor([ids]), torch.tensor([mask])
    torch.manual_seed(0)
    model = build(ModelConfig.from_name("GPT2-1-1", vocab_size=tok.vocab_size, n_ctx=128)).eval()
    fl = FreshLetters(tok)
    with torch.no_grad():
        got = NextTokenLoss(model, sparse=True, letters=fl)(ids, mask)
        plain = NextTokenLoss(model, sparse=True)(ids, mask)
        logp = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)  # position t predicts t+1
    fresh, unused = fl.marks(ids)
    want = plain.clone()
    for t in fresh[0].nonzero()[:, 0].tolist():
        choices = fl.letter_ids[unused[0, t]]
        assert len(choices) == 52 - len(_defined(fl, unused[0, t]))
        want += -logp[t - 1, choices].mean() - (-logp[t - 1, ids[0, t]])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, plain)  # the fresh positions did change it


def test_training_with_expected_letters(tok, tmp_path):
    """A real run with letter_targets="expected" trains (loss falls) and differs from the sampled one; a source
    without a tokenizer is refused by name."""
    cfg = dict(steps=6, batch_size=2, warmup=1, lr=3e-3, ckpt_every=6, log_every=1, loss_on="solution", seed=1)
    mc = ModelConfig.from_name("GPT2-1-1", vocab_size=tok.vocab_size, n_ctx=256)
    exp = train(mc, TrainConfig(letter_targets="expected", **cfg), OnlineProblems(GEN, tok), str(tmp_path / "e"))
    smp = train(mc, TrainConfig(**cfg), OnlineProblems(GEN, tok), str(tmp_path / "s"))
    le, ls = [h["loss"] for h in exp["history"]], [h["loss"] for h in smp["history"]]
    assert le[-1] < le[0] and le != ls
    assert le[0] == pytest.approx(ls[0], rel=0.05)  # at init every letter costs about log V either way

    class Rows:
        def batches(self, *a, **k):
            raise AssertionError("not reached")

    with pytest.raises(ConfigError, match="letter_targets"):
        train(mc, TrainConfig(letter_targets="expected", **cfg), Rows(), str(tmp_path / "x"))
    with pytest.raises(ConfigError, match="letter_targets"):
        TrainConfig(letter_targets="uniform")


def test_letter_targets_enter_the_train_hash_only_when_set():
    """At its default the option is absent from the hash (the pinned step ids of tests/test_step_ids.py stay)."""
    from physlm.store.steps import step_hash

    assert step_hash("train", TrainConfig(letter_targets="sampled")) == step_hash("train", TrainConfig())
    assert step_hash("train", TrainConfig(letter_targets="expected")) != step_hash("train", TrainConfig())
