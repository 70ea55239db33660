"""SQL over step outputs: the problems view on local disk and on S3 (moto); read-only; finished steps only."""

import os
import shutil
import subprocess
import sys

import pytest

from physlm.presets import resolve
from physlm.sql.warehouse import QueryError, query
from physlm.stages.generate import plan as generate_steps
from physlm.stages.generate import run as run_generate

SMALL = [
    "data.train_shards=2",
    "data.problems_per_shard=10",
    "data.test_problems=5",
    "data.seen_problems=0",
    "data.ood_ops=5",
]
COUNTS = "select family, split, count(*) as n from problems group by all order by all"


def generate():
    return [run_generate(s) for s in generate_steps(resolve("tiny", SMALL))]


def test_empty_root_has_an_empty_problems_view(root):
    assert query(COUNTS).num_rows == 0


def test_problems_view_local(root):
    paths = generate()
    rows = query(COUNTS).to_pylist()
    # train (20), test_seen and test_reask_seen (5 each) are split=train; the other test sets (4 x 5) split=test
    assert rows == [{"family": "tiny", "split": "test", "n": 20}, {"family": "tiny", "split": "train", "n": 30}]
    steps = query("select dataset, step, count(*) as n from problems group by all").to_pylist()
    assert {r["step"] for r in steps} == {p.rsplit("/", 1)[1] for p in paths}
    assert {r["dataset"]: r["n"] for r in steps}["test_op5"] == 5


def test_unfinished_steps_are_invisible(root):
    paths = generate()
    torn = os.path.join(root, "generate", "00000000")
    shutil.copytree(paths[0], torn)
    os.remove(os.path.join(torn, "_SUCCESS"))
    assert sum(r["n"] for r in query(COUNTS).to_pylist()) == 50


def test_problems_view_on_s3_via_cli(s3_root):
    generate()
    out = subprocess.run(
        [sys.executable, "-m", "flows", "sql", COUNTS, "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ['"family","split","n"', '"tiny","test",20', '"tiny","train",30']


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT * FROM problems) TO '{root}/generate/evil.parquet' (FORMAT parquet)",
        "CREATE TABLE t AS SELECT * FROM problems",
        "SELECT 1; COPY (SELECT 1) TO '{root}/x.csv'",
        "EXPLAIN ANALYZE COPY (SELECT 1) TO '{root}/x.csv'",
        "ATTACH '{root}/x.duckdb' AS x",
        "INSTALL httpfs",
        "SET enable_external_access = true",
        "EXPORT DATABASE '{root}/dump'",
    ],
)
def test_queries_cannot_write(root, sql):
    generate()
    before = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
    with pytest.raises(QueryError, match="only read-only queries|exactly one statement"):
        query(sql.format(root=root))
    assert sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs) == before


def test_read_only_statements_work_and_errors_are_one_line(root):
    generate()
    assert query("describe problems").num_rows > 30
    assert query("with t as (select op from problems where not reask) select max(op) as m from t").to_pylist() == [
        {"m": 5}
    ]
    assert query("summarize select op from problems").num_rows == 1
    with pytest.raises(QueryError) as e:
        query("select nope from problems")
    assert "nope" in str(e.value) and "\n" not in str(e.value)


def test_cli_sql_formats_and_errors(root):
    generate()
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "flows", "sql", *a],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    out = run("select dataset, count(*) as n from problems group by all order by 1", "--format", "json")
    assert out.returncode == 0 and out.stdout.splitlines()[0] == '{"dataset": "test_id", "n": 5}'
    out = run("select count(*) as n from problems")
    assert out.returncode == 0 and "50" in out.stdout
    bad = run("copy (select 1) to 'x.csv'")
    assert (
        bad.returncode == 2 and bad.stderr.startswith("physlm: error: only read-only") and "Traceback" not in bad.stderr
    )
    assert run("select 1", "--format", "xml").returncode == 2


WIDE = (
    "select 'GPT2-12-12-s0' as model, 'checkpoint-a1b2c3d4e5f6' as checkpoint_id, 'test_reask' as test_set, "
    "3.3e-17 as ci_low, 0.987654321::DOUBLE as ci_high, 1234 as n_generations_counted, [0.25, 0.5] as xs"
)


def test_cli_sql_table_fits_any_width_and_cuts_nothing(root):
    def run(*a, columns):
        return subprocess.run([sys.executable, "-m", "flows", "sql", *a], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "COLUMNS": str(columns)})  # fmt: skip

    names = ["model", "checkpoint_id", "test_set", "ci_low", "ci_high", "n_generations_counted", "xs"]
    values = ["GPT2-12-12-s0", "checkpoint-a1b2c3d4e5f6", "test_reask", "0.000", "0.988", "1234", "[0.250, 0.500]"]
    for columns in (80, 300):
        out = run(WIDE, columns=columns)
        assert out.returncode == 0, out.stderr
        assert all(len(line) <= columns for line in out.stdout.splitlines())
        words = out.stdout.replace("|", " ").split()
        assert all(n in words for n in names) and all(v in out.stdout for v in values), out.stdout
        assert "…" not in out.stdout and "3.3e-17" not in out.stdout
    assert "-[ row 1 ]" in run(WIDE, columns=80).stdout  # too wide for 80 columns: one line per column
    md = run(WIDE, "--format", "markdown", columns=80).stdout.splitlines()
    assert md[0] == "| " + " | ".join(names) + " |" and md[2] == "| " + " | ".join(values) + " |"
    csv = run(WIDE, "--format", "csv", columns=80).stdout
    assert "3.3e-17" in csv or "3.3E-17" in csv  # full precision outside the table formats
    listing = run("--list", columns=80).stdout
    from physlm.config import QUERIES
    from physlm.tables import VIEWS

    assert all(f"  {v[0]} " in listing for v in VIEWS) and all(f"  {q} " in listing for q in QUERIES)
