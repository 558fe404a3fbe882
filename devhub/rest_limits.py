"""Rate limits and injected faults: the two ways devhub declines to serve a request normally.

Plain bookkeeping with no HTTP in it; `devhub/http.py` applies both in its middleware.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from devhub.rest_auth import Principal

RATE_WINDOW_SECONDS = 3600
# The search API has its own budget: 30 requests a minute for authenticated callers, 10 for
# anonymous ones: https://docs.github.com/rest/search/search#rate-limit
SEARCH_RESOURCE = "search"
SEARCH_LIMIT = 30
ANONYMOUS_SEARCH_LIMIT = 10
SEARCH_WINDOW_SECONDS = 60


@dataclass
class Bucket:
    """One principal's budget for one resource in the current hour."""

    limit: int
    reset: int
    used: int = 0

    @property
    def remaining(self) -> int:
        """Return what is left in this window."""
        return max(0, self.limit - self.used)

    def headers(self, resource: str) -> dict[str, str]:
        """Render GitHub's `x-ratelimit-*` headers."""
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(self.reset),
            "x-ratelimit-used": str(self.used),
            "x-ratelimit-resource": resource,
        }

    def snapshot(self) -> dict[str, int]:
        """Render the bucket as `GET /rate_limit` does."""
        return {
            "limit": self.limit,
            "used": self.used,
            "remaining": self.remaining,
            "reset": self.reset,
        }


class RateLimits:
    """Hourly budgets per principal and resource, like GitHub's primary rate limit."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], Bucket] = {}

    def bucket(self, caller: Principal, resource: str, *, limit: int | None = None) -> Bucket:
        """Return the caller's current bucket, starting a new window when the old one ended."""
        now = int(time.time())
        key = (caller.rate_key, resource)
        found = self._buckets.get(key)
        window = RATE_WINDOW_SECONDS
        if resource == SEARCH_RESOURCE:
            window = SEARCH_WINDOW_SECONDS
            anonymous = caller.kind == "anonymous"
            limit = limit or (ANONYMOUS_SEARCH_LIMIT if anonymous else SEARCH_LIMIT)
        if found is None or found.reset <= now:
            found = Bucket(limit or caller.rate_limit, now + window)
            self._buckets[key] = found
        return found


# Fault injection


FAULT_KINDS = ("status", "latency", "reset", "secondary_rate_limit", "primary_rate_limit")
# `when`: before the route runs (nothing happens), or after it (the work is done, the answer lost).
FAULT_TIMES = ("before", "after")
AFTER_KINDS = ("status", "reset")


@dataclass
class Fault:
    """One injected fault, as configured through `POST /_devhub/faults`."""

    id: int
    kind: str
    method: str
    path: re.Pattern[str]
    status: int = 502
    delay_ms: int = 500
    retry_after: int = 60
    times: int | None = 1
    when: str = "before"

    @property
    def after(self) -> bool:
        """Tell whether the route runs first and the fault replaces its answer."""
        return self.when == "after"

    def to_json(self) -> dict[str, Any]:
        """Render the fault for the admin API."""
        return {
            "id": self.id,
            "kind": self.kind,
            "method": self.method,
            "path": self.path.pattern,
            "status": self.status,
            "delay_ms": self.delay_ms,
            "retry_after": self.retry_after,
            "times": self.times,
            "when": self.when,
        }


class FaultSpecError(ValueError):
    """A fault specification that devhub cannot apply."""


FAULT_NUMBERS = (("status", 100, 599), ("delay_ms", 0, 600_000), ("retry_after", 0, 86_400))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bounded(spec: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = spec.get(name)
    if value is None:
        return None
    if not _is_int(value) or not low <= value <= high:
        raise FaultSpecError(f"{name} must be an integer from {low} to {high}")
    return int(value)


class Faults:
    """The active faults; each matching request consumes one `times`."""

    def __init__(self) -> None:
        self.active: list[Fault] = []
        self._last_id = 0
        self._hit = asyncio.Condition()
        self.hits = 0  # how many requests met a fault so far

    def add(self, spec: Mapping[str, Any]) -> Fault:
        """Validate and add a fault; raise FaultSpecError saying what is wrong."""
        kind = spec.get("kind")
        if kind not in FAULT_KINDS:
            raise FaultSpecError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        method = spec.get("method", "*")
        if not isinstance(method, str) or not method:
            raise FaultSpecError("method must be an HTTP method or '*'")
        pattern = spec.get("path", ".*")
        if not isinstance(pattern, str):
            raise FaultSpecError("path must be a regular expression string")
        try:
            path = re.compile(pattern)
        except re.error as error:
            raise FaultSpecError(f"path is not a valid regular expression: {error}") from None
        numbers = {name: _bounded(spec, name, low, high) for name, low, high in FAULT_NUMBERS}
        times = spec.get("times", 1)
        if times is not None and (not _is_int(times) or times < 1):
            raise FaultSpecError("times must be a positive integer or null (forever)")
        when = spec.get("when", "before")
        if when not in FAULT_TIMES:
            raise FaultSpecError(f"when must be one of {', '.join(FAULT_TIMES)}")
        if when == "after" and kind not in AFTER_KINDS:
            raise FaultSpecError(f"when=after applies to {' and '.join(AFTER_KINDS)} faults only")
        self._last_id += 1
        fault = Fault(
            self._last_id,
            kind,
            method.upper(),
            path,
            status=numbers["status"] or 502,
            delay_ms=numbers["delay_ms"] if numbers["delay_ms"] is not None else 500,
            retry_after=numbers["retry_after"] if numbers["retry_after"] is not None else 60,
            times=times,
            when=when,
        )
        self.active.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault."""
        self.active.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """Return the first fault matching a request and count it down."""
        for fault in self.active:
            if fault.method not in {"*", method} or not fault.path.search(path):
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.active.remove(fault)
            self.hits += 1
            return fault
        return None

    async def announce_hit(self) -> None:
        """Wake `wait_for_hits` callers (called once a request has met a fault)."""
        async with self._hit:
            self._hit.notify_all()

    async def wait_for_hits(self, count: int) -> None:
        """Wait until `count` requests have met a fault (lets tests act mid-fault)."""
        async with self._hit:
            await self._hit.wait_for(lambda: self.hits >= count)
