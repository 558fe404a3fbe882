"""POST <WEBHOOK_PATH>: verify the signature, drop repeats, acknowledge at once, queue the work."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from gidgethub.sansio import Event

from app.dispatch import QueueClosedError, SubjectQueue
from app.ids import subject_key

if TYPE_CHECKING:
    from gidgethub.routing import Router

    from app.github import GitHubAccess

log = logging.getLogger(__name__)

SIGNATURE_256 = "X-Hub-Signature-256"
SIGNATURE_SHA1 = "X-Hub-Signature"
SIGNATURE_PREFIX = "sha256="
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
SHA1_ONLY = "X-Hub-Signature-256 is required; sha1 signatures are not accepted"
MISSING_SIGNATURE = "X-Hub-Signature-256 is required"
BAD_SIGNATURE = "X-Hub-Signature-256 does not match the payload and webhook secret"
MALFORMED_SIGNATURE = "X-Hub-Signature-256 is malformed"
BAD_CONTENT_TYPE = "Content-Type must be application/json"
BAD_JSON = "the body is not a JSON object"
MISSING_HEADER = "the {} header is required"
DEDUPE_MAX_DELIVERIES = 100_000
# Events the app handles even when it caused them itself: the jobs it dispatched (how a dead job
# is noticed), and check runs its runners complete with its token (how a `then:` chain, a split
# and a research summary follow a finished run; docs/workflows-as-code.md).
OWN_EVENTS_HANDLED = frozenset({"workflow_run", "workflow_job", "check_run"})
QUEUED_LABEL = "coder:queued"
# GitHub sends either, depending on the webhook's configured content type.
JSON_CONTENT_TYPE = "application/json"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPES = frozenset({JSON_CONTENT_TYPE, FORM_CONTENT_TYPE})
UTF8_NAMES = frozenset({"utf-8", "utf8"})


class RefusedError(Exception):
    """A delivery answered with an error status; `reason` says why in a few words."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def verified_event(headers: Mapping[str, str], body: bytes, secret: bytes) -> Event:
    """Check the sha256 HMAC over the raw body, then decode it into a gidgethub `Event`.

    What gidgethub's `Event.from_http` does, in the same order: nothing is decoded before the
    signature matches. It differs where DESIGN §7 asks for more: sha1 is refused (gidgethub
    accepts a `sha1=` value even in X-Hub-Signature-256), and the body is decoded by orjson,
    which halves the ack path's largest cost (docs/dependencies.md). Raises `RefusedError`.
    `headers` must be case-insensitive, as aiohttp's are.
    """
    signature = headers.get(SIGNATURE_256)
    if signature is None:
        raise RefusedError(401, SHA1_ONLY if SIGNATURE_SHA1 in headers else MISSING_SIGNATURE)
    expected = SIGNATURE_PREFIX + hmac.digest(secret, body, "sha256").hex()
    try:
        matches = hmac.compare_digest(signature, expected)  # constant time
    except TypeError:
        # compare_digest refuses non-ASCII strings: a garbled header, not a signature.
        raise RefusedError(401, MALFORMED_SIGNATURE) from None
    if not matches:
        raise RefusedError(401, BAD_SIGNATURE)
    payload = _payload(headers.get("Content-Type"), body)
    for name in (EVENT_HEADER, DELIVERY_HEADER):
        if name not in headers:
            raise RefusedError(400, MISSING_HEADER.format(name.lower()))
    return Event(payload, event=headers[EVENT_HEADER], delivery_id=headers[DELIVERY_HEADER])


