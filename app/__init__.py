"""coder: the GitHub App (webhook server, decisions, GitHub access)."""
