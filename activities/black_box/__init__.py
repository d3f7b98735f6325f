"""Pattern A's activity side: `invoke_agent` runs one whole agent in-process on an engine, heartbeating each turn.

`invoke_agent.py` holds the activity, `progress.py` what a run reports, `engine.py` the engine protocol and
the tools an engine may call, `claude_engine.py` and `openai_engine.py` the two engines.
"""
