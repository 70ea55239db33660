"""The probe flow: V-probes per layer on the test sets. A skeleton until issue 6: it runs what it needs upstream (the generate
flow, cached after the first run) and says that the stage itself is not implemented yet."""

from __future__ import annotations

from prefect import flow

from flows.common import not_implemented
from flows.generate import generate


@flow(name="probe", log_prints=True)
def probe(preset: str = "tiny", overrides: list[str] = [], dry_run: bool = False,  # noqa: B006
          force: bool = False) -> dict[str, str]:
    """Stage probe for `preset`; `force` reruns this stage only (upstream steps stay cached)."""
    data = generate(preset=preset, overrides=overrides, dry_run=dry_run)
    not_implemented("probe", 6)
    return data


if __name__ == "__main__":
    probe(preset="tiny")
