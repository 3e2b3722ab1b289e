"""Sample stand-in for the automated-trading-platform FastAPI backend."""
