"""Probe stage speed: every probe of the tiny preset (its probe config: 6 tasks x {V-probe, its baselines} + the
layer-wise nece probes), as the stage ran them before vs as it runs them now.

    python benchmarks/probe.py                    # a tiny-preset root made in a temp folder (a 20-step model)
    python benchmarks/probe.py --root DIR         # an existing root where `physlm run` (tiny) has finished

Baseline, in the same process and on the same inputs: the probes one after another in this process with every
core's threads, each batch padded to its longest sequence in one pass (the stage before this change; it also
rebuilt each task's examples for every probe, which the baseline here does not: the ratio is conservative).
Now: each task's examples built once, length-sorted sub-batches on the CPU, the probes spread over a pool of
one-thread processes, one per core (``probe.processes``), the blocks compiled in the V-probes' training steps
(``probe.compile``; torch's compile cache is on disk: set TORCHINDUCTOR_CACHE_DIR to a fresh folder to time a fresh
machine).
Prints both wall times, the ratio, and how far apart the two runs' MCCs are (sub-batches and compiled kernels
change float rounding only; the probes are the same).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time

import torch

from physlm.model import probe as P
from physlm.presets import resolve
from physlm.stages import generate, probe, train


def inputs(root: str | None, overrides: list[str]):
    """The probe stage's inputs on a root (made here, with a briefly trained model, when none is given)."""
    os.environ["PHYSLM_ROOT"] = root or tempfile.mkdtemp(prefix="physlm-probe-bench-")
    preset = resolve(
        "tiny", overrides if root else ["train.steps=20", "train.compile=off", "train.progress=false", *overrides]
    )
    if not root:
        for step in generate.plan(preset):
            generate.run(step)
        train.run(train.train_step(preset))
    step = probe.probe_step(preset)
    return step.config, probe.load_fit_inputs(step)  # no evaluate step needed: fit() reads only these


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=None, help="a root with a finished tiny run (default: make one)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="preset overrides")
    args = ap.parse_args()
    cfg, x = inputs(args.root, args.set)
    whole = 10**9  # sub-batches of this many sequences: the whole batch in one pass

    def before():
        sub, P.CPU_SUB_BATCH = P.CPU_SUB_BATCH, whole
        try:
            return probe.fit(dataclasses.replace(cfg, processes=0, compile="off"), x)
        finally:
            P.CPU_SUB_BATCH = sub

    (old, _, _), t_old = timed(before)
    (new, _, _), t_new = timed(lambda: probe.fit(cfg, x))
    n = probe.processes(cfg, len(probe.jobs(cfg)))
    mcc = {}
    after = _groups(new)
    for key, group in _groups(old).items():
        a, b = (
            P.mcc([r["label"] for r in g], [r["prediction"] for r in g], P.n_classes(key[1]))
            for g in (group, after[key])
        )
        mcc[key] = (a, b)
    diffs = [abs(a - b) for a, b in mcc.values() if a is not None and b is not None]
    print(f"probes: {len(probe.jobs(cfg))} x {cfg.steps} steps, batch {cfg.batch_size}; cores {os.cpu_count()}")
    print(f"before: in process, {torch.get_num_threads()} threads, whole batches: {t_old:6.1f} s")
    print(f"now:    {n} one-thread processes, sub-batches of {P.CPU_SUB_BATCH}, compile={cfg.compile}: {t_new:6.1f} s")
    print(f"ratio: {t_old / t_new:.2f}x   MCC |before - now|: max {max(diffs):.3f}, mean {sum(diffs) / len(diffs):.3f}")


def _groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault((r["test_set"], r["task"], r["baseline"], r["layer"]), []).append(r)
    return out


if __name__ == "__main__":
    main()