def _payload(content_type: str | None, body: bytes) -> dict[str, Any]:
    media_type, _, parameters = (content_type or "").partition(";")
    media_type = media_type.strip().lower()
    if media_type not in JSON_CONTENT_TYPES:
        raise RefusedError(400, BAD_CONTENT_TYPE)
    charset = _charset(parameters)
    try:
        document: bytes | str = body if charset in UTF8_NAMES else body.decode(charset)
        if media_type == FORM_CONTENT_TYPE:
            # GitHub's other content type: `payload=<url-encoded JSON>`.
            text = document if isinstance(document, str) else document.decode()
            document = urllib.parse.parse_qs(text)["payload"][0]
        payload = orjson.loads(document)
    except (ValueError, LookupError):  # bad JSON or UTF-8, no `payload=`, an unknown charset
        raise RefusedError(400, BAD_JSON) from None
    if not isinstance(payload, dict):
        raise RefusedError(400, BAD_JSON)
    return payload


def _charset(parameters: str) -> str:
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower() or "utf-8"
    return "utf-8"


class SeenDeliveries:
    """The delivery ids answered in the last `ttl` seconds; at most `maxsize`, oldest out first.

    What a `cachetools.TTLCache` would do at a quarter of the cost once it is full: one fixed TTL
    makes the order of insertion the order of expiry, so only the oldest entries are ever looked at.
    """

    def __init__(
        self, maxsize: int, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._maxsize = maxsize
        self._ttl = ttl
        self._clock = clock
        # OrderedDict, not dict: dropping a dict's first key again and again makes finding the
        # next one slower each time.
        self._expiries: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, delivery_id: str) -> bool:
        """Tell whether `delivery_id` was added less than `ttl` seconds ago."""
        expiry = self._expiries.get(delivery_id)
        return expiry is not None and expiry > self._clock()

    def add(self, delivery_id: str) -> None:
        """Remember `delivery_id` for `ttl` seconds, forgetting what is too old or too many."""
        now = self._clock()
        expiries = self._expiries
        expiries[delivery_id] = now + self._ttl
        expiries.move_to_end(delivery_id)
        while expiries and (len(expiries) > self._maxsize or next(iter(expiries.values())) <= now):
            expiries.popitem(last=False)

    def discard(self, delivery_id: str) -> None:
        """Forget `delivery_id`, so that its redelivery is handled."""
        self._expiries.pop(delivery_id, None)


class WebhookReceiver:
    """The webhook endpoint and the background work each accepted delivery turns into."""

    def __init__(
        self,
        *,
        secret: str,
        router: Router,
        queue: SubjectQueue,
        access: GitHubAccess,
        delivery_ttl_seconds: float,
        max_body_bytes: int,
    ) -> None:
        self._secret = secret.encode()
        self._router = router
        self._queue = queue
        self._access = access
        self._max_body_bytes = max_body_bytes
        # An optimisation, not a guarantee: every effect is idempotent on its own (DESIGN §2).
        self._seen = SeenDeliveries(DEDUPE_MAX_DELIVERIES, delivery_ttl_seconds)

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one delivery within milliseconds; the work happens on the queue."""
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            # GitHub never sends more than 25 MB (it drops larger payloads), so this is not GitHub.
            reason = f"the body exceeds {self._max_body_bytes} bytes"
            return _reject(request, 413, reason)
        try:
            event = verified_event(request.headers, body, self._secret)
        except RefusedError as refused:
            return _reject(request, refused.status, refused.reason)
        return self._accept(event)

    def _accept(self, event: Event) -> web.Response:
        delivery_id = event.delivery_id
        if delivery_id in self._seen:
            _log_delivery(event, "duplicate")
            return _reply(200, "duplicate")
        self._seen.add(delivery_id)
        if event.event == "ping":
            _log_delivery(event, "pong")
            return _reply(200, "pong")
        if not self._router.fetch(event):
            _log_delivery(event, "ignored: no handler")
            return _reply(200, "ignored")
        bot_login = self._access.known_bot_login
        if bot_login is not None and _ignores_own(event) and _sender(event) == bot_login:
            _log_delivery(event, "ignored: sent by the app")
            return _reply(200, "ignored")
        try:
            self._queue.submit(subject_key(event), delivery_id, lambda: self._process(event))
        except QueueClosedError:
            self._seen.discard(delivery_id)  # let GitHub's redelivery through once we are back
            _log_delivery(event, "refused: shutting down")
            return _reply(503, "unavailable")
        return _reply(202, "accepted")

    async def _process(self, event: Event) -> str:
        started = time.perf_counter()
        outcome = "error"
        try:
            outcome = await self._dispatch(event)
            return outcome
        except asyncio.CancelledError:
            outcome = "cancelled"
            self._forget(event.delivery_id)
            raise
        except Exception as error:
            outcome = f"error: {type(error).__name__}"
            self._forget(event.delivery_id)
            raise
        finally:
            _log_delivery(event, outcome, (time.perf_counter() - started) * 1000)

    def _forget(self, delivery_id: str) -> None:
        # Work that failed or was abandoned must not turn GitHub's (or an operator's) redelivery
        # into a "duplicate": handlers are idempotent, so running the delivery again is safe.
        self._seen.discard(delivery_id)

    async def _dispatch(self, event: Event) -> str:
        # The "404 right after the event" window opens when the work starts, not at the ack: time
        # spent queued behind other deliveries must not use it up.
        work_started_at = self._access.clock()
        sender = _sender(event)
        # Only bots can be the app; avoid the one-time GET /app for everyone else.
        if (
            _ignores_own(event)
            and sender.endswith("[bot]")
            and sender == await self._access.bot_login()
        ):
            return "ignored: sent by the app"
        installation = event.data.get("installation")
        installation_id = installation.get("id") if isinstance(installation, Mapping) else None
        if isinstance(installation_id, int):
            gh = self._access.for_installation(installation_id, event_received_at=work_started_at)
        else:
            gh = self._access.app_client()
        await self._router.dispatch(event, gh)
        return "ok"


def _ignores_own(event: Event) -> bool:
    """Whether an event the app itself caused is dropped (it would otherwise loop back)."""
    # The sender of workflow_run / workflow_job is whoever dispatched the workflow, and of
    # check_run.completed whoever completed it: for coder's runs that is the app, and those
    # events are how the app learns a run ended, so they count. So does a runner taking
    # `coder:queued` off its pull request: that is how a fix that waited for it starts.
    if event.event == "pull_request" and event.data.get("action") == "unlabeled":
        label = event.data.get("label")
        return not (isinstance(label, Mapping) and label.get("name") == QUEUED_LABEL)
    return event.event not in OWN_EVENTS_HANDLED


def _sender(event: Event) -> str:
    sender = event.data.get("sender")
    return str(sender.get("login", "")) if isinstance(sender, Mapping) else ""


def _reply(status: int, outcome: str, reason: str | None = None) -> web.Response:
    body = {"status": outcome} if reason is None else {"status": outcome, "reason": reason}
    return web.Response(
        body=orjson.dumps(body), status=status, content_type=JSON_CONTENT_TYPE, charset="utf-8"
    )


def _reject(request: web.Request, status: int, reason: str) -> web.Response:
    log.warning(
        "webhook rejected (%d): %s; delivery %s",
        status,
        reason,
        request.headers.get(DELIVERY_HEADER, "-"),
        extra={"delivery_id": request.headers.get(DELIVERY_HEADER), "outcome": "rejected"},
    )
    return _reply(status, "rejected", reason)


def _log_delivery(event: Event, outcome: str, ms: float | None = None) -> None:
    action = event.data.get("action")
    repository = event.data.get("repository")
    repo = repository.get("full_name") if isinstance(repository, Mapping) else None
    name = f"{event.event}.{action}" if isinstance(action, str) else event.event
    log.info(
        "delivery %s %s %s: %s%s",
        event.delivery_id,
        name,
        repo or "-",
        outcome,
        "" if ms is None else f" ({ms:.0f} ms)",
        extra={
            "event": event.event,
            "action": action,
            "delivery_id": event.delivery_id,
            "repo": repo,
            "outcome": outcome,
            "ms": None if ms is None else round(ms, 1),
        },
    )
