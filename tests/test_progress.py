"""Progress of long work: bars on a terminal (a real pty) for generation, evaluation and probing, and periodic
log lines in the Prefect flow run's logs when not on a terminal."""

import asyncio
import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios

from test_flows import SMALL

ARGS = [x for kv in SMALL for x in ("--set", kv)]


def _run_in_pty(args, env) -> str:
    """Run the CLI with a pseudo-terminal as stdout and stderr; everything it wrote, as text."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 40 rows x 120 columns, as a window
    proc = subprocess.Popen([sys.executable, "-m", "flows", *args], stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, env=env)  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=600)
    os.close(master)
    assert proc.returncode == 0, b"".join(chunks)[-3000:]
    return b"".join(chunks).decode(errors="replace")


def test_progress_bars_on_a_terminal(prefect_harness, root):
    env = {**os.environ, "PREFECT_API_URL": prefect_harness, "COLUMNS": "120"}
    out = _run_in_pty(["probe", "--preset", "tiny", *ARGS], env)
    for label in ("generate train", "generate test_id", "evaluate test_id greedy", "probe nece"):
        assert label in out, out[-3000:]
    assert "40/40" in out and "problems" in out and "100%" in out  # the bars ran to the end


def test_progress_lines_in_the_flow_run_logs(prefect_harness, root):
    env = {**os.environ, "PREFECT_API_URL": prefect_harness, "PHYSLM_PROGRESS_EVERY": "0"}
    out = subprocess.run([sys.executable, "-m", "flows", "probe", "--preset", "tiny", *ARGS], capture_output=True,
                         text=True, timeout=600, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    lines = asyncio.run(_progress_logs(prefect_harness))
    assert any(x.startswith("generate train: 40/40 problems (100%") for x in lines), lines
    assert any(x.startswith("evaluate test_id greedy: 2/2 problems") for x in lines), lines
    assert any(x.startswith("probe nece") and "steps" in x for x in lines), lines


async def _progress_logs(api: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterName

    async with get_client() as client:
        logs = await client.read_logs(log_filter=LogFilter(name=LogFilterName(any_=["physlm.progress"])))
    return [log.message for log in logs]
