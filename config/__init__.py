"""Configuration read from the environment (never from workflow inputs)."""
