"""The admin API at `/_devhub`: what github.com does outside its REST API.

Create users, organizations and bots; install the app; inspect and redeliver webhook deliveries;
list API requests; inject faults. Every call needs `Authorization: token <admin token>`.
"""

from __future__ import annotations

import hmac
import json
import re
from typing import Any, Literal

from aiohttp import web

from devhub.http import Context, Handler, context, json_response
from devhub.rest_auth import credential_from_header
from devhub.rest_json import repo_brief_json
from devhub.rest_limits import Fault, FaultSpecError
from devhub.state import Account, Installation, Repo, iso, utcnow
from devhub.webhooks import delivery_json

ROUTES = web.RouteTableDef()

PREFIX = "/_devhub"
ACCOUNT_TYPES = ("User", "Organization", "Bot")
LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
BOT_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?$")
REDELIVERY_TIMEOUT = 15.0


class AdminError(Exception):
    """An admin API error, answered as `{"message": ...}` by `admin_middleware`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@web.middleware
async def admin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer AdminError as JSON for the admin API."""
    try:
        return await handler(request)
    except AdminError as error:
        return json_response({"message": error.message}, status=error.status)


def admin_context(request: web.Request) -> Context:
    """Return devhub's context once the caller proved to hold the admin token."""
    ctx = context(request)
    credential = credential_from_header(request.headers.get("Authorization"))
    if not credential or not hmac.compare_digest(credential, ctx.admin_token):
        raise AdminError(401, "Bad credentials: the admin API needs the devhub admin token")
    return ctx


async def admin_body(request: web.Request) -> dict[str, Any]:
    """Read a JSON object body (400 otherwise)."""
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise AdminError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise AdminError(400, "the body must be a JSON object")
    return body


@ROUTES.post(PREFIX + "/users")
async def create_user(request: web.Request) -> web.Response:
    """Create a user, organization or bot; people and bots get a personal token."""
    ctx = admin_context(request)
    body = await admin_body(request)
    login, kind = body.get("login"), body.get("type", "User")
    if kind not in ACCOUNT_TYPES:
        raise AdminError(422, f"type must be one of {', '.join(ACCOUNT_TYPES)}")
    pattern = BOT_LOGIN if kind == "Bot" else LOGIN
    if not isinstance(login, str) or not pattern.match(login):
        raise AdminError(422, "login must be 1-39 letters, digits or single hyphens, as on GitHub")
    if ctx.state.account(login) is not None:
        raise AdminError(422, f"login {login!r} is already taken")
    name = body.get("name")
    account = ctx.state.add_account(login, kind, name=name if isinstance(name, str) else None)
    token = None if kind == "Organization" else ctx.state.issue_user_token(account).value
    answer = {"login": account.login, "id": account.id, "type": account.type, "token": token}
    return json_response(answer, status=201)


@ROUTES.post(PREFIX + "/installations")
async def install(request: web.Request) -> web.Response:
    """Install the app on an account (or change which repositories it sees)."""
    ctx = admin_context(request)
    body = await admin_body(request)
    login = body.get("account")
    account = ctx.state.account(login) if isinstance(login, str) else None
    if account is None or account.type == "Bot":
        raise AdminError(422, "account must be the login of an existing user or organization")
    selection, repos = _selection(ctx, account, body.get("repositories", "all"))
    sender = _installer(ctx, account)
    existing = ctx.state.installation_for(account)
    if existing is not None:
        before = ctx.state.installation_repos(existing)
        existing.repository_selection = selection
        existing.repository_ids = {r.id for r in repos}
        existing.updated_at = utcnow()
        after = ctx.state.installation_repos(existing)
        added = [r for r in after if r not in before]
        removed = [r for r in before if r not in after]
        ctx.webhooks.repositories_changed(existing, added=added, removed=removed, sender=sender)
        return json_response(ctx.webhooks.installation_body(existing))
    now = utcnow()
    installation = Installation(
        id=ctx.state.next_id(),
        account=account,
        repository_selection=selection,
        repository_ids={r.id for r in repos},
        permissions=dict(ctx.app.permissions),
        events=list(ctx.app.events),
        created_at=now,
        updated_at=now,
    )
    ctx.state.installations[installation.id] = installation
    payload = {
        "installation": ctx.webhooks.installation_body(installation),
        "repositories": [repo_brief_json(r) for r in ctx.state.installation_repos(installation)],
        "requester": None,
    }
    ctx.webhooks.emit(
        "installation", payload, action="created", sender=sender, installation=installation
    )
    return json_response(ctx.webhooks.installation_body(installation), status=201)


