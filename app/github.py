"""GitHub access: app JWTs, cached installation tokens, and one client that retries for everyone.

Handlers get a `GitHub` (a `gidgethub.aiohttp.GitHubAPI`) and never retry, authenticate or pace
themselves: `GitHub._request`, the one transport method gidgethub calls for REST and GraphQL,
does all of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import gidgethub
import gidgethub.aiohttp
import jwt as pyjwt
from cachetools import LRUCache
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.retry import CONNECT_ERRORS, TRANSIENT_ERRORS, Action, Decision, RetryPolicy, decide
from app.slots import slot_released

if TYPE_CHECKING:
    from gidgethub.abc import GitHubAPI

    from app.settings import Settings

T = TypeVar("T")
# gidgethub's cache value: (etag, last-modified, decoded body, next page URL).
CacheEntry = tuple[str | None, str | None, Any, str | None]
AuthorizationSource = Callable[[], Awaitable[str]]

log = logging.getLogger(__name__)

USER_AGENT = "coder"
API_VERSION = "2022-11-28"  # https://docs.github.com/en/rest/about-the-rest-api/api-versions
JWT_BACKDATE_SECONDS = 60  # GitHub recommends backdating `iat` 60 s against clock drift
JWT_LIFETIME_SECONDS = 540  # GitHub's maximum is 10 minutes; stay under it
JWT_REUSE_SECONDS = 60
TOKEN_REFRESH_MARGIN_SECONDS = 300  # refresh installation tokens 5 minutes before they expire
RESET_MARGIN_SECONDS = 1.0  # x-ratelimit-reset is whole seconds; do not come back a moment early
ALL_RESOURCES = "*"  # the gate key a secondary rate limit closes: every resource at once
ETAG_CACHE_SIZE = 4096
TOKEN_CACHE_SIZE = 4096
# Creating an installation token twice is harmless, so this POST may be resent like a GET.
IDEMPOTENT_POSTS = re.compile(r"/app/installations/\d+/access_tokens$")
GRAPHQL_QUERY = re.compile(r"^\s*(?:query\b|\{)")
# Failures after which a POST may or may not have taken effect on GitHub.
AMBIGUOUS_ERRORS: tuple[type[BaseException], ...] = (gidgethub.GitHubBroken, *TRANSIENT_ERRORS)


class AppAuth:
    """Mint the app's JWTs (RS256, signed with its private key)."""

    def __init__(
        self, app_id: int, private_key: str, clock: Callable[[], float] = time.time
    ) -> None:
        # load_settings() already ran cryptography's RSA consistency check (~70 ms); skip a rerun.
        key = serialization.load_pem_private_key(
            private_key.encode("utf-8"), password=None, unsafe_skip_rsa_key_validation=True
        )
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("a GitHub App private key is an RSA key")
        self.app_id = app_id
        self._key = key
        self._clock = clock
        self._cached: tuple[float, str] | None = None

    def jwt(self) -> str:
        """Return a JWT for the app, reusing one minted in the last minute."""
        now = self._clock()
        if self._cached is not None and 0 <= now - self._cached[0] < JWT_REUSE_SECONDS:
            return self._cached[1]
        issued = int(now)
        claims = {
            "iat": issued - JWT_BACKDATE_SECONDS,
            "exp": issued + JWT_LIFETIME_SECONDS,
            "iss": str(self.app_id),
        }
        token = pyjwt.encode(claims, self._key, algorithm="RS256")
        self._cached = (now, token)
        return token


@dataclass
class ApiHealth:
    """When GitHub last answered well and last failed; `/readyz` reads it."""

    last_ok: float | None = None
    last_error: float | None = None
    last_error_reason: str = ""

    def succeeded(self, now: float) -> None:
        """Record a call that reached GitHub and was accepted."""
        self.last_ok = now

    def failed(self, now: float, reason: str) -> None:
        """Record a call that GitHub refused or never answered."""
        self.last_error = now
        self.last_error_reason = reason

    @property
    def healthy(self) -> bool | None:
        """Return whether the latest call succeeded, or None before any call."""
        if self.last_ok is None and self.last_error is None:
            return None
        return self.last_error is None or (self.last_ok or 0) >= self.last_error


