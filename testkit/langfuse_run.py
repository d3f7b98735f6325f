"""An eval suite as a Langfuse dataset run with scores, when LANGFUSE_* configure Langfuse.

The dataset holds one item per recorded run (input: agent and prompt; expected output: the recorded one). The
run is a Langfuse experiment over those items: each item's trace carries the new output, and its scores are
`regression` (1 = regressed), `output_equal`, `tools_same` and `cost_usd`.
"""

from __future__ import annotations

from typing import Any

from config.sections import LangfuseSettings
from testkit.evaluate import EvalResult

SCORES = ("regression", "output_equal", "tools_same", "cost_usd")


def scores_of(result: EvalResult) -> dict[str, float]:
    """The numbers a case gets in Langfuse."""
    return {
        "regression": float(result.regression),
        "output_equal": float(result.output_check == "equal"),
        "tools_same": float(not result.tool_diff),
        "cost_usd": result.report.cost_usd,
    }


def write_dataset_run(config: LangfuseSettings, dataset: str, run_name: str, results: list[EvalResult]) -> str:
    """Create (or reuse) `dataset` with the suite's items and record the run `run_name` with scores; its id."""
    from langfuse import Evaluation, Langfuse
    from opentelemetry.sdk.trace import TracerProvider

    # A provider of its own: the experiment's traces go to Langfuse, not into the worker's tracing.
    client = Langfuse(
        public_key=config.public_key,
        secret_key=config.secret_key,
        base_url=config.base_url,
        tracer_provider=TracerProvider(),
    )
    client.create_dataset(name=dataset, description="Regression suite of archived agent runs (python -m testkit eval)")
    by_item: dict[str, EvalResult] = {}
    items = []
    for result in results:
        item_id = f"{dataset}:{result.case.workflow_id}"
        by_item[item_id] = result
        items.append(
            client.create_dataset_item(
                dataset_name=dataset,
                id=item_id,
                input={"agent": result.case.agent, "prompt": result.case.prompt},
                expected_output=result.case.output,
                metadata={"workflow_id": result.case.workflow_id, "status": result.case.status},
            )
        )

    def task(*, item: Any, **_: Any) -> Any:
        return by_item[item.id].report.output

    def evaluator(*, output: Any, metadata: Any = None, **_: Any) -> list[Evaluation]:
        result = by_item[f"{dataset}:{metadata['workflow_id']}"]
        return [
            Evaluation(name=name, value=value, comment="; ".join(result.reasons) or None)
            for name, value in scores_of(result).items()
        ]

    outcome = client.run_experiment(name=dataset, run_name=run_name, data=items, task=task, evaluators=[evaluator])
    client.flush()
    client.shutdown()
    return str(getattr(outcome, "experiment_id", "") or getattr(outcome, "dataset_run_id", "") or run_name)
