"""The slow tier: 10,000 med and 10,000 hard training problems against igsm-spec.md A.4/A.9."""

from __future__ import annotations

from collections import Counter

import pytest

from physlm.igsm.config import HARD, MED, GenConfig
from physlm.igsm.generate import generate

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fam", [MED, HARD], ids=["med", "hard"])
def test_training_distribution_matches_the_authors(fam):
    n = 10_000
    problems = [generate(GenConfig(family=fam), s) for s in range(n)]
    ops = Counter(p.op for p in problems)
    top = fam.max_op
    chi2 = sum(
        (ops[k] - n * (2 * (top - k) + 1) / top**2) ** 2 / (n * (2 * (top - k) + 1) / top**2) for k in range(1, top + 1)
    )
    assert chi2 < 50, chi2  # 0.1% critical value: 36.1 (14 dof), 45.3 (20 dof)
    ip = sum(p.ip for p in problems) / n
    nece_abs = sum(sum(1 for x in p.graph.order if p.graph.params[x][0] == 1) for p in problems) / n
    expected = {"med": (9.0, 1.2), "hard": (10.7, 1.4)}[fam.name]
    assert abs(ip - expected[0]) < 0.5 and abs(nece_abs - expected[1]) < 0.15
    if fam is MED:
        depth = Counter(p.graph.d for p in problems)
        for d, share in {2: 0.39, 3: 0.34, 4: 0.27}.items():
            assert abs(depth[d] / n - share) < 0.03
