"""Local stand-ins for a full deployment: the embedded dev server, scripted model servers, the demo."""
