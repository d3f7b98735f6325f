"""What a workflow run costs the worker before its code runs: a fresh sandbox, with its workflow modules imported.

Every run a worker starts, and every run it takes back into its cache after an eviction, gets a new sandbox:
the workflow's module and everything it imports that is not passed through are executed again. This replays the
checked-in histories (`tests/histories/`, all three workflow types) on the product's replayer, each replay a new
sandbox, and reports the CPU per replay by workflow type, median over rounds. Nothing else runs: no server.

    python -m bench.sandbox_start [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.client import WorkflowHistory

from bench.entry import run_bench
from config.settings import Settings
from releases.gate import product_replayer

HISTORIES = Path(__file__).resolve().parents[1] / "tests" / "histories"


def load() -> list[WorkflowHistory]:
    """The checked-in histories, as the replayer reads them."""
    histories = []
    for path in sorted(HISTORIES.glob("*.json")):
        histories.append(WorkflowHistory.from_json(path.stem, json.loads(path.read_text())))
    return histories


def workflow_type(history: WorkflowHistory) -> str:
    """The type the history's first event started."""
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


async def each(histories: list[WorkflowHistory]) -> AsyncIterator[WorkflowHistory]:
    """The histories as the replayer takes them."""
    for history in histories:
        yield history


async def main(rounds: int) -> int:
    histories = load()
    replayer = product_replayer(Settings.from_env({}))
    await replayer.replay_workflow(histories[0])  # warm: the first sandbox also imports what is passed through
    per_type: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        for kind in sorted({workflow_type(h) for h in histories}):
            batch = [h for h in histories if workflow_type(h) == kind]
            started = time.process_time()
            # One replayer worker for the batch, as a worker serves many runs: each history is a new sandbox.
            await replayer.replay_workflows(each(batch))
            per_type[kind].append((time.process_time() - started) / len(batch))
    print(f"{len(histories)} histories, {rounds} rounds: CPU per replayed run (a new sandbox each), median of rounds")
    for kind, means in sorted(per_type.items()):
        spread = f"{min(means) * 1000:.1f}-{max(means) * 1000:.1f}"
        print(f"  {kind:24s} {statistics.median(means) * 1000:7.1f} ms  (rounds {spread} ms)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    run_bench(main(parser.parse_args().rounds))
