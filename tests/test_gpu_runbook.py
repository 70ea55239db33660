"""The GPU runbook's script (benchmarks/gpu_train.py) runs end to end: train, evaluate, probe (CPU dry run)."""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_script_dry_run_trains_evaluates_and_probes(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_train.py"), "--dry-run",
                          "--probe-tasks", "nece,known", "--json", str(tmp_path / "fig.json")],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert re.search(r"GPT2-2-2 n_ctx 256 batch 4 \(micro 2\) on cpu: [\d,]+ tokens/s, final loss \d", text)
    assert re.search(r"eval test_id op all: fully correct \d+\.\d%.*answers \d+\.\d%, n=8", text)
    assert re.search(r"eval test_op4 op all: fully correct .*n=8", text)
    assert re.search(r"eval test_seen op all: fully correct .*n=8", text)
    for task in ("nece", "known"):
        for name in ("vprobe", "random_init"):
            assert re.search(rf"probe {task} {name}: accuracy \d+\.\d% \(majority \d+\.\d%\), MCC .*n=\d+", text)
    fig = json.loads((tmp_path / "fig.json").read_text())
    assert fig["family"] == "tiny" and fig["tokens_seen"] == 4 * 4 * 256 and len(fig["history"]) == 2
    assert {a["test_set"] for a in fig["accuracy"]} == {"test_id", "test_seen", "test_op4"}
    assert {(p["task"], p["model"]) for p in fig["probes"]} == {(t, m) for t in ("nece", "known")
                                                               for m in ("vprobe", "random_init")}


def test_gpu_script_rejects_an_unknown_probe_task_before_training(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_train.py"), "--dry-run",
                          "--probe-tasks", "nece,bogus"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode != 0 and "task: must be one of" in out.stderr and "got 'bogus'" in out.stderr
    assert "tokens/s" not in out.stdout
