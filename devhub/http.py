"""devhub's HTTP plumbing, once: errors, auth, permissions, paging, ETags, limits, faults.

Every request to `/api/v3`, `/api/graphql` and the git paths goes through `api_middleware`, which
applies GitHub's cross-cutting behaviour in a fixed order: authenticate, check the request against
the contract (strict mode, even when a fault then answers), inject faults, enforce the rate limit,
run the route, answer conditional GETs with 304, check the response, apply faults that strike after
the route did its work, set GitHub's headers and record the request for `GET /_devhub/requests`.
A path no route serves gets GitHub's 404 and is recorded as unimplemented; in strict mode, the app
asking for one is a contract violation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from devhub import rest_auth
from devhub.rest_auth import Principal
from devhub.rest_limits import Bucket, Fault, Faults, RateLimits
from devhub.state import Account, App, Repo, RequestRecord, Role, State, permission_allows, utcnow

if TYPE_CHECKING:
    from devhub.contract import OpenAPIContract
    from devhub.git import GitStore
    from devhub.oidc import OidcIssuer
    from devhub.rest_json import Urls
    from devhub.runner import LocalRunner
    from devhub.webhooks import Webhooks

LOG = logging.getLogger("devhub")

API_PREFIX = "/api/v3"
GRAPHQL_PATH = "/api/graphql"
DOCS = "https://docs.github.com/rest"
RATE_LIMIT_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY_DOCS = f"{RATE_LIMIT_DOCS}#about-secondary-rate-limits"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
NOT_ACCESSIBLE = "Resource not accessible by integration"
# GitHub answers "Must have admin rights" even when triage would do; it is the real message.
NEEDS_TRIAGE = "Must have admin rights to Repository."
GIT_PATH = re.compile(r"^/[^/]+/[^/]+\.git(/.*)?$")
KNOWN_STATUSES = frozenset(status.value for status in http.HTTPStatus)
# Callers that are the app (its JWT, its installation tokens, a runner's narrowed token): in
# strict mode, a request of theirs that devhub cannot serve is a contract violation.
APP_PRINCIPALS = frozenset({"app", "installation"})

Surface = Literal["rest", "graphql", "git"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GitHubError(Exception):
    """An error answered with GitHub's JSON error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        documentation_url: str = DOCS,
        errors: list[Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.documentation_url = documentation_url
        self.errors = errors
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """Return the JSON body GitHub sends for this error."""
        body: dict[str, Any] = {"message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        body["documentation_url"] = self.documentation_url
        body["status"] = str(self.status)
        return body

    def response(self) -> web.Response:
        """Render the error as an HTTP response."""
        return json_response(self.body(), status=self.status, headers=self.headers)


def not_found() -> GitHubError:
    """Return GitHub's 404, used for missing things and for things the caller may not see."""
    return GitHubError(404, "Not Found")


def validation_failed(resource: str, field_name: str, code: str, **extra: str) -> GitHubError:
    """Return GitHub's 422 `Validation Failed` with one error entry."""
    error: dict[str, Any] = {"resource": resource, "field": field_name, "code": code} | extra
    return GitHubError(422, "Validation Failed", errors=[error])


def json_response(
    body: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Answer with JSON the way GitHub does (compact, utf-8)."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    response = web.Response(text=text, status=status, headers=headers)
    response.content_type = "application/json"
    response.charset = "utf-8"
    return response


def no_content() -> web.Response:
    """Answer 204 No Content."""
    return web.Response(status=204)


# Request bodies


async def read_body(request: web.Request) -> dict[str, Any]:
    """Parse a JSON object body; GitHub answers 400 `Problems parsing JSON` otherwise."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise GitHubError(400, "Problems parsing JSON") from None
    if not isinstance(body, dict):
        raise GitHubError(400, "Problems parsing JSON")
    return body


def _invalid(message: str) -> GitHubError:
    return GitHubError(422, f"Invalid request.\n\n{message}")


def field_str(body: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    """Read a string field, answering GitHub's 422 `Invalid request` when it is wrong."""
    value = body.get(name)
    if value is None:
        if required:
            raise _invalid(f'"{name}" wasn\'t supplied.')
        return None
    if not isinstance(value, str):
        raise _invalid(f"For 'properties/{name}', {json.dumps(value)} is not a string.")
    return value


def field_bool(body: Mapping[str, Any], name: str, *, default: bool) -> bool:
    """Read a boolean field with a default."""
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise _invalid(f"For 'properties/{name}', {json.dumps(value)} is not a boolean.")
    return value


def field_str_list(body: Mapping[str, Any], name: str) -> list[str] | None:
    """Read a list-of-strings field."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(f"For 'properties/{name}', {json.dumps(value)} is not an array of strings.")
    return list(value)


def query_int(request: web.Request, name: str) -> int | None:
    """Read an integer query parameter; GitHub ignores values that are not numbers."""
    raw = request.query.get(name)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


# The context shared by all routes


@dataclass
class Context:
    """What route handlers reach through `request.app[CONTEXT]`."""

    state: State
    app: App
    admin: Account
    git: GitStore
    webhooks: Webhooks
    admin_token: str
    urls: Urls
    openapi: OpenAPIContract | None = None
    # The built-in GitHub Actions app: it owns the check runs of workflow jobs, and the admin
    # token writes checks as it.
    actions_app: App | None = None
    runner: LocalRunner | None = None
    oidc: OidcIssuer | None = None
    violations: list[str] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)
    limits: RateLimits = field(default_factory=RateLimits)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def violation(self, message: str) -> None:
        """Record a contract violation (strict mode) and log it."""
        LOG.warning("contract violation: %s", message)
        self.violations.append(message)


CONTEXT = web.AppKey("devhub.context", Context)
PRINCIPAL = web.RequestKey("devhub.principal", Principal)
REQUEST_ID = web.RequestKey("devhub.request_id", str)


def context(request: web.Request) -> Context:
    """Return devhub's shared context."""
    return request.app[CONTEXT]


def principal(request: web.Request) -> Principal:
    """Return who is calling (set by the middleware)."""
    found = request.get(PRINCIPAL)
    return found if isinstance(found, Principal) else rest_auth.ANONYMOUS


def require_auth(request: web.Request) -> Principal:
    """Return the caller, answering 401 `Requires authentication` for anonymous requests."""
    caller = principal(request)
    if caller.kind == "anonymous":
        raise GitHubError(401, "Requires authentication")
    return caller


def require_person(request: web.Request) -> Principal:
    """Return the caller when it acts as an account (user, bot, admin, installation)."""
    caller = require_auth(request)
    if caller.kind == "app":
        raise GitHubError(403, NOT_ACCESSIBLE)
    return caller


# Repository access


@dataclass(frozen=True)
class RepoAccess:
    """A repository as one caller sees it, with the checks GitHub applies to writes."""

    repo: Repo
    caller: Principal
    role: Role
    # False when an installation token reads a public repository beyond its reach.
    installed: bool = True

    def require(
        self,
        role: Role,
        *,
        app: Sequence[tuple[str, str]] = (),
        message: str | None = None,
    ) -> None:
        """Demand a role (people) or one of the app permissions (installation tokens).

        People without the role get 403 `message`, or 404 when `message` is None (GitHub hides
        write endpoints behind a 404 for callers who may only read).
        """
        if self.caller.kind == "admin":
            return
        if self.caller.kind == "installation":
            if not self.installed:
                # Beyond its installation a token reads public data and changes nothing.
                if role > Role.READ or any(level != "read" for _name, level in app):
                    raise GitHubError(403, NOT_ACCESSIBLE)
                return
            granted = self.caller.permissions
            if app and not any(permission_allows(granted, n, lvl) for n, lvl in app):
                raise GitHubError(403, NOT_ACCESSIBLE)
            return
        if self.caller.kind == "anonymous" and role > Role.READ:
            raise GitHubError(401, "Requires authentication")
        if self.role < role:
            raise GitHubError(403, message) if message else not_found()


def repo_access(request: web.Request) -> RepoAccess:
    """Find `{owner}/{repo}` for the caller, answering 404 when it does not exist or is hidden."""
    ctx = context(request)
    repo = ctx.state.repo(request.match_info["owner"], request.match_info["repo"])
    caller = principal(request)
    if caller.kind == "app":
        # An app's JWT only reaches the /app endpoints; the rest need an installation token.
        raise GitHubError(403, NOT_ACCESSIBLE)
    if repo is None:
        raise not_found()
    role = caller_role(ctx.state, caller, repo)
    if role < Role.READ:
        raise not_found()
    installed = caller.kind != "installation" or caller.can_reach(ctx.state, repo)
    return RepoAccess(repo, caller, role, installed=installed)


def caller_role(state: State, caller: Principal, repo: Repo) -> Role:
    """Return the role a caller has on a repository (installations: by their permissions)."""
    if caller.kind == "admin":
        return Role.ADMIN
    if caller.kind == "installation":
        if not caller.can_reach(state, repo):
            # Installation tokens read public repositories outside their installation (and
            # their narrowing) like anyone, but write nothing there.
            return Role.NONE if repo.private else Role.READ
        if permission_allows(caller.permissions, "administration", "write"):
            return Role.ADMIN
        if permission_allows(caller.permissions, "contents", "write"):
            return Role.WRITE
        return Role.READ
    if caller.account is not None and caller.kind == "user":
        return state.role(caller.account, repo)
    if caller.kind == "app":
        return Role.NONE
    return Role.NONE if repo.private else Role.READ


# Pagination


def paginate(request: web.Request, items: Sequence[Any]) -> tuple[list[Any], dict[str, str]]:
    """Slice a list by `page`/`per_page` and build GitHub's `Link` header."""
    per_page = query_int(request, "per_page") or DEFAULT_PER_PAGE
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    page = max(1, query_int(request, "page") or 1)
    last = max(1, -(-len(items) // per_page))
    start = (page - 1) * per_page
    links = []
    base = context(request).urls.web
    rels = []
    if page < last:
        rels += [("next", page + 1), ("last", last)]
    if page > 1:
        rels += [("prev", min(page - 1, last)), ("first", 1)]
    for rel, number in rels:
        url = request.rel_url.update_query(page=str(number))
        links.append(f'<{base}{url}>; rel="{rel}"')
    headers = {"Link": ", ".join(links)} if links else {}
    return list(items[start : start + per_page]), headers


def paged_json(
    request: web.Request, items: Sequence[Any], render: Callable[[Any], Any]
) -> web.Response:
    """Answer one page of `items`, rendered, with the `Link` header."""
    page, headers = paginate(request, items)
    return json_response([render(item) for item in page], headers=headers)


def rate_limited(caller: Principal) -> GitHubError:
    """Return GitHub's 403 for an exhausted primary rate limit."""
    return GitHubError(403, caller.rate_limit_message(), documentation_url=RATE_LIMIT_DOCS)


class ConnectionResetFault(Exception):  # noqa: N818 - it names the fault, not an error in devhub
    """Raised to drop the connection without answering."""


async def _apply_fault(ctx: Context, fault: Fault, request: web.Request) -> GitHubError | None:
    if fault.kind == "latency":
        # Waiting on `stopping` (not a bare sleep) lets DevHub.stop() end every delay at once.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.stopping.wait(), fault.delay_ms / 1000)
        return None
    if fault.kind == "reset":
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetFault
    if fault.kind == "secondary_rate_limit":
        message = (
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
            "again. If you reach out to GitHub Support for help, please include the request ID "
            f"{request.get(REQUEST_ID, '')}."
        )
        headers = {"retry-after": str(fault.retry_after)}
        return GitHubError(403, message, documentation_url=SECONDARY_DOCS, headers=headers)
    if fault.kind == "primary_rate_limit":
        caller = principal(request)
        headers = {
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(int(time.time()) + fault.retry_after),
        }
        message = caller.rate_limit_message()
        return GitHubError(403, message, documentation_url=RATE_LIMIT_DOCS, headers=headers)
    return _status_error(fault.status)


def _status_error(status: int) -> GitHubError:
    phrase = http.HTTPStatus(status).phrase if status in KNOWN_STATUSES else "Error"
    return GitHubError(status, phrase)


# The middleware


def surface_of(path: str) -> Surface | None:
    """Say which of GitHub's surfaces a path belongs to (None for admin and other paths)."""
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        return "rest"
    if path == GRAPHQL_PATH:
        return "graphql"
    if GIT_PATH.match(path):
        return "git"
    return None


def fault_path(path: str) -> str:
    """Return the path faults match on: after `/api/v3` for REST, the whole path otherwise."""
    if path.startswith(API_PREFIX):
        return path.removeprefix(API_PREFIX) or "/"
    return path


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Apply GitHub's cross-cutting behaviour to every API and git request."""
    surface = surface_of(request.path)
    if surface is None and request.match_info.http_exception is None:
        return await handler(request)  # the admin API, job logs, OIDC discovery
    ctx = context(request)
    started = time.perf_counter()
    request[REQUEST_ID] = _request_id()
    record = RequestRecord(
        id=len(ctx.state.requests) + 1,
        method=request.method,
        path=request.path,
        query=request.query_string,
        status=0,
        token_owner=None,
        ms=0.0,
        at=utcnow(),
    )
    ctx.state.requests.append(record)  # listed from the start; status 0 until answered
    response: web.StreamResponse
    try:
        if surface is None:
            response = _unknown_path(ctx, request, record)
        else:
            response = await _serve(ctx, request, handler, surface, record)
        record.status = response.status
        return response
    except ConnectionResetFault:
        # The transport is already aborted; aiohttp fails to write this answer and moves on
        # quietly, so the client only sees its connection drop.
        return web.Response(status=502)
    except Exception:
        record.status = 500
        raise
    finally:
        record.ms = round((time.perf_counter() - started) * 1000, 3)


async def _serve(
    ctx: Context, request: web.Request, handler: Handler, surface: Surface, record: RequestRecord
) -> web.StreamResponse:
    caller, auth_problem = rest_auth.authenticate(
        ctx.state, ctx.app, ctx.admin, ctx.admin_token, request
    )
    auth_error = GitHubError(401, auth_problem) if auth_problem else None
    if auth_error is not None and surface == "git":
        auth_error.headers["WWW-Authenticate"] = (
            'Basic realm="GitHub"'  # git retries with a password
        )
    request[PRINCIPAL] = caller
    record.token_owner = caller.owner_label
    if caller.token is not None and caller.token.repository_ids is not None:
        record.token_repository_ids = tuple(sorted(caller.token.repository_ids))
    resource = "graphql" if surface == "graphql" else "core"
    if request.path.startswith(f"{API_PREFIX}/search/"):
        resource = "search"
    bucket = ctx.limits.bucket(caller, resource)
    counts = surface != "git" and request.path != f"{API_PREFIX}/rate_limit"
    unimplemented = request.match_info.http_exception is not None
    checked = surface == "rest" and ctx.openapi is not None
    response: web.StreamResponse
    fault = ctx.faults.take(request.method, fault_path(request.path))
    if fault is not None:
        record.fault = fault.kind
        await ctx.faults.announce_hit()
    if unimplemented:
        _unimplemented_by_the_app(ctx, request, caller)
    elif checked:
        # Before any fault answers: what the app sent must be what GitHub accepts, whatever
        # devhub then does with it.
        await _check_request(ctx, request)
    injected = None
    if fault is not None and not fault.after:
        injected = await _apply_fault(ctx, fault, request)
    try:
        if injected is not None:
            raise injected
        if auth_error is not None:
            raise auth_error
        if counts and bucket.remaining == 0:
            counts = False  # refused requests do not use up what is already used up
            raise rate_limited(caller)
        if unimplemented:
            record.unimplemented = True
            LOG.warning("unimplemented: %s %s", request.method, request.path)
            raise not_found()
        response = await handler(request)
    except GitHubError as error:
        response = error.response()
    response = _conditional(request, response)
    if counts and response.status != 304:
        bucket.used += 1
        record.counted = True
    if checked and not unimplemented and injected is None:
        _check_response(ctx, request, response)
    if fault is not None and fault.after:
        response = _lose_answer(fault, request, response)
    if surface != "git":
        _github_headers(request, response, caller, bucket, resource)
    return response


def _lose_answer(
    fault: Fault, request: web.Request, response: web.StreamResponse
) -> web.StreamResponse:
    """Apply a `when: after` fault: the route did its work; the caller never learns of it."""
    if fault.kind == "reset" or response.prepared:
        # A streamed answer (git) is already on its way: dropping the connection is all that's left.
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetFault
    return _status_error(fault.status).response()


def _unknown_path(ctx: Context, request: web.Request, record: RequestRecord) -> web.Response:
    """Answer a path devhub has no route for, outside the API prefixes, with GitHub's 404."""
    caller, _problem = rest_auth.authenticate(
        ctx.state, ctx.app, ctx.admin, ctx.admin_token, request
    )
    record.token_owner = caller.owner_label
    record.unimplemented = True
    LOG.warning("unimplemented: %s %s", request.method, request.path)
    _unimplemented_by_the_app(ctx, request, caller)
    response = not_found().response()
    response.headers["x-github-request-id"] = request[REQUEST_ID]
    return response


def _request_id() -> str:
    raw = uuid.uuid4().hex.upper()
    return f"{raw[:4]}:{raw[4:9]}:{raw[9:16]}:{raw[16:23]}:{raw[23:31]}"


def _conditional(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Add a weak ETag to GET answers and turn a matching `If-None-Match` into a 304."""
    if request.method not in {"GET", "HEAD"} or response.status != 200:
        return response
    if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
        return response
    etag = f'W/"{hashlib.sha256(response.body).hexdigest()[:40]}"'
    candidates = {tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")}
    if etag in candidates or etag.removeprefix("W/") in candidates:
        return web.Response(status=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    return response


def _github_headers(
    request: web.Request,
    response: web.StreamResponse,
    caller: Principal,
    bucket: Bucket,
    resource: str,
) -> None:
    for name, value in bucket.headers(resource).items():
        response.headers.setdefault(name, value)
    response.headers["x-github-request-id"] = request[REQUEST_ID]
    response.headers["x-github-media-type"] = "github.v3; format=json"
    response.headers["x-github-api-version-selected"] = "2022-11-28"
    response.headers["Vary"] = "Accept, Authorization, Cookie, X-GitHub-OTP"
    if caller.kind == "user":
        # Personal tokens are classic PATs with full scopes; GitHub lists them on every answer.
        response.headers["x-oauth-scopes"] = "admin:org, repo, user, workflow"


def _unimplemented_by_the_app(ctx: Context, request: web.Request, caller: Principal) -> None:
    # Tests probe missing endpoints with people's tokens on purpose; the app never should.
    if ctx.openapi is not None and caller.kind in APP_PRINCIPALS:
        path = fault_path(request.path)
        ctx.violation(f"request {request.method} {path}: devhub does not implement it")


async def _check_request(ctx: Context, request: web.Request) -> None:
    assert ctx.openapi is not None
    path = fault_path(request.path)
    body: object | None = None
    raw = await request.read()
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
    for problem in ctx.openapi.validate_request(request.method, path, request.query, body):
        ctx.violation(f"request {request.method} {path}: {problem}")


def _check_response(ctx: Context, request: web.Request, response: web.StreamResponse) -> None:
    assert ctx.openapi is not None
    if response.status == 304 or not isinstance(response, web.Response):
        return
    body: object | None = None
    if isinstance(response.body, bytes) and response.body:
        try:
            body = json.loads(response.body)
        except ValueError:
            return
    path = fault_path(request.path)
    for problem in ctx.openapi.validate_response(request.method, path, response.status, body):
        ctx.violation(f"response {request.method} {path} {response.status}: {problem}")
