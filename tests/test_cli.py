"""The two orchestration-free commands: ``physlm sample`` and ``physlm check`` (README §6 contract)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PHYSLM = [sys.executable, "-m", "flows"]


def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*PHYSLM, *args], input=input, capture_output=True, text=True, timeout=120)


def test_sample_then_check_everything_correct():
    out = run("sample", "--family", "med", "--count", "20", "--seed", "3", "--format", "qp")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 20
    for r in rows:
        assert {"id", "family", "format", "op", "ip", "problem", "solution", "answer"} <= set(r)
        assert r["format"] == "qp" and r["family"] == "med" and r["split"] == "train"
        assert r["solution"].count(";") == r["op"]
    again = run("sample", "--family", "med", "--count", "20", "--seed", "3", "--format", "qp")
    assert again.stdout == out.stdout  # deterministic by seed
    verdicts = [json.loads(v) for v in run("check", input=out.stdout).stdout.splitlines()]
    assert len(verdicts) == 20 and all(v["correct"] for v in verdicts)
    assert [v["answer"] for v in verdicts] == [r["answer"] for r in rows]


def test_sample_forced_op_test_split_and_reask():
    out = run("sample", "--family", "hard", "--count", "3", "--op", "28", "--split", "test")
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert all(r["op"] == 28 and r["split"] == "test" for r in rows)
    out = run("sample", "--count", "3", "--op", "20", "--reask", "--split", "all")
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert all(r["reask"] and r["base_op"] == 20 for r in rows)


def test_check_bad_lines_get_verdicts_not_crashes(tmp_path):
    good = json.loads(run("sample", "--count", "1").stdout)
    lines = [
        "not json",
        json.dumps([1, 2]),
        json.dumps({"problem": good["problem"]}),
        json.dumps({"problem": "garbage text", "solution": "x"}),
        json.dumps({"problem": good["problem"], "solution": good["solution"][:-9], "answer": good["answer"]}),
        json.dumps({"problem": good["problem"], "solution": good["solution"], "answer": 99, "id": "k"}),
    ]
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(lines) + "\n")
    out = run("check", "--input", str(f))
    assert out.returncode == 0 and "Traceback" not in out.stderr
    v = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(v) == 6 and not any(x["correct"] for x in v)
    assert [x["errors"][0]["kind"] for x in v[:4]] == ["bad_input"] * 4
    assert v[5]["id"] == "k" and "answer_mismatch" in {e["kind"] for e in v[5]["errors"]}


@pytest.mark.parametrize(
    "args,needle",
    [
        (("sample", "--family", "nope"), "unknown family"),
        (("sample", "--format", "xx"), "format"),
        (("sample", "--reask"), "reask"),
        (("sample", "--op", "400"), "op"),
        (("check", "--input", "/nonexistent/file"), "cannot read"),
    ],
)
def test_bad_arguments_one_line_error(args, needle):
    out = run(*args)
    assert out.returncode != 0 and needle in out.stderr and "Traceback" not in out.stderr
