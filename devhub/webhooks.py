"""Webhook payloads, signing, in-order delivery, the delivery log and redelivery.

GitHub acknowledges the API call first and delivers afterwards, so `emit` only records and
queues; one worker posts the app's deliveries in order with a 10 s timeout, like GitHub:
https://docs.github.com/webhooks/using-webhooks/best-practices-for-using-webhooks
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

import aiohttp

from devhub.rest_json import (
    JSON,
    Urls,
    installation_json,
    org_json,
    repo_brief_json,
    repo_json,
    user_json,
)
from devhub.state import Account, App, Delivery, Installation, Repo, State, iso, node_id, utcnow

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from devhub.contract import WebhookContract

LOG = logging.getLogger("devhub.webhooks")

# GitHub sends these to every app whatever it subscribed to.
ALWAYS_DELIVERED = frozenset({"installation", "installation_repositories", "ping"})
DELIVERY_TIMEOUT = 10.0
USER_AGENT = "GitHub-Hookshot/de7b0b"
HOOK_ID = 1
RESPONSE_BODY_LIMIT = 2000
ZEN = "Design for failure."


def sign(secret: str, body: bytes) -> dict[str, str]:
    """Return both signature headers GitHub sends (sha1 for old clients, sha256)."""
    key = secret.encode()
    return {
        "X-Hub-Signature": "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest(),
        "X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(),
    }


class Webhooks:
    """The seeded app's webhook: builds payloads, delivers them in order and records each try."""

    def __init__(
        self,
        state: State,
        app: App,
        secret: str,
        urls: Urls,
        *,
        contract: WebhookContract | None = None,
        on_violation: Callable[[str], None] | None = None,
    ) -> None:
        self.state = state
        self.app = app
        self.secret = secret
        self.urls = urls
        self.contract = contract
        self.on_violation = on_violation or (lambda _message: None)
        self._url: str | None = None
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._changed = asyncio.Condition()
        self._worker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._hook_created = utcnow()

    @property
    def url(self) -> str | None:
        """Return where deliveries go (None: the app has no active webhook)."""
        return self._url

    @url.setter
    def url(self, value: str | None) -> None:
        # GitHub pings a hook when it is created; devhub treats every new URL as a new hook, so an
        # app sees a `ping` first, as it would right after registering on github.com.
        changed = value != self._url
        self._url = value
        if changed and value is not None:
            self._hook_created = utcnow()
            payload = self._ping_payload(value)
            self._check("ping", None, payload)
            self._enqueue("ping", None, payload, installation=None, repo=None)

    async def start(self) -> None:
        """Start the delivery worker."""
        timeout = aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._worker = asyncio.create_task(self._run(), name="devhub-webhooks")

    async def stop(self) -> None:
        """Stop delivering; deliveries still queued are dropped."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # building

    def emit(
        self,
        event: str,
        body: JSON,
        *,
        sender: Account,
        action: str | None = None,
        repo: Repo | None = None,
        installation: Installation | None = None,
    ) -> Delivery | None:
        """Deliver an event to the app if it is installed there and subscribed to it.

        In strict mode the payload is checked against GitHub's schema even when nobody would
        receive it, so every event devhub can produce is held to the contract.
        """
        if installation is None and repo is not None:
            installation = self.state.installation_for(repo.owner)
            if installation is not None and not self.state.installation_covers(installation, repo):
                installation = None
        payload: JSON = {"action": action} if action is not None else {}
        payload |= body
        if repo is not None:
            payload["repository"] = repo_json(self.urls, repo, push_event=event == "push")
        org = repo.owner if repo is not None else installation.account if installation else None
        if org is not None and org.type == "Organization":
            payload["organization"] = org_json(self.urls, org)
        payload["sender"] = user_json(self.urls, sender)
        if installation is not None and "installation" not in payload:
            payload["installation"] = {
                "id": installation.id,
                "node_id": node_id("MDIz", installation.id),
            }
        self._check(event, action, payload)
        if installation is None:
            return None
        if event not in ALWAYS_DELIVERED and event not in self.app.events:
            return None
        return self._enqueue(event, action, payload, installation=installation, repo=repo)

    def check_payload(self, event: str, payload: JSON) -> None:
        """Check a payload devhub builds but never delivers (an Actions event file)."""
        action = payload.get("action")
        self._check(event, action if isinstance(action, str) else None, payload)

    def _check(self, event: str, action: str | None, payload: JSON) -> None:
        if self.contract is None:
            return
        name = f"{event}.{action}" if action else event
        for problem in self.contract.validate(event, payload):
            self.on_violation(f"webhook {name}: {problem}")

    def installation_body(self, installation: Installation) -> JSON:
        """Render the full installation object that installation events carry."""
        return installation_json(self.urls, self.app, installation)

    def repositories_changed(
        self,
        installation: Installation,
        *,
        added: list[Repo],
        removed: list[Repo],
        sender: Account,
    ) -> None:
        """Emit `installation_repositories` for repositories added to or removed from an install."""
        for action, repos in (("added", added), ("removed", removed)):
            if not repos:
                continue
            body = {
                "installation": self.installation_body(installation),
                "repository_selection": installation.repository_selection,
                "repositories_added": [repo_brief_json(r) for r in repos if action == "added"],
                "repositories_removed": [repo_brief_json(r) for r in repos if action == "removed"],
                "requester": None,
            }
            self.emit(
                "installation_repositories",
                body,
                action=action,
                sender=sender,
                installation=installation,
            )

    def _ping_payload(self, url: str) -> JSON:
        created = iso(self._hook_created)
        return {
            "zen": ZEN,
            "hook_id": HOOK_ID,
            "hook": {
                "type": "App",
                "id": HOOK_ID,
                "name": "web",
                "active": True,
                "events": list(self.app.events),
                "config": {"content_type": "json", "insecure_ssl": "0", "url": url},
                "updated_at": created,
                "created_at": created,
                "app_id": self.app.id,
                "deliveries_url": f"{self.urls.api}/app/hook/deliveries",
            },
        }

    def _enqueue(
        self,
        event: str,
        action: str | None,
        payload: JSON,
        *,
        installation: Installation | None,
        repo: Repo | None,
    ) -> Delivery | None:
        if self._url is None:
            return None
        body = json.dumps(payload, separators=(",", ":")).encode()
        guid = str(uuid.uuid4())
        headers = {
            "Accept": "*/*",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-GitHub-Delivery": guid,
            "X-GitHub-Event": event,
            "X-GitHub-Hook-ID": str(HOOK_ID),
            "X-GitHub-Hook-Installation-Target-ID": str(self.app.id),
            "X-GitHub-Hook-Installation-Target-Type": "integration",
        } | sign(self.secret, body)
        delivery = Delivery(
            id=self.state.next_id(),
            guid=guid,
            event=event,
            action=action,
            installation_id=installation.id if installation else None,
            repository_id=repo.id if repo else None,
            url=self._url,
            request_headers=headers,
            body=body,
        )
        self.state.deliveries.append(delivery)
        self._queue.put_nowait(delivery)
        return delivery

    # delivering

    def redeliver(self, delivery: Delivery) -> Delivery:
        """Queue the same body with the same `X-GitHub-Delivery` guid, as GitHub's does."""
        url = self._url or delivery.url
        again = replace(
            delivery,
            id=self.state.next_id(),
            url=url,
            redelivery=True,
            delivered_at=None,
            status_code=None,
            error=None,
            duration_ms=None,
            response_body=None,
            request_headers=delivery.request_headers | sign(self.secret, delivery.body),
        )
        self.state.deliveries.append(again)
        self._queue.put_nowait(again)
        return again

    async def _run(self) -> None:
        while True:
            delivery = await self._queue.get()
            try:
                await self._send(delivery)
            except Exception as error:  # the worker must outlive any one delivery
                delivery.error = f"{type(error).__name__}: {error}"
                LOG.exception("delivery %s failed", delivery.guid)
            async with self._changed:
                self._changed.notify_all()

    async def _send(self, delivery: Delivery) -> None:
        assert self._session is not None
        started = time.perf_counter()
        delivery.delivered_at = utcnow()
        try:
            async with self._session.post(
                delivery.url, data=delivery.body, headers=delivery.request_headers
            ) as response:
                text = await response.text(errors="replace")
                delivery.status_code = response.status
                delivery.response_body = text[:RESPONSE_BODY_LIMIT]
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            delivery.error = (
                f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            )
        delivery.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        LOG.info(
            "delivered %s %s.%s -> %s in %.1f ms",
            delivery.guid,
            delivery.event,
            delivery.action,
            delivery.status_code or delivery.error,
            delivery.duration_ms,
        )

    async def follow(self, start: int = 0) -> AsyncIterator[Delivery]:
        """Yield deliveries in order as each completes, from index `start` of the log, forever."""
        index = start
        while True:
            async with self._changed:
                await self._changed.wait_for(partial(self._completed_at, index))
                delivery = self.state.deliveries[index]
            index += 1
            yield delivery

    def _completed_at(self, index: int) -> bool:
        deliveries = self.state.deliveries
        return index < len(deliveries) and deliveries[index].completed

    async def wait_for(
        self,
        match: Callable[[Delivery], bool],
        *,
        timeout: float,  # noqa: ASYNC109 - callers pass a deadline, as DevHub's interface does
    ) -> Delivery:
        """Return the first completed delivery that matches, waiting for one if needed."""
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for delivery in self.state.deliveries:
                    if delivery.completed and match(delivery):
                        return delivery
                await self._changed.wait()


def delivery_json(delivery: Delivery, *, full: bool = False) -> dict[str, Any]:
    """Render a delivery for the admin API (`full` adds the request headers and payload)."""
    body: dict[str, Any] = {
        "id": delivery.id,
        "guid": delivery.guid,
        "event": delivery.event,
        "action": delivery.action,
        "installation_id": delivery.installation_id,
        "repository_id": delivery.repository_id,
        "url": delivery.url,
        "redelivery": delivery.redelivery,
        "delivered_at": iso(delivery.delivered_at),
        "status_code": delivery.status_code,
        "error": delivery.error,
        "duration_ms": delivery.duration_ms,
    }
    if full:
        body["request"] = {
            "headers": dict(delivery.request_headers),
            "payload": json.loads(delivery.body),
        }
        body["response"] = {"body": delivery.response_body}
    return body


def matcher(
    event: str, action: str | None, predicate: Callable[[Delivery], bool] | None
) -> Callable[[Delivery], bool]:
    """Build the match function used by `DevHub.wait_for_delivery`."""

    def match(delivery: Delivery) -> bool:
        if delivery.event != event or (action is not None and delivery.action != action):
            return False
        return predicate is None or predicate(delivery)

    return match