def _selection(
    ctx: Context, account: Account, wanted: object
) -> tuple[Literal["all", "selected"], list[Repo]]:
    if wanted == "all":
        return "all", []
    if not isinstance(wanted, list) or not all(isinstance(name, str) for name in wanted):
        raise AdminError(422, 'repositories must be "all" or a list of repository names')
    repos = []
    for name in wanted:
        repo = ctx.state.repo(account.login, name)
        if repo is None:
            raise AdminError(422, f"repository {account.login}/{name} does not exist")
        repos.append(repo)
    return "selected", repos


def _installer(ctx: Context, account: Account) -> Account:
    """Return who clicked Install: the user, or the organization's first owner."""
    if account.type != "Organization":
        return account
    owners = [
        uid for uid, role in ctx.state.org_members.get(account.id, {}).items() if role == "admin"
    ]
    found = ctx.state.account_by_id(min(owners)) if owners else None
    return found or ctx.admin


@ROUTES.get(PREFIX + "/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    """List webhook deliveries, oldest first (`?event=` and `?action=` filter)."""
    ctx = admin_context(request)
    event, action = request.query.get("event"), request.query.get("action")
    chosen = [
        d
        for d in ctx.state.deliveries
        if (event is None or d.event == event) and (action is None or d.action == action)
    ]
    return json_response([delivery_json(d) for d in chosen])


def _delivery(ctx: Context, request: web.Request) -> Any:
    try:
        wanted = int(request.match_info["delivery_id"])
    except ValueError:
        raise AdminError(404, "no such delivery") from None
    found = next((d for d in ctx.state.deliveries if d.id == wanted), None)
    if found is None:
        raise AdminError(404, f"no delivery with id {wanted}")
    return found


@ROUTES.get(PREFIX + "/deliveries/{delivery_id}")
async def get_delivery(request: web.Request) -> web.Response:
    """Show one delivery with its request headers and payload."""
    ctx = admin_context(request)
    return json_response(delivery_json(_delivery(ctx, request), full=True))


@ROUTES.post(PREFIX + "/deliveries/{delivery_id}/redeliver")
async def redeliver(request: web.Request) -> web.Response:
    """Send a delivery again (same body, same `X-GitHub-Delivery`) and report the outcome."""
    ctx = admin_context(request)
    original = _delivery(ctx, request)
    again = ctx.webhooks.redeliver(original)
    try:
        await ctx.webhooks.wait_for(lambda d: d is again, timeout=REDELIVERY_TIMEOUT)
    except TimeoutError:
        return json_response(delivery_json(again), status=202)
    return json_response(delivery_json(again), status=201)


@ROUTES.get(PREFIX + "/requests")
async def list_requests(request: web.Request) -> web.Response:
    """List every API, GraphQL and git request devhub answered."""
    ctx = admin_context(request)
    return json_response(
        [
            {
                "id": r.id,
                "method": r.method,
                "path": r.path,
                "query": r.query,
                "status": r.status,
                "token_owner": r.token_owner,
                "token_repository_ids": r.token_repository_ids,
                "ms": r.ms,
                "at": iso(r.at),
                "unimplemented": r.unimplemented,
                "rate_limited": r.counted,
                "fault": r.fault,
            }
            for r in ctx.state.requests
        ]
    )


@ROUTES.post(PREFIX + "/faults")
async def add_fault(request: web.Request) -> web.Response:
    """Inject a fault (status, latency, reset, secondary or primary rate limit)."""
    ctx = admin_context(request)
    try:
        fault: Fault = ctx.faults.add(await admin_body(request))
    except FaultSpecError as error:
        raise AdminError(422, str(error)) from None
    return json_response(fault.to_json(), status=201)


@ROUTES.get(PREFIX + "/faults")
async def list_faults(request: web.Request) -> web.Response:
    """List the faults still active."""
    ctx = admin_context(request)
    return json_response([fault.to_json() for fault in ctx.faults.active])


@ROUTES.delete(PREFIX + "/faults")
async def clear_faults(request: web.Request) -> web.Response:
    """Remove every fault."""
    admin_context(request).faults.clear()
    return web.Response(status=204)
