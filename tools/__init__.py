"""The tool registry: every tool is declared once, with its args model, handler and policy."""
