"""What every flow shares: the plan table they print (dry-run or not) and the placeholder stage."""

from __future__ import annotations


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table for logs (the Prefect UI shows logs in a fixed-width font)."""
    widths = [max([len(c)] + [len(str(r[c])) for r in rows]) for c in columns]
    line = lambda vals: "  ".join(str(v).ljust(w) for v, w in zip(vals, widths))  # noqa: E731
    return "\n".join([line(columns), line("-" * w for w in widths)] + [line(r[c] for c in columns) for r in rows])


def not_implemented(stage: str, issue: int) -> None:
    print(f"stage {stage}: not implemented yet (issue {issue})")


def publish(step_path: str, filename: str, key: str, title: str) -> str:
    """Print a step's markdown table and publish it as a Prefect markdown artifact; returns the markdown."""
    from prefect.artifacts import create_markdown_artifact

    from physlm import storage

    table = storage.read_bytes(storage.join(step_path, filename)).decode()
    print(table)
    create_markdown_artifact(key=key, markdown=f"# {title}\n\n{table}")
    return table
