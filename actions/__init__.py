"""What runs inside a GitHub Actions job: the coder-agent runner."""
