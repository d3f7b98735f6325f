"""Pydantic contracts shared by workflows, activities, the CLI and the tests."""
