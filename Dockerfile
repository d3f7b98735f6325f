# The agent worker: one image for docker compose, Kubernetes, or beside Temporal Cloud.
# Configuration (cluster, credentials, tuning) comes from the environment at run time; the
# image holds no secrets (.dockerignore keeps .env and local databases out of the context).

# --- build: the pinned dependencies and the project, without its dev extras ------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, in their own layer: a code change does not reinstall them. requirements.lock
# pins every package; `-c` applies the pins to what pyproject.toml asks for (no dev extras).
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > deps.txt \
    && /opt/venv/bin/pip install -c requirements.lock -r deps.txt
# Then the project as its wheel, exactly as tests/test_package.py builds and installs it: the run stage
# gets the installed packages and commands, never the source tree.
COPY . .
RUN /opt/venv/bin/pip wheel --no-deps -c requirements.lock -w /wheels . \
    && /opt/venv/bin/pip install --no-deps -c requirements.lock /wheels/durable_agents-*.whl

# --- run: the venv with the installed wheel, as an unprivileged user -----------------------------
# The code in /opt/venv is root-owned and read-only to the worker: everything it writes (blob store, notes,
# outbox, caches, HOME) lives under /data, owned by the worker's user (tests/test_container.py runs the
# installed wheel this way, reading USER, WORKDIR, ENV and CMD from this file). Your own tool modules are
# mounted and put on PYTHONPATH (docker-compose.yml: /agents).
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/data/home \
    XDG_CACHE_HOME=/data/cache \
    BLOB_STORE_DIR=/data/blobs \
    NOTES_DB=/data/notes.db \
    NOTIFY_OUTBOX=/data/outbox.jsonl \
    WORKER_HEALTH_HOST=0.0.0.0 \
    WORKER_HEALTH_PORT=8081
RUN groupadd --system --gid 10001 agent \
    && useradd --system --uid 10001 --gid agent --home-dir /data/home --no-create-home agent \
    && mkdir -p /data/blobs /data/cache /data/home && chown -R agent:agent /data && chmod 0700 /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /data
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001
VOLUME ["/data"]
EXPOSE 8081 9464
# 200 while the worker polls; 503 while it starts or drains in-flight activities after SIGTERM.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["python", "-m", "telemetry.health"]
CMD ["durable-agents-worker"]
