"""The evaluate flow: greedy/beam decoding of every test set, full-solution checking. A skeleton until issue 5: it runs what it needs upstream (the generate
flow, cached after the first run) and says that the stage itself is not implemented yet."""

from __future__ import annotations

from prefect import flow

from flows.common import not_implemented
from flows.generate import generate


@flow(name="evaluate", log_prints=True)
def evaluate(preset: str = "tiny", overrides: list[str] = [], dry_run: bool = False,  # noqa: B006
             force: bool = False) -> dict[str, str]:
    """Stage evaluate for `preset`; `force` reruns this stage only (upstream steps stay cached)."""
    data = generate(preset=preset, overrides=overrides, dry_run=dry_run)
    not_implemented("evaluate", 5)
    return data


if __name__ == "__main__":
    evaluate(preset="tiny")
