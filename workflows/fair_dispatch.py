"""Fair dispatch for runs started without a fairness key: their activities carry the run's customer as the key.

A run started through the gateway has `Priority(fairness_key=<customer>, fairness_weight=...)`
(models/spend_limits.py `fairness`) and its activities inherit it. A run started from the CLI or the SDK without
`priority=` has none, so its model calls were dispatched first come, first served beside every customer's. Its
activities now carry its customer (the `CustomerId` the run publishes at its start; `-` without one) as fairness
key, at the server's default weight (1.0, or the task queue's fairness config). Its workflow tasks stay keyless: a
run's own priority is fixed by its starter.

Replay: the SDK compares a replayed activity command with its recorded event by activity id and type only, not by
priority, so histories recorded without the key replay on this code (tests/test_replay.py), and a running
workflow's activities scheduled after an upgrade carry the key.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import Priority

with workflow.unsafe.imports_passed_through():
    from models.search_attributes import CUSTOMER_ID
    from models.spend_limits import fairness_key


def activity_priority() -> Priority:
    """The priority of an activity this run schedules: inherited when the run has a fairness key, else its customer's."""
    info = workflow.info()
    if info.priority.fairness_key:
        return Priority.default  # every field unset: the run's own key and weight, inherited
    return Priority(fairness_key=fairness_key(info.typed_search_attributes.get(CUSTOMER_ID)))
