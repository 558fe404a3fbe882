"""The job log: plain lines on stdout, warnings and errors as annotations, secrets redacted.

Secrets become known only once the token is obtained, so the one filter on the handler reads
them from `SECRETS`, which the runner fills (`remember`) right after masking them.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, TextIO

from app.logs import RedactingFilter, Redactor

if TYPE_CHECKING:
    from collections.abc import Iterable

# https://docs.github.com/en/actions/reference/workflow-commands-for-github-actions
ANNOTATIONS = {logging.WARNING: "::warning::", logging.ERROR: "::error::"}


class Secrets(logging.Filter):
    """Redact every secret remembered so far (and anything token-shaped) from log records."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._filter = RedactingFilter(Redactor())

    def remember(self, secrets: Iterable[str]) -> None:
        """Add secrets to redact from now on."""
        self._secrets.update(secret for secret in secrets if secret)
        self._filter = RedactingFilter(Redactor(self._secrets))

    def redact(self, text: str) -> str:
        """Return `text` with every remembered secret replaced."""
        return Redactor(self._secrets)(text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drop it."""
        return self._filter.filter(record)


SECRETS = Secrets()


class ActionsFormatter(logging.Formatter):
    """Plain lines; warnings and errors become GitHub annotations, escaped onto one line."""

    def format(self, record: logging.LogRecord) -> str:
        """Format one record for the job log."""
        message = super().format(record)
        level = min(record.levelno, logging.ERROR)
        prefix = ANNOTATIONS.get(level, "") if level >= logging.WARNING else ""
        if not prefix:
            return message
        escaped = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return prefix + escaped


def configure_logging(stream: TextIO | None = None) -> logging.Handler:
    """Send the runner's log to `stream` (stdout), where the job log shows it."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(ActionsFormatter("%(message)s"))
    handler.addFilter(SECRETS)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    return handler
