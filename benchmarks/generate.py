"""Generator and checker speed on one core, and the training distribution against igsm-spec.md A.4/A.9.

    python benchmarks/generate.py            # 3,000 med + 3,000 hard (about a minute)
    python benchmarks/generate.py --n 10000  # the issue's 10,000 + 10,000

Two rates per family: in process (``generate`` in a loop) and whole process (``physlm sample --family F
--count N`` to /dev/null, pinned to one core with ``taskset -c 0`` where it exists: start-up, JSON output and
all); each with the rejection loop's draws in C (physlm/igsm/draws.py, the default when the extension is built)
and, as the in-run baseline, every draw in Python (``PHYSLM_NATIVE_DRAWS=0``, the generator before the C path).

The authors' generator cannot be fetched on this offline machine, so the ratios divide by recorded figures, each
named where it is printed:
- med: 31.5 problems/s, the authors' generator measured whole process on one core of an idle machine of this
  type (issue 17; 23-29/s under load); the spec's older A.9 figure is 21/s (0.047 s per problem);
- hard: 13.2/s, spec A.9 (0.076 s per problem, measured elsewhere): no same-machine figure exists; scaled by
  the med figures' 31.5 / 21 it would be 19.7/s, and that ratio is printed too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics as st
import subprocess
import sys
import time
from collections import Counter

from physlm import machine
from physlm.igsm import draws
from physlm.igsm.check import check
from physlm.igsm.config import HARD, MED, GenConfig
from physlm.igsm.generate import generate
from physlm.igsm.parse import parse_problem

ANCHORS = {  # (problems/s of the authors' generator, where the figure comes from)
    "med": [(31.5, "measured idle on this machine type, issue 17"), (1 / 0.047, "spec A.9")],
    "hard": [(1 / 0.076, "spec A.9"), (31.5 / 21 / 0.076, "spec A.9 x med's 31.5/21")],
}
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


PIN = ["taskset", "-c", "0"] if shutil.which("taskset") else []
PIN_NOTE = ", taskset -c 0" if PIN else ""


def whole_process(family: str, n: int, native: bool) -> float:
    """Problems/s of ``physlm sample --family F --count n`` as a fresh process, output to /dev/null; ``native``
    False sets PHYSLM_NATIVE_DRAWS=0 (every draw in Python)."""
    code = "import sys; from flows.cli import main; sys.argv[0] = 'physlm'; main()"
    cmd = [*PIN, sys.executable, "-c", code, "sample", "--family", family, "--count", str(n)]
    env = {**os.environ, "PHYSLM_NATIVE_DRAWS": "1" if native else "0"}
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, env=env)
    return n / (time.perf_counter() - t)


def in_process(cfg: GenConfig, n: int, native: bool) -> tuple[float, list]:
    with draws.native(native):
        t = time.perf_counter()
        problems = [generate(cfg, seed) for seed in range(n)]
        return n / (time.perf_counter() - t), problems


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    args = ap.parse_args()
    print(machine.describe())
    if not draws.available():
        print("physlm.igsm._draws is not built: both paths below are Python's")
    for fam in (MED, HARD):
        cfg = GenConfig(family=fam)
        gen_s, problems = in_process(cfg, args.n, native=True)
        py_s, py_problems = in_process(cfg, args.n, native=False)
        assert py_problems == problems, "the C draws and the Python draws made different problems"
        t = time.perf_counter()
        ok = sum(check(p.graph, p.solution, p.answer).correct for p in problems)
        check_s = args.n / (time.perf_counter() - t)
        t = time.perf_counter()
        for p in problems:
            parse_problem(p.problem)
        parse_s = args.n / (time.perf_counter() - t)
        whole_s = whole_process(fam.name, args.n, native=True)
        whole_py = whole_process(fam.name, args.n, native=False)
        print(f"== {fam.name} (train distribution, {args.n} problems, one core)")
        print(f"generate: {gen_s:8.0f} problems/s in process; {py_s:.0f}/s with every draw in Python ", end="")
        print(f"(PHYSLM_NATIVE_DRAWS=0): {gen_s / py_s:.2f}x, the same problems")
        print(f"sample:   {whole_s:8.0f} problems/s whole process (physlm sample{PIN_NOTE}); ", end="")
        print(f"{whole_py:.0f}/s with every draw in Python: {whole_s / whole_py:.2f}x")
        for ref, source in ANCHORS[fam.name]:
            print(f"          = {whole_s / ref:5.1f}x the authors' generator at {ref:.1f}/s ({source})")
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
