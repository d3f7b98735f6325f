"""A local stand-in for Langfuse's OTLP endpoint: decodes what the Langfuse SDK exports, for tests and demos.

It listens on 127.0.0.1, accepts `POST /api/public/otel/v1/traces` (OTLP/HTTP protobuf, gzip or not)
with the Basic auth the SDK sends, and keeps every span as a plain `SpanRecord`.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

TRACES_PATH = "/api/public/otel/v1/traces"
DATASETS_PATH = "/api/public/v2/datasets"
DATASET_ITEMS_PATH = "/api/public/dataset-items"
SCORES_PATHS = ("/api/public/scores", "/api/public/v3/scores")
PROJECTS_PATH = "/api/public/projects"
PROJECT = {"id": "fake-project", "name": "fake", "organization": {"id": "fake-org", "name": "fake"}, "metadata": {}}
"""The one project the keys belong to (the SDK asks for its id to name an experiment run)."""


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


@dataclass
class SpanRecord:
    """One exported span, reduced to what tests look at."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    scope: str
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)
    """The exporting process's resource (`service.name`, `service.version`, ...)."""

    @property
    def observation_type(self) -> str | None:
        """`generation`, `tool`, `span`... for Langfuse observations; None for Temporal's spans."""
        return self.attributes.get("langfuse.observation.type")

    def json_attribute(self, key: str) -> Any:
        """An attribute Langfuse stores as JSON text (input, output, usage, cost)."""
        raw = self.attributes.get(key)
        return json.loads(raw) if isinstance(raw, str) else raw


class FakeLangfuse:
    """Collects spans; `spans` is every span received so far, `bodies` the raw (decompressed) requests."""

    def __init__(self, public_key: str = "pk-lf-test", secret_key: str = "sk-lf-test") -> None:
        self.public_key, self.secret_key = public_key, secret_key
        self.spans: list[SpanRecord] = []
        self.bodies: list[bytes] = []
        self.rejected: list[str] = []
        self.datasets: list[dict[str, Any]] = []
        """Bodies of dataset creations (`name`, `description`, `metadata`)."""
        self.dataset_items: list[dict[str, Any]] = []
        """Bodies of dataset item creations (`datasetName`, `id`, `input`, `expectedOutput`, `metadata`)."""
        self.scores: list[dict[str, Any]] = []
        """Every score received (`name`, `value`, `traceId`, `datasetRunId`, `comment` ...)."""
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        # poll_interval: `shutdown` waits for the loop to look (0.5 s by default), at every test's end.
        serve = functools.partial(self._server.serve_forever, poll_interval=0.02)
        self._thread = threading.Thread(target=serve, daemon=True)

    @property
    def url(self) -> str:
        """Base URL for LANGFUSE_BASE_URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """The LANGFUSE_* variables that point a process here."""
        return {
            "LANGFUSE_PUBLIC_KEY": self.public_key,
            "LANGFUSE_SECRET_KEY": self.secret_key,
            "LANGFUSE_BASE_URL": self.url,
        }

    def __enter__(self) -> FakeLangfuse:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def in_trace(self, trace_id: str) -> list[SpanRecord]:
        """Spans of one trace."""
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def _accept(self, headers: Any, body: bytes) -> int:
        expected = "Basic " + base64.b64encode(f"{self.public_key}:{self.secret_key}".encode()).decode()
        if headers.get("Authorization") != expected:
            self.rejected.append("bad credentials")
            return 401
        if headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        with self._lock:
            self.bodies.append(body)
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            SpanRecord(
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                name=span.name,
                                scope=scope_spans.scope.name,
                                attributes={kv.key: _value(kv.value) for kv in span.attributes},
                                resource={kv.key: _value(kv.value) for kv in resource_spans.resource.attributes},
                            )
                        )
        return 200

    def _rest(self, path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        """The REST calls an eval's dataset run makes: datasets, their items, scores; each answered as the API does."""
        expected = "Basic " + base64.b64encode(f"{self.public_key}:{self.secret_key}".encode()).decode()
        if headers.get("Authorization") != expected:
            self.rejected.append("bad credentials")
            return 401, {"message": "unauthorized"}
        data = json.loads(body or b"null")
        now = "2026-01-01T00:00:00.000Z"
        with self._lock:
            if path == DATASETS_PATH:
                self.datasets.append(data)
                stored = {"id": f"ds-{data['name']}", "projectId": "fake", "createdAt": now, "updatedAt": now}
                return 200, {"metadata": None, **data, **stored}
            if path == DATASET_ITEMS_PATH:
                self.dataset_items.append(data)
                name = data["datasetName"]
                fields = {"input": None, "expectedOutput": None, "metadata": None, "status": "ACTIVE"}
                common: dict[str, Any] = {"datasetId": f"ds-{name}", "createdAt": now, "updatedAt": now}
                common["mediaReferences"] = []
                given = {k: v for k, v in data.items() if v is not None}
                return 200, {**fields, **given, **common}
            scores = data if isinstance(data, list) else [data]
            self.scores.extend(scores)
            return 200, {"message": "Accepted"}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def _send_json(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                found = self.path.split("?")[0] == PROJECTS_PATH
                self._send_json(200 if found else 404, {"data": [PROJECT]} if found else {"message": "not found"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                if path in (DATASETS_PATH, DATASET_ITEMS_PATH, *SCORES_PATHS):
                    return self._send_json(*sink._rest(path, self.headers, body))
                status = sink._accept(self.headers, body) if path == TRACES_PATH else 404
                reply = ExportTraceServiceResponse().SerializeToString() if status == 200 else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
