"""Golden outputs of the generator: every byte of a few hundred records per family and format is pinned.

The generator's distribution matches the authors' (benchmarks/generate.py); speed work must not move a single
problem. Each case hashes the full Parquet record (texts, labels and the whole graph) of ``n`` consecutive
seeds; a change here means every dataset a user has generated would change: never update a hash by accident.
Both paths of the rejection loop are pinned to the same hashes: the C one (physlm/igsm/draws.py) and Python's.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from physlm.igsm import draws, record
from physlm.igsm.config import HARD, MED, Family, GenConfig
from physlm.igsm.generate import generate

TINY = Family("tiny", max_op=4, max_edge=6)
CASES = {
    "med-pq": (GenConfig(family=MED), 300),
    "med-qp": (GenConfig(family=MED, format="qp"), 300),
    "hard-pq": (GenConfig(family=HARD), 200),
    "hard-qp": (GenConfig(family=HARD, format="qp"), 200),
    "med-test-op20": (GenConfig(family=MED, split="test", op=20), 50),
    "med-reask-op5": (GenConfig(family=MED, op=5, reask=True), 100),
    "med-retry": (GenConfig(family=MED, retry_rate=0.2), 100),
    "med-retry-weak": (GenConfig(family=MED, retry_rate=0.3, retry_weak=True), 100),
    "med-mild-paper": (GenConfig(family=MED, perm_level=2, bias="paper", childless=False), 100),
    "tiny-uniform": (GenConfig(family=TINY, op_dist="uniform"), 300),
    "names96-d3-w3": (
        GenConfig(family=Family("n96", max_op=8, max_edge=10, depths=(3,), widths=(3,), subcategories=1, items=6)),
        200,
    ),
    "qp-op-min": (GenConfig(family=MED, format="qp", op_min=5, perm_level=0), 100),
}
GOLDEN = {
    "med-pq": "ceda61c00f3584a9",
    "med-qp": "737608fd6a6b9e4b",
    "hard-pq": "284f5c2e56b41ea4",
    "hard-qp": "cf6cc3f821c8881c",
    "med-test-op20": "a0057f831f836647",
    "med-reask-op5": "91bff4d05ec63d56",
    "med-retry": "aa3bbfd2c74aa364",
    "med-retry-weak": "0af5390dda40d1a5",
    "med-mild-paper": "c76084632966e88c",
    "tiny-uniform": "48836334ab87845f",
    "names96-d3-w3": "07cf581af155984b",
    "qp-op-min": "c841a845dd552199",
}


def digest(cfg: GenConfig, n: int) -> str:
    h = hashlib.sha256()
    for seed in range(n):
        row = record.row(generate(cfg, seed), id=str(seed), dataset="golden")
        h.update(json.dumps(row, sort_keys=True).encode())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("native", [True, False], ids=["c-draws", "python-draws"])
@pytest.mark.parametrize("case", list(CASES))
def test_generator_output_is_pinned(case, native):
    if native and not draws.available():
        pytest.skip("physlm.igsm._draws is not built (no C compiler at install time)")
    cfg, n = CASES[case]
    with draws.native(native):
        assert digest(cfg, n) == GOLDEN[case]


if __name__ == "__main__":  # print the table above (only to add a case; an existing hash never changes)
    for name, (cfg, n) in CASES.items():
        print(f'    "{name}": "{digest(cfg, n)}",')
