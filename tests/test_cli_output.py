"""What a user sees from `physlm run`: no warning about things they never configured, and a cached rerun that
ends in a short summary naming every step as cached (Prefect's full log with --verbose)."""

import os
import subprocess
import sys

from test_flows import SMALL

from physlm import plan
from physlm.presets import resolve


def _cli(*args, env):
    return subprocess.run([sys.executable, "-m", "flows", *args], capture_output=True, text=True, timeout=600,
                          env=env)  # fmt: skip


def test_run_is_quiet_and_a_cached_rerun_is_a_short_summary(prefect_harness, root):
    env = {**os.environ, "PREFECT_API_URL": prefect_harness}
    sets = [x for kv in SMALL for x in ("--set", kv)]
    first = _cli("run", *sets, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    second = _cli("run", *sets, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    for out in (first, second):
        assert "WARNING" not in out.stdout + out.stderr, out.stdout + out.stderr
    lines = (second.stdout + second.stderr).strip().splitlines()
    assert len(lines) <= 30, "\n".join(lines)
    steps = plan.steps(resolve("tiny", SMALL))
    assert lines[0] == f"tiny: {len(steps)} steps, 0 ran, {len(steps)} cached"
    for stage, step in steps:
        line = next(x for x in lines if step.id in x)
        assert line.split()[:3] == [stage, step.id, "cached"] and line.endswith(step.path())
    assert lines[-1] == f"report: {os.path.join(root, 'report', 'index.html')}"
    loud = _cli("run", *sets, "--verbose", env=env)
    assert loud.returncode == 0 and "Finished in state" in loud.stdout + loud.stderr  # Prefect's own lines


def test_dry_run_prints_the_plan_and_writes_nothing(prefect_harness, root):
    env = {**os.environ, "PREFECT_API_URL": prefect_harness}
    out = _cli("train", "--preset", "tiny", *[x for kv in SMALL for x in ("--set", kv)], "--dry-run", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    steps = plan.steps(resolve("tiny", SMALL), "train")
    for stage, step in steps:
        assert f"{stage}" in out.stdout and step.id in out.stdout
    assert out.stdout.count("will-run") == len(steps) == 9 and not os.path.exists(root)  # 8 datasets, train
    sweep = _cli("sweep", "--preset", "grid-tiny", "--set", "train.steps=2", "--dry-run", env=env)
    assert sweep.returncode == 0 and "sweep plan for preset grid-tiny: 4 shapes x 2 seeds = 8 cells" in sweep.stdout
    assert "fan-out off (auto): cells run in this flow run" in sweep.stdout  # no `cell` deployment on this server
