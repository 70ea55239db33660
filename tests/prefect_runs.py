"""Test helper: read a finished flow run's task runs from the Prefect API (no fixture: a plain function)."""

import asyncio
import time


def task_runs(state) -> dict[str, str]:
    """`{task run name: state name}` of the flow run that ended in `state`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read():
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            )
            return {r.name: (r.state.name if r.state else "Pending") for r in runs}

    # The server records task runs from events asynchronously: poll until two reads agree (up to ~20 s).
    last = None
    for _ in range(40):
        runs = asyncio.run(read())
        if runs == last and all(v not in ("Pending", "Running") for v in runs.values()):
            return runs
        last = runs
        time.sleep(0.5)
    return last


def flow_runs(state) -> list[str]:
    """Flow names of the flow run that ended in `state` and of every flow run nested in it (subflows)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    async def read():
        async with get_client() as client:
            root = await client.read_flow_run(state.state_details.flow_run_id)
            nested = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(operator="or_", any_=[root.id])
                )
            )
            names = {}
            for run in [root, *nested]:
                names[run.id] = (await client.read_flow(run.flow_id)).name
            return [names[root.id]] + sorted(names[r.id] for r in nested)

    return asyncio.run(read())
