"""REST: the GitHub App and its installations (JWT endpoints) and installation tokens.

https://docs.github.com/rest/apps/apps and https://docs.github.com/rest/apps/installations
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from devhub.http import (
    API_PREFIX,
    Context,
    GitHubError,
    context,
    json_response,
    not_found,
    paged_json,
    paginate,
    principal,
    read_body,
    require_auth,
)
from devhub.rest_auth import JWT_UNDECODABLE, Principal
from devhub.rest_json import app_json, installation_json, repo_json
from devhub.state import APP_PERMISSION_LEVELS, Installation, Repo, Role, iso, utcnow

ROUTES = web.RouteTableDef()

TOKEN_LIFETIME = timedelta(hours=1)
UNKNOWN_REPOSITORY = (
    "There is at least one repository that does not exist or is not accessible to the parent "
    "installation."
)
PERMISSIONS_NOT_GRANTED = "The permissions requested are not granted to this installation."
NOT_AN_INSTALLATION = "This endpoint requires you to be authenticated as an installation."
INSTALLATION_DOCS = (
    "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app"
)


def require_app(request: web.Request) -> Principal:
    """Demand an app JWT; GitHub answers any other credential with 401."""
    caller = principal(request)
    if caller.kind not in {"app", "admin"}:
        raise GitHubError(401, JWT_UNDECODABLE)
    return caller


def _installation(request: web.Request) -> Installation:
    try:
        installation_id = int(request.match_info["installation_id"])
    except ValueError:
        raise not_found() from None
    installation = context(request).state.installations.get(installation_id)
    if installation is None:
        raise not_found()
    return installation


@ROUTES.get(API_PREFIX + "/app")
async def get_app(request: web.Request) -> web.Response:
    """Describe the authenticated app."""
    require_app(request)
    ctx = context(request)
    return json_response(
        app_json(ctx.urls, ctx.app) | {"installations_count": len(ctx.state.installations)}
    )


@ROUTES.get(API_PREFIX + "/app/installations")
async def list_installations(request: web.Request) -> web.Response:
    """List the app's installations."""
    require_app(request)
    ctx = context(request)
    installations = sorted(ctx.state.installations.values(), key=lambda i: i.id)
    return paged_json(request, installations, lambda i: _listed_installation(ctx, i))


def _listed_installation(ctx: Context, installation: Installation) -> dict[str, Any]:
    # GitHub's description of this list (apps/list-installations) types `account` as
    # allOf[simple-user, enterprise] rather than anyOf, so each entry also carries the
    # enterprise fields; the single-installation endpoints use anyOf and do not need them.
    body = installation_json(ctx.urls, ctx.app, installation)
    account = installation.account
    body["account"] |= {
        "name": account.name or account.login,
        "slug": account.login.lower(),
        "created_at": iso(account.created_at),
        "updated_at": iso(account.created_at),
    }
    return body


@ROUTES.get(API_PREFIX + "/app/installations/{installation_id}")
async def get_installation(request: web.Request) -> web.Response:
    """Describe one installation."""
    require_app(request)
    ctx = context(request)
    return json_response(installation_json(ctx.urls, ctx.app, _installation(request)))


@ROUTES.post(API_PREFIX + "/app/installations/{installation_id}/access_tokens")
async def create_access_token(request: web.Request) -> web.Response:
    """Mint an installation token, narrowed to repositories and permissions if asked."""
    require_app(request)
    ctx = context(request)
    installation = _installation(request)
    body = await read_body(request)
    repos = _narrowed_repos(ctx.state.installation_repos(installation), body)
    permissions = _narrowed_permissions(installation.permissions, body.get("permissions"))
    token = ctx.state.issue_installation_token(
        installation,
        ctx.app.bot,
        expires_at=utcnow() + TOKEN_LIFETIME,
        repository_ids=frozenset(r.id for r in repos) if repos is not None else None,
        permissions=permissions,
    )
    answer: dict[str, Any] = {
        "token": token.value,
        "expires_at": iso(token.expires_at),
        "permissions": permissions,
        "repository_selection": "selected"
        if repos is not None
        else installation.repository_selection,
    }
    if repos is not None:
        answer["repositories"] = [repo_json(ctx.urls, r) for r in repos]
    return json_response(answer, status=201)


