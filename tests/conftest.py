"""Shared pytest fixtures: devhub, the app, and contract checks.

Fixture modules live in tests/support/ and are pulled in here so every test sees them.
"""

pytest_plugins: list[str] = []
pytest_plugins.append("tests.support.app")
pytest_plugins.append("tests.support.devhub")
