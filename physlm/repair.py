"""Repair: find finished steps whose files no longer match their step.json, and recompute them.

Every finished step records the size and sha256 of each of its files in step.json (`physlm.store.steps`), and
readers check them (`steps.read_checked`), so a truncated, altered or deleted file is caught when it is
read. `scan` checks steps ahead of that: every finished step under the root, or a given list of step
folders. `repair` recomputes each damaged step through its normal runner with `force=True` (so the
damaged folder is swapped out only once a whole new output exists, as for any forced step), then checks
it again.

A step is rebuilt from its own step.json: the config class named there, the recorded config, version and
inputs (root-relative inputs are re-rooted, so a moved root repairs in place). The rebuilt step must hash
to the folder's name, else it is refused (the code changed what that config means since): rerun the flow
that made it with `--force` instead. Steps are deterministic, so a repaired step has the bytes it had
(except timestamps inside checkpoint metadata); dependents stay valid and are not rerun.

Recomputing needs the step's inputs intact: damaged inputs are repaired first (steps are processed in
pipeline order, `physlm.stages.STAGES`, whose runner recomputes each).
"""

from __future__ import annotations

import dataclasses

from physlm import stages
from physlm.store import steps, storage


class RepairError(Exception):
    """A path that is not a finished step, or a step that cannot be rebuilt from its step.json."""


@dataclasses.dataclass
class Finding:
    """One checked step: its folder, and `{file: what is wrong}` (empty when intact)."""

    path: str
    damage: dict[str, str]
    repaired: bool = False
    error: str | None = None
    """Why the repair failed (one line), if it did."""
    identical: int | None = None
    """After a repair: how many of the files recorded before came back byte-identical (of `recorded`)."""
    recorded: int | None = None

    @property
    def step_id(self) -> str:
        return "/".join(self.path.rstrip("/").rsplit("/", 2)[-2:])


# ---------------------------------------------------------------------------------------------- finding


def finished_steps(root: str | None = None) -> list[str]:
    """Every finished step folder `{root}/{name}/{hash}`, in pipeline order, then by name and hash."""
    root = storage.root() if root is None else root
    found = []
    for name_dir in storage.listdir(root):
        for folder in storage.listdir(name_dir):
            if storage.exists(storage.join(folder, steps.SUCCESS)):
                found.append(folder)
    return sorted(found, key=_order_key)


def preset_steps(preset) -> list[str]:
    """The finished step folders of a resolved preset (the stages that have run), in pipeline order."""
    from physlm import plan

    return [step.path() for _, step in plan.steps(preset) if step.done()]


def _order_key(path: str):
    name, h = path.rstrip("/").rsplit("/", 2)[-2:]
    order = stages.names()
    return (order.index(name) if name in order else len(order), name, h)


def resolve_path(path: str, root: str | None = None) -> str:
    """A step folder given absolutely, as an `s3://` URL, or relative to the root (`generate/1a2b3c4d`)."""
    root = storage.root() if root is None else root
    p = str(path).rstrip("/")
    if not (storage.is_s3(p) or p.startswith("/")):
        p = storage.join(root, p)
    if not storage.exists(storage.join(p, steps.SUCCESS)):
        raise RepairError(f"{path} is not a finished step folder (no {p}/{steps.SUCCESS})")
    return p


def scan(paths: list[str]) -> list[Finding]:
    """Check every file of each finished step folder against its step.json."""
    return [Finding(p, steps.damage(p)) for p in sorted(paths, key=_order_key)]


# ---------------------------------------------------------------------------------------------- rebuilding


def rebuild(path: str, root: str | None = None) -> steps.Step:
    """The `Step` whose folder is `path`, from its step.json; `RepairError` if it no longer hashes there."""
    try:
        return steps.load(path, root)
    except steps.StepLoadError as e:
        raise RepairError(str(e)) from None


def recompute(step: steps.Step, root: str | None = None) -> str:
    """Rerun `step` with `force=True` through its stage's runner; returns its path."""
    try:
        stage = stages.get(step.name)
    except KeyError:
        raise RepairError(
            f"{step.name}-{step.hash}: no runner for steps named {step.name!r}; delete the folder "
            "and rerun the flow that made it"
        ) from None
    return stage.run(step, force=True)


def repair(finding: Finding, root: str | None = None) -> Finding:
    """Recompute a damaged step and check it again; fills `repaired`, `identical` or `error`."""
    recorded = steps.read_info(finding.path)["files"]
    try:
        recompute(rebuild(finding.path, root), root)
    except Exception as e:  # one step's failure is reported, the others are still repaired
        finding.error = storage.scrub(f"{type(e).__name__}: {' '.join(str(e).split())[:300]}", min_len=4)
        return finding
    left = steps.damage(finding.path)
    if left:
        finding.error = f"still damaged after recomputing: {', '.join(sorted(left))}"
        return finding
    now = steps.read_info(finding.path)["files"]
    finding.repaired = True
    finding.recorded = len(recorded)
    finding.identical = sum(now.get(k, {}).get("sha256") == v["sha256"] for k, v in recorded.items())
    return finding


def describe(finding: Finding) -> str:
    """One line per damaged file: `generate/1a2b3c4d  shard_00001.parquet: 10 bytes, recorded 5321`."""
    return "\n".join(f"damaged  {finding.step_id}  {f}: {what}" for f, what in finding.damage.items())
