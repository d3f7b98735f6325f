"""All I/O: LLM providers, tool execution, agent runs, notifications."""
