"""Content-addressed storage for what must not live in workflow history: conversations, large outputs, archives."""
