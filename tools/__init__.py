"""The tool registry: every tool is declared once, with its args model, handler and policy.

Declare your own with `from tools import tool` (see tools/decorator.py).
"""

from tools.decorator import ToolContext, ToolDeclarationError, tool

__all__ = ["ToolContext", "ToolDeclarationError", "tool"]