class RateLimitGate:
    """Hold one installation's requests while GitHub told it to wait.

    A primary limit closes one resource (`core`, `search`, `graphql`) until its reset; a secondary
    limit closes all of them (`ALL_RESOURCES`) for its `retry-after`, because GitHub counts those
    across everything the installation does. Waiting at a closed gate gives the handler's queue
    slot back (`slot_released`), so a parked installation does not hold up the others.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._parked_until: dict[str, float] = {}

    def park(self, until: float, resource: str = "core") -> None:
        """Hold requests against `resource` (or every one: `ALL_RESOURCES`) until epoch `until`."""
        self._parked_until[resource] = max(self._parked_until.get(resource, 0.0), until)

    def parked_until(self, resource: str = "core") -> float | None:
        """Return when `resource` opens again, or None if it is open now."""
        now = self._clock()
        closed = [
            until
            for key in (resource, ALL_RESOURCES)
            if (until := self._parked_until.get(key)) is not None and until > now
        ]
        return max(closed, default=None)

    async def wait(self, resource: str = "core") -> None:
        """Wait until `resource` is open; sleep once per park (a later park extends the wait)."""
        if self.parked_until(resource) is None:
            return
        async with slot_released():
            slept_until: float | None = None
            while (until := self.parked_until(resource)) is not None and until != slept_until:
                await self._sleep(until - self._clock())
                slept_until = until


class PrefixedCache(MutableMapping[str, CacheEntry]):
    """A view of the shared ETag cache in which every key carries one client's prefix."""

    def __init__(self, backing: MutableMapping[str, CacheEntry], prefix: str) -> None:
        self._backing = backing
        self._prefix = prefix

    def __getitem__(self, key: str) -> CacheEntry:
        return self._backing[self._prefix + key]

    def __setitem__(self, key: str, value: CacheEntry) -> None:
        self._backing[self._prefix + key] = value

    def __delitem__(self, key: str) -> None:
        del self._backing[self._prefix + key]

    def __iter__(self) -> Iterator[str]:
        size = len(self._prefix)
        return iter([key[size:] for key in list(self._backing) if key.startswith(self._prefix)])

    def __len__(self) -> int:
        return sum(1 for _ in self)


class GitHub(gidgethub.aiohttp.GitHubAPI):
    """A gidgethub client whose transport adds auth, rate-limit pacing and retries."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        authorization: AuthorizationSource,
        base_url: str,
        graphql_url: str,
        cache: MutableMapping[str, CacheEntry] | None = None,
        gate: RateLimitGate | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        event_received_at: float | None = None,
        health: ApiHealth | None = None,
        on_unauthorized: Callable[[], None] | None = None,
        installation_id: int | None = None,
    ) -> None:
        super().__init__(session, USER_AGENT, cache=cache, base_url=base_url)
        self.installation_id = installation_id
        self.graphql_url = graphql_url
        self.policy = policy or RetryPolicy()
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self._authorization = authorization
        self._gate = gate
        self._sleep = sleep
        self._clock = clock
        self._event_received_at = event_received_at
        self._health = health or ApiHealth()
        self._on_unauthorized = on_unauthorized

    async def sleep(self, seconds: float) -> None:
        """Sleep with the injected sleep (tests make waiting observable and instant)."""
        await self._sleep(seconds)

    async def graphql(self, query: str, *, endpoint: str | None = None, **variables: Any) -> Any:
        """Run a GraphQL query against this deployment's endpoint (GHES moves it)."""
        return await super().graphql(query, endpoint=endpoint or self.graphql_url, **variables)

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        request_headers = {key.lower(): value for key, value in headers.items()}
        request_headers.setdefault("x-github-api-version", API_VERSION)
        resource = self._resource(url)
        idempotent = self._idempotent(method, url, body)
        attempt = 0
        while True:
            attempt += 1
            if self._gate is not None:
                await self._gate.wait(resource)
            request_headers["authorization"] = await self._authorization()
            try:
                status, response_headers, response_body = await super()._request(
                    method, url, request_headers, body
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                self._record_failure(type(error).__name__)
                decision = self._decide(attempt, method, idempotent=idempotent, error=type(error))
                if not decision.retry:
                    raise
                self._log_retry(method, url, decision.reason, decision.delay, attempt)
                await self._sleep(decision.delay)
                continue
            lowered = {key.lower(): value for key, value in response_headers.items()}
            self._observe(status, lowered, resource)
            if status < 400:
                return status, response_headers, response_body
            if status == 401 and attempt == 1 and self._on_unauthorized is not None:
                # A cached installation token can be revoked early (e.g. the app was
                # reinstalled): drop it and try once more with a fresh one.
                self._on_unauthorized()
                continue
            message = _error_message(response_body)
            decision = self._decide(
                attempt,
                method,
                idempotent=idempotent,
                status=status,
                headers=lowered,
                message=message,
            )
            if decision.action is Action.PARK and decision.park_until is not None:
                log.warning(
                    "GitHub primary rate limit exhausted for %s; parked until %d",
                    self._who(),
                    decision.park_until,
                )
                until = decision.park_until + RESET_MARGIN_SECONDS
                if self._gate is not None:
                    self._gate.park(until, resource)
                else:
                    await self._sleep(max(until - self._clock(), 0.0))
                continue
            if decision.action is Action.RETRY:
                self._log_retry(method, url, decision.reason, decision.delay, attempt)
                if decision.close_gate and self._gate is not None:
                    # "Never hammer": the installation's other requests wait out the limit too.
                    self._gate.park(self._clock() + decision.delay, ALL_RESOURCES)
                else:
                    await self._sleep(decision.delay)
                continue
            return status, response_headers, response_body

    def _decide(
        self,
        attempt: int,
        method: str,
        *,
        idempotent: bool | None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        error: type[BaseException] | None = None,
        message: str = "",
    ) -> Decision:
        now = self._clock()
        received = self._event_received_at
        return decide(
            attempt=attempt,
            method=method,
            status=status,
            headers=headers or {},
            error=error,
            now=now,
            since_event=None if received is None else now - received,
            policy=self.policy,
            message=message,
            idempotent=idempotent,
        )

    def _observe(self, status: int, headers: Mapping[str, str], resource: str) -> None:
        now = self._clock()
        if status >= 500 or status == 401:
            self._record_failure(f"HTTP {status}")
        else:
            self.last_ok = now
            self._health.succeeded(now)
        if status < 400 and headers.get("x-ratelimit-remaining") == "0" and self._gate is not None:
            # The next call would be refused: park now instead of spending a request to learn it.
            reset = headers.get("x-ratelimit-reset", "")
            if reset.isdigit():
                self._gate.park(float(reset) + RESET_MARGIN_SECONDS, resource)

    def _record_failure(self, reason: str) -> None:
        self.last_error = reason
        self._health.failed(self._clock(), reason)

    def _resource(self, url: str) -> str:
        # GitHub keeps separate primary limits per resource (x-ratelimit-resource).
        if url == self.graphql_url:
            return "graphql"
        return "search" if "/search/" in urlsplit(url).path else "core"

    def _idempotent(self, method: str, url: str, body: bytes) -> bool | None:
        if method.upper() != "POST":
            return None
        if IDEMPOTENT_POSTS.search(urlsplit(url).path):
            return True
        if url == self.graphql_url:
            try:
                query = json.loads(body).get("query", "")
            except (ValueError, AttributeError):
                return False
            return isinstance(query, str) and GRAPHQL_QUERY.match(query) is not None
        return False

    def _log_retry(self, method: str, url: str, reason: str, delay: float, attempt: int) -> None:
        path = urlsplit(url).path
        log.warning(
            "GitHub %s %s: %s; retry %d in %.1fs (%s)",
            method,
            path,
            reason,
            attempt,
            delay,
            self._who(),
        )

    def _who(self) -> str:
        if self.installation_id is None:
            return "app"
        return f"installation {self.installation_id}"


def _error_message(body: bytes) -> str:
    try:
        message = json.loads(body).get("message", "")
    except (ValueError, AttributeError):
        return ""
    return message if isinstance(message, str) else ""


async def create_once(
    gh: GitHubAPI,
    *,
    create: Callable[[], Awaitable[T]],
    find: Callable[[], Awaitable[T | None]],
) -> T:
    """Create something exactly once: after an ambiguous failure, look before creating again."""
    policy = gh.policy if isinstance(gh, GitHub) else RetryPolicy()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await create()
        except AMBIGUOUS_ERRORS as error:
            # A 5xx or a reset after sending: GitHub may have created it anyway.
            if isinstance(error, CONNECT_ERRORS) or attempt >= policy.max_attempts:
                raise
            log.warning("create failed ambiguously (%s); looking before retrying", error)
            await gh.sleep(policy.backoff(attempt))
        found = await find()
        if found is not None:
            return found


class InstallationTokens:
    """Installation access tokens, cached until 5 minutes before expiry, one fetch per key."""

    def __init__(
        self,
        auth: AppAuth,
        session: aiohttp.ClientSession,
        api_url: str,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        policy: RetryPolicy | None = None,
        health: ApiHealth | None = None,
        gate: RateLimitGate | None = None,
    ) -> None:
        self._clock = clock
        self._app = GitHub(
            session,
            authorization=_bearer(auth),
            base_url=api_url,
            graphql_url="",
            gate=gate,
            policy=policy,
            sleep=sleep,
            clock=clock,
            health=health,
        )
        self._tokens: LRUCache[tuple[Any, ...], tuple[str, float]] = LRUCache(TOKEN_CACHE_SIZE)
        self._in_flight: dict[tuple[Any, ...], asyncio.Future[str]] = {}

    async def get(
        self,
        installation_id: int,
        *,
        repositories: Sequence[str] | None = None,
        permissions: Mapping[str, str] | None = None,
    ) -> str:
        """Return a token for the installation, optionally narrowed to repositories/permissions."""
        # GitHub takes repository names without the owner; accept `owner/name` too.
        names = (
            None if repositories is None else sorted({r.rsplit("/", 1)[-1] for r in repositories})
        )
        perms = None if permissions is None else dict(sorted(permissions.items()))
        key = (
            installation_id,
            None if names is None else tuple(names),
            None if perms is None else tuple(perms.items()),
        )
        cached = self._tokens.get(key)
        if cached is not None and self._clock() < cached[1]:
            return cached[0]
        future = self._in_flight.get(key)
        if future is None:
            future = asyncio.ensure_future(self._fetch(key, installation_id, names, perms))
            self._in_flight[key] = future
            future.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: one caller giving up must not cancel the fetch the others are waiting on.
        return await asyncio.shield(future)

    def invalidate(self, installation_id: int) -> None:
        """Forget every cached token of an installation (e.g. after a 401)."""
        for key in [key for key in self._tokens if key[0] == installation_id]:
            self._tokens.pop(key, None)

    async def _fetch(
        self,
        key: tuple[Any, ...],
        installation_id: int,
        names: list[str] | None,
        permissions: dict[str, str] | None,
    ) -> str:
        body: dict[str, Any] = {}
        if names is not None:
            body["repositories"] = names
        if permissions is not None:
            body["permissions"] = permissions
        response = await self._app.post(
            "/app/installations/{installation_id}/access_tokens",
            {"installation_id": installation_id},
            data=body,
        )
        token = str(response["token"])
        expires_at = datetime.fromisoformat(response["expires_at"]).timestamp()
        self._tokens[key] = (token, expires_at - TOKEN_REFRESH_MARGIN_SECONDS)
        return token

    def _forget(self, key: tuple[Any, ...], done: asyncio.Future[str]) -> None:
        if self._in_flight.get(key) is done:
            del self._in_flight[key]
        if not done.cancelled():
            done.exception()  # failures are not cached; mark them retrieved for asyncio


def _bearer(auth: AppAuth) -> AuthorizationSource:
    async def authorization() -> str:
        return f"Bearer {auth.jwt()}"

    return authorization


class GitHubAccess:
    """Everything one process uses to reach GitHub: auth, tokens, ETag cache, rate-limit gates."""

    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.session = session
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.health = ApiHealth()
        self.auth = AppAuth(settings.app_id, settings.private_key.get_secret_value(), clock)
        self.cache: LRUCache[str, CacheEntry] = LRUCache(ETAG_CACHE_SIZE)
        self._sleep = sleep
        self._app_gate = RateLimitGate(clock=clock, sleep=sleep)
        self._gates: dict[int, RateLimitGate] = {}
        self._slug: str | None = None
        self._slug_lock = asyncio.Lock()
        self.tokens = InstallationTokens(
            self.auth,
            session,
            settings.api_url,
            clock=clock,
            sleep=sleep,
            policy=self.policy,
            health=self.health,
            gate=self._app_gate,
        )

    def gate(self, installation_id: int) -> RateLimitGate:
        """Return the installation's rate-limit gate (each installation has its own limit)."""
        gate = self._gates.get(installation_id)
        if gate is None:
            gate = self._gates[installation_id] = RateLimitGate(clock=self.clock, sleep=self._sleep)
        return gate

    def app_client(self, *, policy: RetryPolicy | None = None) -> GitHub:
        """Return a client authenticated as the app itself (JWT)."""
        return GitHub(
            self.session,
            authorization=_bearer(self.auth),
            base_url=self.settings.api_url,
            graphql_url=self.settings.graphql_url,
            cache=PrefixedCache(self.cache, "app:"),
            gate=self._app_gate,
            policy=policy or self.policy,
            sleep=self._sleep,
            clock=self.clock,
            health=self.health,
        )

    def for_installation(
        self, installation_id: int, *, event_received_at: float | None = None
    ) -> GitHub:
        """Return a client acting as one installation (its token, cache view and gate).

        `event_received_at` is when the handler began work on the triggering event: a 404 on a GET
        within the policy's fresh-event window after it is retried (GitHub's API lags its events).
        """

        async def authorization() -> str:
            return f"token {await self.tokens.get(installation_id)}"

        return GitHub(
            self.session,
            authorization=authorization,
            base_url=self.settings.api_url,
            graphql_url=self.settings.graphql_url,
            cache=PrefixedCache(self.cache, f"installation:{installation_id}:"),
            gate=self.gate(installation_id),
            policy=self.policy,
            sleep=self._sleep,
            clock=self.clock,
            event_received_at=event_received_at,
            health=self.health,
            on_unauthorized=lambda: self.tokens.invalidate(installation_id),
            installation_id=installation_id,
        )

    async def app_slug(self) -> str:
        """Return the app's slug from `GET /app`, fetched once per process."""
        async with self._slug_lock:
            if self._slug is None:
                app = await self.app_client().getitem("/app")
                self._slug = str(app["slug"])
            return self._slug

    @property
    def known_bot_login(self) -> str | None:
        """Return `<slug>[bot]` if the slug is already known, without any I/O."""
        return None if self._slug is None else f"{self._slug}[bot]"

    async def bot_login(self) -> str:
        """Return the login the app's own comments and events carry: `<slug>[bot]`."""
        return f"{await self.app_slug()}[bot]"