def _narrowed_repos(reachable: list[Repo], body: dict[str, Any]) -> list[Repo] | None:
    names, ids = body.get("repositories"), body.get("repository_ids")
    if names is None and ids is None:
        return None
    if not isinstance(names, list | type(None)) or not isinstance(ids, list | type(None)):
        raise GitHubError(422, UNKNOWN_REPOSITORY, documentation_url=INSTALLATION_DOCS)
    chosen: list[Repo] = []
    for name in names or []:
        found = next(
            (
                r
                for r in reachable
                if isinstance(name, str) and r.name.casefold() == name.casefold()
            ),
            None,
        )
        if found is None:
            raise GitHubError(422, UNKNOWN_REPOSITORY, documentation_url=INSTALLATION_DOCS)
        chosen.append(found)
    for repo_id in ids or []:
        found = next((r for r in reachable if r.id == repo_id), None)
        if found is None:
            raise GitHubError(422, UNKNOWN_REPOSITORY, documentation_url=INSTALLATION_DOCS)
        chosen.append(found)
    unique = {r.id: r for r in chosen}
    return sorted(unique.values(), key=lambda r: r.id)


def _narrowed_permissions(granted: dict[str, str], requested: object) -> dict[str, str]:
    if requested is None:
        return dict(granted)
    if not isinstance(requested, dict):
        raise GitHubError(422, PERMISSIONS_NOT_GRANTED, documentation_url=INSTALLATION_DOCS)
    narrowed: dict[str, str] = {}
    for name, level in requested.items():
        have = APP_PERMISSION_LEVELS.get(granted.get(name, ""), 0)
        want = APP_PERMISSION_LEVELS.get(level, 99) if isinstance(level, str) else 99
        if want > have:
            raise GitHubError(422, PERMISSIONS_NOT_GRANTED, documentation_url=INSTALLATION_DOCS)
        narrowed[name] = level
    # Like GitHub, a narrowed token still reads metadata when the installation may.
    if "metadata" in granted:
        narrowed.setdefault("metadata", "read")
    return narrowed


def _installation_for(request: web.Request, login: str) -> web.Response:
    ctx = context(request)
    account = ctx.state.account(login)
    installation = ctx.state.installation_for(account) if account else None
    if installation is None:
        raise not_found()
    return json_response(installation_json(ctx.urls, ctx.app, installation))


@ROUTES.get(API_PREFIX + "/repos/{owner}/{repo}/installation")
async def get_repo_installation(request: web.Request) -> web.Response:
    """Find the installation that covers a repository."""
    require_app(request)
    ctx = context(request)
    repo = ctx.state.repo(request.match_info["owner"], request.match_info["repo"])
    installation = ctx.state.installation_for(repo.owner) if repo else None
    if (
        repo is None
        or installation is None
        or not ctx.state.installation_covers(installation, repo)
    ):
        raise not_found()
    return json_response(installation_json(ctx.urls, ctx.app, installation))


@ROUTES.get(API_PREFIX + "/orgs/{org}/installation")
async def get_org_installation(request: web.Request) -> web.Response:
    """Find the installation on an organization."""
    require_app(request)
    return _installation_for(request, request.match_info["org"])


@ROUTES.get(API_PREFIX + "/users/{username}/installation")
async def get_user_installation(request: web.Request) -> web.Response:
    """Find the installation on a user account."""
    require_app(request)
    return _installation_for(request, request.match_info["username"])


@ROUTES.get(API_PREFIX + "/installation/repositories")
async def list_installation_repos(request: web.Request) -> web.Response:
    """List the repositories an installation token can reach."""
    caller = require_auth(request)
    if caller.kind != "installation" or caller.token is None or caller.token.installation is None:
        raise GitHubError(403, NOT_AN_INSTALLATION)
    ctx = context(request)
    installation = caller.token.installation
    repos = [
        r for r in ctx.state.installation_repos(installation) if caller.can_reach(ctx.state, r)
    ]
    page, headers = paginate(request, repos)
    role = Role.WRITE if caller.permissions.get("contents") == "write" else Role.READ
    selection = (
        "selected" if caller.token.repository_ids is not None else installation.repository_selection
    )
    return json_response(
        {
            "total_count": len(repos),
            "repository_selection": selection,
            "repositories": [repo_json(ctx.urls, r, role=role) for r in page],
        },
        headers=headers,
    )
