"""The probe flow: evaluation upstream (cached; its greedy generations feed the error-analysis probes),
then V-probing of the trained model (every task, baselines, per layer); prints the metrics table and
publishes it as a Prefect markdown artifact."""

from __future__ import annotations

from prefect import flow

from flows.common import publish
from flows.evaluate import evaluate
from physlm import stages
from physlm.presets import resolve
from tasks.probe import probe as probe_task


@flow(name="probe", log_prints=True)
def probe(preset: str = "tiny", overrides: list[str] = [], dry_run: bool = False,  # noqa: B006
          force: bool = False) -> str:
    """Probe `preset`'s model; `force` reruns this stage only (upstream steps stay cached)."""
    p = resolve(preset, overrides)
    evaluate(preset=preset, overrides=overrides, dry_run=dry_run)
    step = stages.probe_step(p)
    status = "cached" if step.done() and not force else "will-run"
    layers = f", layers {','.join(map(str, p.probe.layers))}" if p.probe.layers else ""
    print(f"probe plan: {step.id} ({','.join(p.probe.tasks)}; {p.probe.steps} steps{layers}) {status}")
    if dry_run:
        return step.path()
    path = probe_task(preset, overrides, force=force)
    publish(path, "probe_metrics.md", "probe-metrics", f"Probe metrics ({p.name})")
    return path


if __name__ == "__main__":
    probe(preset="tiny")
