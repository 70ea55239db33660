"""The GPU runbook's script (benchmarks/gpu_train.py) runs end to end: train, evaluate, probe (CPU dry run)."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_script_dry_run_trains_evaluates_and_probes(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_train.py"), "--dry-run"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert re.search(r"GPT2-2-2 n_ctx 256 batch 4 \(micro 2\) on cpu: [\d,]+ tokens/s, final loss \d", text)
    assert re.search(r"eval test_id op all: fully correct \d+\.\d%.*answers \d+\.\d%, n=8", text)
    assert re.search(r"eval test_op4 op all: fully correct .*n=8", text)
    for name in ("vprobe", "random_init"):
        assert re.search(rf"probe nece {name}: accuracy \d+\.\d% \(majority \d+\.\d%\), MCC .*n=\d+", text)
