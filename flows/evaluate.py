"""The evaluate flow: data and model upstream (cached), then decoding + full-solution checking of every
test set; prints the accuracy table and publishes it as a Prefect markdown artifact."""

from __future__ import annotations

from prefect import flow

from flows.common import publish
from flows.train import train
from physlm import stages
from physlm.presets import resolve
from tasks.evaluate import evaluate as evaluate_task


@flow(name="evaluate", log_prints=True)
def evaluate(preset: str = "tiny", overrides: list[str] = [], dry_run: bool = False,  # noqa: B006
             force: bool = False) -> str:
    """Evaluate `preset`'s model on its test sets; `force` reruns this stage only."""
    p = resolve(preset, overrides)
    train(preset=preset, overrides=overrides, dry_run=dry_run)
    step = stages.evaluate_step(p)
    status = "cached" if step.done() and not force else "will-run"
    print(f"evaluate plan: {step.id} ({', '.join(p.evaluate.decodings)}) {status}")
    if dry_run:
        return step.path()
    path = evaluate_task(preset, overrides, force=force)
    publish(path, "accuracy.md", "accuracy", f"Accuracy ({p.name})")
    return path


if __name__ == "__main__":
    evaluate(preset="tiny")
