"""The retry and rate-limit decision for one failed GitHub request. Pure: no clock, no I/O.

GitHub's rules, from "Rate limits for the REST API"
(https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit):
a primary limit is a 403/429 with `x-ratelimit-remaining: 0` (wait for `x-ratelimit-reset`); a
secondary limit is a 403/429 whose message says so: honour `retry-after`, else
`x-ratelimit-reset` when nothing remains, else wait at least a minute, growing exponentially.
"""

from __future__ import annotations

import asyncio
import enum
import random
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
RATE_LIMIT_STATUSES = frozenset({403, 429})
SECONDARY_MESSAGES = ("secondary rate limit", "abuse detection")

# The request provably never left this process: the connection was never established.
CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    ConnectionRefusedError,
)
# Transient transport failures; for these the request may or may not have reached GitHub.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    asyncio.TimeoutError,
    ConnectionError,
)


class Action(enum.Enum):
    """What the caller does next."""

    RETRY = "retry"  # sleep `delay`, then send again
    PARK = "park"  # close the installation's gate until `park_until`, then send again
    GIVE_UP = "give_up"  # return the response / raise the error to the caller


@dataclass(frozen=True)
class Decision:
    """The outcome of `decide`: an action, how long to wait, and why."""

    action: Action
    reason: str
    delay: float = 0.0
    park_until: float | None = None
    # A secondary rate limit: the whole installation waits `delay`, not just this request.
    close_gate: bool = False

    @property
    def retry(self) -> bool:
        """Tell whether the request should be sent again."""
        return self.action is not Action.GIVE_UP


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds and timings for retries; `random` is injectable so jitter is testable."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    secondary_min_wait: float = 60.0
    secondary_max_wait: float = 15 * 60.0
    fresh_event_window: float = 10.0
    fresh_404_retries: int = 2
    fresh_404_delay: float = 1.0
    random: Callable[[], float] = field(default=random.random, compare=False)

    def __post_init__(self) -> None:
        # GitHub: "Otherwise, wait for at least one minute before retrying."
        if self.secondary_min_wait < 60.0:
            raise ValueError("secondary_min_wait must be at least 60 seconds")

    def backoff(self, attempt: int) -> float:
        """Return an exponential backoff with full jitter for the given attempt (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return self.random() * ceiling


NO_RETRY = RetryPolicy(max_attempts=1, fresh_404_retries=0)


def decide(
    *,
    attempt: int,
    method: str,
    status: int | None,
    headers: Mapping[str, str],
    error: type[BaseException] | None,
    now: float,
    since_event: float | None,
    policy: RetryPolicy,
    message: str = "",
    idempotent: bool | None = None,
) -> Decision:
    """Decide whether and when to resend a request that failed on attempt `attempt` (1-based).

    `headers` must have lower-case keys; `message` is the error body's `message`, if any;
    `since_event` is how many seconds ago the triggering webhook arrived; `idempotent` overrides
    the method's default (a GraphQL query is a POST that is safe to resend).
    """
    safe = method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent
    if error is not None:
        return _after_transport_error(attempt, error, safe=safe, policy=policy)
    if status is None or status < 400:
        return Decision(Action.GIVE_UP, "not a failure")
    if status in RATE_LIMIT_STATUSES:
        limited = _after_rate_limit(attempt, status, headers, message, now=now, policy=policy)
        if limited is not None:
            return limited
    if status >= 500:
        if not safe:
            return Decision(Action.GIVE_UP, f"{status} on a {method}: use create_once()")
        return _backoff(attempt, policy, f"server error {status}", _retry_after(headers, now))
    if status == 404 and method.upper() == "GET" and _fresh(since_event, policy):
        # GitHub's API can lag behind the webhook that announced an object: look again shortly.
        if attempt <= policy.fresh_404_retries:
            return Decision(Action.RETRY, "404 right after the event", policy.fresh_404_delay)
        return Decision(Action.GIVE_UP, "404 persisted after the event")
    return Decision(Action.GIVE_UP, f"status {status} is not retryable")


def _after_transport_error(
    attempt: int, error: type[BaseException], *, safe: bool, policy: RetryPolicy
) -> Decision:
    name = error.__name__
    if not issubclass(error, TRANSIENT_ERRORS + CONNECT_ERRORS):
        return Decision(Action.GIVE_UP, f"{name} is not transient")
    if not safe and not issubclass(error, CONNECT_ERRORS):
        return Decision(Action.GIVE_UP, f"{name} after sending: use create_once()")
    return _backoff(attempt, policy, name, None)


def _after_rate_limit(
    attempt: int,
    status: int,
    headers: Mapping[str, str],
    message: str,
    *,
    now: float,
    policy: RetryPolicy,
) -> Decision | None:
    retry_after = _retry_after(headers, now)
    remaining = headers.get("x-ratelimit-remaining")
    reset = _number(headers.get("x-ratelimit-reset"))
    secondary = any(text in message.lower() for text in SECONDARY_MESSAGES)
    if attempt >= policy.max_attempts:
        return Decision(Action.GIVE_UP, f"rate limited ({status}) {attempt} times")
    if retry_after is not None:
        return _secondary("secondary rate limit (retry-after)", retry_after)
    if remaining == "0" and reset is not None:
        if secondary:
            return _secondary("secondary rate limit (reset)", max(reset - now, 0.0))
        return Decision(Action.PARK, "primary rate limit exhausted", park_until=reset)
    if secondary or status == 429:
        wait = min(policy.secondary_max_wait, policy.secondary_min_wait * 2.0 ** (attempt - 1))
        return _secondary("secondary rate limit", max(wait, policy.secondary_min_wait))
    return None  # a plain 403: permissions, not pacing


def _secondary(reason: str, delay: float) -> Decision:
    return Decision(Action.RETRY, reason, delay, close_gate=True)


def _backoff(attempt: int, policy: RetryPolicy, reason: str, floor: float | None) -> Decision:
    if attempt >= policy.max_attempts:
        return Decision(Action.GIVE_UP, f"{reason}, {attempt} attempts")
    delay = policy.backoff(attempt)
    return Decision(Action.RETRY, reason, max(delay, floor or 0.0))


def _fresh(since_event: float | None, policy: RetryPolicy) -> bool:
    return since_event is not None and 0 <= since_event <= policy.fresh_event_window


def _retry_after(headers: Mapping[str, str], now: float) -> float | None:
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return max(seconds, 0.0)
    # RFC 9110 also allows an HTTP date.
    try:
        return max(parsedate_to_datetime(raw).timestamp() - now, 0.0)
    except (TypeError, ValueError):
        return None


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw.strip())
    except ValueError:
        return None
