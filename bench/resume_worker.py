"""`worker.py` for bench/resume.py, with turn-level resume switched off when `BENCH_RESUME_OFF=1`.

Off means what main did before checkpoints: a retried `invoke_agent` finds no checkpoint and runs the agent
from its first turn (both engines read their checkpoint through `Checkpoints.restore`).
Saving stays on, so the work per turn is the same in both modes; only what a retry reads differs.
Bench-only: not a product setting.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _switch_resume_off() -> None:
    from activities.black_box.checkpoint import Checkpoints

    async def nothing(self: Any) -> None:
        return None

    Checkpoints.restore = nothing  # type: ignore[assignment,method-assign]


if __name__ == "__main__":
    if os.environ.get("BENCH_RESUME_OFF") == "1":
        _switch_resume_off()
    import worker

    code = worker.main()
    from config.cli import exit_now

    exit_now(code)  # flushed, teardown skipped (sdk-python#300)
