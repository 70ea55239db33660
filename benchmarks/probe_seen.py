"""The probe stage's probes tested on `test_seen` instead of `test_id`: the same trained model, probe config,
training problems and seeds; only the test problems change (fresh problems of the training templates).

    PHYSLM_ROOT=DIR python benchmarks/probe_seen.py [--preset tiny] [--set KEY=VALUE ...] [--json OUT]

Needs a root where the preset's train and generate steps have finished (e.g. after `physlm run`). Prints, per
task, the MCC and accuracy of the V-probe and its baselines on the whole test slice, and the majority
baseline's accuracy. Writes nothing under the root: the probe step's own output (tested on `test_id`, the
paper's unseen-template split) stays the one the SQL views and the report read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

from physlm.presets import resolve
from physlm.stages import generate, probe
from physlm.store.shards import read_shards


def measure(preset: str, overrides: list[str]) -> dict:
    """``{task: {baseline: {mcc, accuracy, n, majority}}}`` of the probes tested on test_seen."""
    p = resolve(preset, overrides)
    if not p.data.test_seen:
        raise SystemExit(f"preset {preset}: data.test_seen is off, there is no test_seen set")
    step = probe.probe_step(p)
    x = probe.load_inputs(step)
    seen = generate.dataset_step(p, "test_seen")
    x.test_rows = read_shards(seen.path()).slice(0, step.config.test_problems).to_pylist()
    _, metrics, _ = probe.fit(dataclasses.replace(step.config, layers=()), x)
    out: dict = {}
    for m in metrics:
        if m["slice"] == "all":
            out.setdefault(m["task"], {})[m["baseline"]] = {
                "mcc": m["mcc"],
                "accuracy": m["accuracy"],
                "n": m["n"],
                "majority": m["majority_accuracy"],
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="preset overrides")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()
    t = time.perf_counter()
    out = measure(args.preset, args.set)
    print(f"{'task':10s} {'vprobe':>8s} {'random':>8s} {'linear':>8s}  (MCC on test_seen; accuracy, majority)")
    for task, by in out.items():
        mccs = [by.get(b, {}).get("mcc") for b in ("vprobe", "random_init", "linear")]
        cells = " ".join(f"{v:8.3f}" if v is not None else f"{'-':>8s}" for v in mccs)
        v = by["vprobe"]
        print(f"{task:10s} {cells}  ({v['accuracy']:.3f}, majority {v['majority']:.3f}, n={v['n']})")
    print(f"{time.perf_counter() - t:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
