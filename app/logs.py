"""Logging for `coder serve`: text or JSON lines, with tokens and secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import orjson

if TYPE_CHECKING:
    from collections.abc import Iterable

REDACTED = "[REDACTED]"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Token shapes GitHub documents
# (https://github.blog/engineering/platform-security/behind-githubs-new-authentication-token-formats/),
# app JWTs, Authorization header values and PEM blocks.
# Each pattern comes with substrings that every match contains (in lower case), so the common line
# (one that holds nothing secret) costs a few `in` checks instead of five regex scans; the webhook
# benchmark showed redaction at a tenth of the server's CPU before this. A single regex made of
# the hints would be no cheaper: `re` scans for an alternation position by position.
TOKEN_PATTERNS = (
    (
        ("-----begin ",),
        re.compile(r"-----BEGIN [A-Z0-9 ]*-----.*?(?:-----END [A-Z0-9 ]*-----|\Z)", re.DOTALL),
    ),
    (
        ("authorization",),
        re.compile(
            r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|token|basic)\s+)?[^\s\"',}]+"
        ),
    ),
    # GitHub's own tokens are base62, but '-' is matched too, so a token in the URL-safe alphabet
    # is not cut at its first '-' and half leaked; no word boundary is required in front, so a
    # token glued to other text (`%3Aghs_...` in an encoded URL) is still found.
    (("gh", "_"), re.compile(r"gh[pousr]_[A-Za-z0-9_-]{16,}")),
    (("github_pat_",), re.compile(r"github_pat_[A-Za-z0-9_-]{16,}")),
    (("eyj",), re.compile(r"\beyJ[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*){0,2}")),
)
# Joins a record's strings for one `suspects` check: what is in one of them is in the join too.
FIELD_SEPARATOR = "\n"

# Attributes every LogRecord has; anything else was passed through `extra=` and goes in JSON.
STANDARD_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class Redactor:
    """Replace token-shaped strings and configured secrets with a placeholder."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({secret for secret in secrets if secret}, key=len, reverse=True)

    def suspects(self, text: str) -> bool:
        """Tell whether `text` may hold a secret or a token; False means it certainly does not."""
        for secret in self._secrets:
            if secret in text:
                return True
        folded = text.lower()
        # Loops, not any()/all(): this runs once per log line and generators cost more here.
        for hints, _ in TOKEN_PATTERNS:
            for hint in hints:
                if hint not in folded:
                    break
            else:
                return True
        return False

    def __call__(self, text: str) -> str:
        """Return `text` with every secret and token-shaped string redacted."""
        if not self.suspects(text):
            return text
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        folded = text.lower()
        for hints, pattern in TOKEN_PATTERNS:
            if all(hint in folded for hint in hints):
                text = pattern.sub(_keep_prefix, text)
        return text


def _keep_prefix(match: re.Match[str]) -> str:
    # The Authorization pattern keeps its header name so the line still says what was hidden.
    prefix = match.group(1) if match.re.groups else ""
    return f"{prefix}{REDACTED}"


class RedactingFilter(logging.Filter):
    """Redact messages, their args and `extra` strings before any handler formats them."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drop it."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg!s} {record.args!r}"
        record.args = None
        fields = vars(record)
        extras = [
            key
            for key in fields.keys() - STANDARD_RECORD_ATTRIBUTES
            if isinstance(fields[key], str)
        ]
        # One check over the whole record: a line with nothing to hide (nearly every line, and
        # every delivery line) is not scanned once per field.
        joined = FIELD_SEPARATOR.join([message, *(fields[key] for key in extras)])
        if not self._redact.suspects(joined):
            record.msg = message
            return True
        record.msg = self._redact(message)
        for key in extras:
            fields[key] = self._redact(fields[key])
        return True


class TextFormatter(logging.Formatter):
    """Human-readable lines; tracebacks are redacted too."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        """Format, then redact whatever a traceback carried."""
        line = super().format(record)
        # The filter already redacted the message; only a traceback or stack can add text.
        if record.exc_info or record.exc_text or record.stack_info:
            return self._redact(line)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every `extra` field."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        """Serialise the record as a single line of JSON."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in STANDARD_RECORD_ATTRIBUTES and not key.startswith("_")
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            # A seventh of the time `json.dumps` takes, on every delivery line (DESIGN §8).
            line = orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError:  # an integer past 64 bits, say, which `json` can write
            line = json.dumps(entry, default=str)
        return self._redact(line)


def configure_logging(
    level: str,
    fmt: str,
    *,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send all logging to one stream handler in `fmt` ("text" or "json"), redacting secrets."""
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(redactor) if fmt == "json" else TextFormatter(redactor))
    # On the handler, not the root logger: logger filters do not see records that propagate up.
    handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's access log would add a second line per delivery; ours carries the outcome.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler
