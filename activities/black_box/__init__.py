"""Pattern A's activity side: `invoke_agent` runs one whole agent in-process on an engine, heartbeating each turn.

`invoke_agent.py` holds the activity, `ledger.py` what a run reports (turns, spend, where to resume), `engine.py` the engine protocol, the
request an engine is given (`EngineRun`) and the tools it may call, `checkpoint.py` turn-level resume,
`handoffs.py` the agents a run may hand off to. The two engines: `claude_engine.py`, and the Agents SDK's
`openai_engine.py` with its pieces (`openai_crew.py`, `openai_model.py`, `openai_breakers.py`,
`openai_output.py`, `openai_handoffs.py`, `openai_journal.py`). The loop policy both apply is the pattern-B
loop's, in tools/ and models/ (see engine.py).
"""
