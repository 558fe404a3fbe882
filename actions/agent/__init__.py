"""The coder-agent runner."""
