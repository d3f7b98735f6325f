"""The fake model of bench/scale.py, in its own process: realistic latency, every request's own time logged.

    .venv/bin/python bench/scale_fake.py --log /tmp/model-calls.jsonl     # prints {"anthropic": url, "openai": url}

Both wire protocols the frameworks speak: devstack's FakeAnthropic (the product and pydantic-ai, streamed or not)
and FakeOpenAI's Responses API (the OpenAI Agents SDK). Each reply comes after a time to first token of about
0.8 s (normal, sd 0.15 s, clipped to 0.4-1.4 s), then its words at 40 per second: streamed one SSE event per
word, or, for a request that does not stream, the whole body after the same time. A run asks for one
calculator call (a 20-word preamble with it), then answers in 30 words: two model calls and one tool call.

Each request's own time (from its request line to its last byte) goes to the log as one JSON line with the
run's tag (`[run <tag>]` in the prompt) and its turn (calculator results it was sent: a retried call has the
same turn as the attempt it replaces), so the bench can subtract the model's time from each step. It serves
until its stdin closes. Threaded (the standard library's server, one thread per connection), 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # runnable from anywhere: the repo root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devstack.fake_anthropic import FakeAnthropic
from devstack.fake_openai import FakeOpenAI
from devstack.scripted_handler import ScriptedHandler
from devstack.scripted_http import Reply

TTFT_S = 0.8
TTFT_SD_S = 0.15
TOKENS_PER_S = 40.0
PREAMBLE_WORDS = 20
ANSWER_WORDS = 30
TAG = re.compile(r"\[run ([A-Za-z0-9_+-]+)\]")  # a variant's label has a +: product+cache200
FINAL_TEXT = "counted to 1."
"""How every final answer begins (the bench checks it): the calculator was called once."""

_local = threading.local()
_rng = random.Random(35)
_rng_lock = threading.Lock()


def words(n: int, seed: str) -> str:
    """n filler words (one token each, as the fake counts them)."""
    return " ".join(f"{seed}{i}" for i in range(n))


def latency_reply(reply: Reply, streamed: bool) -> Reply:
    """`reply` with a jittered time to first token and its words paced at TOKENS_PER_S."""
    with _rng_lock:
        ttft = min(1.4, max(0.4, _rng.gauss(TTFT_S, TTFT_SD_S)))
    tokens = len(reply.text.split()) + 2 * len(reply.tool_calls)
    if streamed:
        reply.delay, reply.chunk_delay = ttft, 1 / TOKENS_PER_S
    else:
        reply.delay = ttft + tokens / TOKENS_PER_S
    reply.output_tokens = tokens
    return reply


def scripted_reply(tool_results: int) -> Reply:
    """Before the calculator's result: a preamble and the call. After it: the answer."""
    if tool_results == 0:
        return Reply(text=words(PREAMBLE_WORDS, "w"), tool_calls=[("calculator", {"expression": "0 + 1"})])
    return Reply(text=f"{FINAL_TEXT} {words(ANSWER_WORDS - 3, 'a')}")


def anthropic_responder(body: dict[str, Any]) -> Reply:
    """Messages API: tool_result blocks in user turns count the calculator's answers."""
    results = sum(
        1
        for m in body["messages"]
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if isinstance(b, dict) and b.get("type") == "tool_result"
    )
    _local.tag, _local.turn = tag_of(body["messages"][0]), results
    return latency_reply(scripted_reply(results), bool(body.get("stream")))


def openai_responder(body: dict[str, Any]) -> Reply:
    """Responses API: function_call_output items count the calculator's answers."""
    items = body["input"]
    items = [{"role": "user", "content": items}] if isinstance(items, str) else items
    results = sum(1 for i in items if i.get("type") == "function_call_output")
    _local.tag, _local.turn = tag_of(next(i for i in items if i.get("role") == "user")), results
    return latency_reply(scripted_reply(results), bool(body.get("stream")))


def tag_of(message: dict[str, Any]) -> str:
    found = TAG.search(json.dumps(message.get("content")))
    return found.group(1) if found else "-"


class CallLog:
    """model-call lines (tag, api, start, end) appended to a file, one writer at a time."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, **fields: Any) -> None:
        with self.lock:
            self.file.write(json.dumps(fields) + "\n")


def timed_handler(fake: Any, log: CallLog, api: str) -> type[ScriptedHandler]:
    """The fake's handler, timing each request that reached the responder."""

    class Timed(ScriptedHandler):
        def do_POST(self) -> None:
            _local.tag = None
            start = time.time()
            super().do_POST()
            if _local.tag is not None:
                log.write(tag=_local.tag, turn=_local.turn, api=api, start=start, end=time.time())

    Timed.fake = fake
    return Timed


class QuietAnthropic(FakeAnthropic):
    def received(self, record: Any) -> None:  # thousands of runs: keep no request bodies
        pass


class QuietOpenAI(FakeOpenAI):
    def received(self, record: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--log", required=True, help="JSONL file of model calls (appended)")
    args = parser.parse_args()
    log = CallLog(args.log)
    fakes = {
        "anthropic": QuietAnthropic(responder=anthropic_responder),
        "openai": QuietOpenAI(responder=openai_responder),
    }
    for api, fake in fakes.items():
        fake._server.RequestHandlerClass = timed_handler(fake, log, api)
        fake._server.socket.listen(1024)  # a burst of connections must not overflow the default backlog of 5
        fake.start()
    print(json.dumps({api: fake.url for api, fake in fakes.items()}), flush=True)
    sys.stdin.read()  # serve until the bench closes our stdin
    for fake in fakes.values():
        fake.stop()


if __name__ == "__main__":
    main()
