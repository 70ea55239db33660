"""The sweep flow: the depth x width grid of a preset (`grid-tiny`, `grid-size1`, `grid-size2`), one
model shape "GPT2-l-h" per cell. A skeleton until issue 8: it generates the data every cell shares,
lists the grid and says that training the cells is not implemented yet. Deployed on a cron schedule."""

from __future__ import annotations

from prefect import flow

from flows.common import not_implemented
from flows.generate import generate
from physlm.presets import resolve


@flow(name="sweep", log_prints=True)
def sweep(preset: str = "grid-tiny", overrides: list[str] = [], dry_run: bool = False,  # noqa: B006
          force: bool = False) -> dict[str, str]:
    """The grid of `preset`; `force` reruns the sweep's own steps only (the data stays cached)."""
    p = resolve(preset, overrides)
    print(f"sweep {p.name}: {len(p.grid)} model shapes: {', '.join(p.grid) or '(none: preset has no grid)'}")
    data = generate(preset=preset, overrides=overrides, dry_run=dry_run)
    not_implemented("sweep", 8)
    return data


if __name__ == "__main__":
    sweep(preset="grid-tiny")
