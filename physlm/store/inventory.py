"""What a root holds: every step folder under `PHYSLM_ROOT` (local or s3://), finished or not, at a glance.

``list_steps(root)`` walks ``{root}/{name}/`` for every step name and returns one row per folder: the step's
name and id, its state — ``done`` (``_SUCCESS`` and every file the size step.json records), ``damaged`` (done,
but a file is missing or of another size: a quick check that reads no file; ``physlm repair`` hashes them),
``unfinished`` (no ``_SUCCESS``: being written, killed, or the staging folder ``.parts-{hash}`` of a step
written in parts) — its size, when it finished, and the preset (and overrides) that made it, as the flows
record it in step.json (``made_by``; "–" for steps made before physlm recorded it or by library calls).
``physlm steps`` prints them.
"""

from __future__ import annotations

import pyarrow as pa

from physlm.store import steps, storage

NOT_STEPS = ("registry", "report")
"""Folders of the root that hold no steps."""

SCHEMA = pa.schema([
    ("name", pa.string()), ("step", pa.string()), ("state", pa.string()), ("bytes", pa.int64()),
    ("size", pa.string()), ("finished", pa.string()), ("preset", pa.string()), ("path", pa.string()),
    ("problem", pa.string()),
])  # fmt: skip


def list_steps(root: str | None = None) -> pa.Table:
    """One row per step folder under ``root`` (default `PHYSLM_ROOT`), by name then id (module docstring)."""
    root = storage.root() if root is None else root
    rows = []
    for name_dir in storage.listdir(root):
        name = name_dir.rsplit("/", 1)[1]
        if name in NOT_STEPS:
            continue
        for folder in storage.listdir(name_dir, hidden=True):
            leaf = folder.rsplit("/", 1)[1]
            if leaf.startswith(".") and not leaf.startswith((".parts-", ".tmp-")):
                continue  # locks and other dot-files
            rows.append(_row(name, leaf, folder))
    rows.sort(key=lambda r: (r["name"], r["step"]))
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def _row(name: str, leaf: str, folder: str) -> dict:
    h = leaf.split("-")[1] if leaf.startswith(".") else leaf
    row = {"name": name, "step": f"{name}-{h}", "path": folder, "bytes": storage.tree_size(folder),
           "finished": "–", "preset": "–", "problem": None}  # fmt: skip
    if not storage.exists(storage.join(folder, steps.SUCCESS)):
        what = "staging folder of a step written in parts" if leaf.startswith(".parts-") else "no _SUCCESS"
        row.update(state="unfinished", problem=what)
    else:
        info = steps.read_info(folder)
        bad = steps.quick_damage(folder)
        problem = "; ".join(f"{f}: {w}" for f, w in bad.items()) or None
        row.update(state="damaged" if bad else "done", finished=info.get("ended_at", "–")[:16].replace("T", " "),
                   preset=_preset(info.get("made_by")), problem=problem)  # fmt: skip
    row["size"] = _human(row["bytes"])
    return row


def _preset(made_by: dict | None) -> str:
    if not made_by:
        return "–"
    overrides = " ".join(made_by.get("overrides") or [])
    return f"{made_by.get('preset', '?')}" + (f" {overrides}" if overrides else "")


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
