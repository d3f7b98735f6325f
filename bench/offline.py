"""What every bench process runs with: the bench's scripted model, its own files, and no real service."""

from __future__ import annotations

from pathlib import Path


def offline_env(model_url: str, root: Path) -> dict[str, str]:
    """Environment for a bench's workers and clients: Claude calls go to `model_url`, OpenAI to a dead port, and
    notes, outbox and blob store under `root`."""
    return {
        "ANTHROPIC_BASE_URL": model_url,
        "ANTHROPIC_API_KEY": "bench-key-not-real",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "OPENAI_API_KEY": "bench-key-not-real",
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
        "NOTES_DB": str(root / "notes.db"),
        "NOTIFY_OUTBOX": str(root / "outbox.jsonl"),
        "BLOB_STORE_DIR": str(root / "blobs"),
    }
