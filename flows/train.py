"""The train flow: the data it needs (generate flow, cached after the first run), then the model (GPU pool)."""

from __future__ import annotations

from prefect import flow

from flows.generate import generate
from physlm import stages
from physlm.presets import resolve
from tasks.train import train as train_task


@flow(name="train", log_prints=True)
def train(preset: str = "tiny", overrides: list[str] = [], dry_run: bool = False,  # noqa: B006
          force: bool = False) -> str:
    """Train `preset`'s model; `force` retrains from scratch (upstream data stays cached)."""
    p = resolve(preset, overrides)
    step = stages.train_step(p)
    status = "cached" if step.done() and not force else "will-run"
    print(f"train plan: {step.id} ({p.model.shape}, {p.train.steps} steps) {status}")
    generate(preset=preset, overrides=overrides, dry_run=dry_run)
    if dry_run:
        return step.path()
    path = train_task(preset, overrides, force=force)
    print(f"train: {path}")
    return path


if __name__ == "__main__":
    train(preset="tiny")
