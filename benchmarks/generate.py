"""Generator and checker speed on one core, and the training distribution against igsm-spec.md A.4/A.9.

    python benchmarks/generate.py            # 3,000 med + 3,000 hard (about a minute)
    python benchmarks/generate.py --n 10000  # the issue's 10,000 + 10,000

The baseline is the authors' generator as measured in the spec (A.9: ~0.047 s per med training problem
on one CPython core, i.e. ~21 problems/s; ~0.076 s per hard problem): it cannot be fetched on this offline
machine, so the ratio is against those recorded figures, not a same-process run.
"""

from __future__ import annotations

import argparse
import statistics as st
import time
from collections import Counter

from physlm.igsm.check import check
from physlm.igsm.config import HARD, MED, GenConfig
from physlm.igsm.generate import generate
from physlm.igsm.parse import parse_problem

REFERENCE_PER_S = {"med": 1 / 0.047, "hard": 1 / 0.076}
# spec A.4 / A.9 measurements of the authors' generator [M]
SPEC = {
    "med": dict(
        ip_mean=9.0,
        depth={2: 0.39, 3: 0.34, 4: 0.27},
        indeg={1: 0.57, 2: 0.26, 3: 0.11, 4: 0.06},
        abstract_query=0.41,
        nece_inst=3.5,
        unnece=5.5,
        nece_abs=1.2,
        childless=0.09,
    ),
    "hard": dict(
        ip_mean=10.7,
        depth=None,
        indeg={1: 0.57, 2: 0.26, 3: 0.11, 4: 0.06},
        abstract_query=None,
        nece_inst=4.4,
        unnece=6.5,
        nece_abs=1.4,
        childless=0.09,
    ),
}


def stats(problems, max_op):
    n = len(problems)
    ops = Counter(p.op for p in problems)
    indeg, depth = Counter(), Counter()
    absq = child = 0
    ni, nu, na, words_p, words_s = [], [], [], [], []
    for p in problems:
        g = p.graph
        nec = set(g.order)
        depth[g.d] += 1
        for x, k in enumerate(g.params):
            if k[0] == 0:
                indeg[len(g.preds[x]) + g.rng[x]] += 1
        absq += g.params[g.query][0] == 1
        child += any(g.params[x][0] == 1 and not g.preds[x] for x in nec)
        ni.append(sum(1 for x in nec if g.params[x][0] == 0))
        na.append(sum(1 for x in nec if g.params[x][0] == 1))
        nu.append(sum(1 for x in range(g.n) if x not in nec and g.params[x][0] == 0))
        words_p.append(len(p.problem.split()))
        words_s.append(len(p.solution.split()))
    tot = sum(indeg.values())
    law = {k: (2 * (max_op - k) + 1) / max_op**2 for k in range(1, max_op + 1)}
    return dict(
        op_hist={k: (round(ops[k] / n, 4), round(law[k], 4)) for k in range(1, max_op + 1)},
        ip_mean=round(st.mean(p.ip for p in problems), 2),
        ip_max=max(p.ip for p in problems),
        depth={k: round(v / n, 3) for k, v in sorted(depth.items())},
        indeg={k: round(v / tot, 3) for k, v in sorted(indeg.items())},
        abstract_query=round(absq / n, 3),
        nece_inst=round(st.mean(ni), 2),
        unnece=round(st.mean(nu), 2),
        nece_abs=round(st.mean(na), 2),
        childless=round(child / n, 3),
        words_problem=round(st.mean(words_p), 1),
        words_solution=round(st.mean(words_s), 1),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    args = ap.parse_args()
    for fam in (MED, HARD):
        cfg = GenConfig(family=fam)
        t = time.perf_counter()
        problems = [generate(cfg, seed) for seed in range(args.n)]
        gen_s = args.n / (time.perf_counter() - t)
        t = time.perf_counter()
        ok = sum(check(p.graph, p.solution, p.answer).correct for p in problems)
        check_s = args.n / (time.perf_counter() - t)
        t = time.perf_counter()
        for p in problems:
            parse_problem(p.problem)
        parse_s = args.n / (time.perf_counter() - t)
        ref = REFERENCE_PER_S[fam.name]
        print(f"== {fam.name} (train distribution, {args.n} problems, one core)")
        print(
            f"generate: {gen_s:8.0f} problems/s  = {gen_s / ref:5.1f}x the authors' generator ({ref:.0f}/s, spec A.9)"
        )
        print(f"check:    {check_s:8.0f} solutions/s ({ok}/{args.n} generated solutions judged correct)")
        print(f"parse:    {parse_s:8.0f} problem texts/s")
        got = stats(problems, fam.max_op)
        spec = SPEC[fam.name]
        for key, value in got.items():
            ref_value = spec.get(key)
            print(f"  {key:15s} ours {value}" + (f"   spec {ref_value}" if ref_value is not None else ""))
        chi2 = sum((v[0] - v[1]) ** 2 / v[1] for v in got["op_hist"].values()) * args.n
        print(f"  op law chi2 = {chi2:.1f} on {fam.max_op - 1} dof (min of two U{{1..{fam.max_op}}})")


if __name__ == "__main__":
    main()
