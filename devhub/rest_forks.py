"""REST: forking a repository and listing its forks.

https://docs.github.com/rest/repos/forks. A fork is a real bare repository holding the parent's
branches and tags, owned by the caller or an organization. GitHub forks asynchronously and
answers 202; devhub forks at once and answers 202 all the same. Pull requests from a fork to its
parent live in `rest_pulls.py`; the parent keeps their heads as `refs/pull/<n>/head`.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from aiohttp import web

from devhub.git import RepoExists
from devhub.http import (
    API_PREFIX,
    NOT_ACCESSIBLE,
    Context,
    GitHubError,
    RepoAccess,
    caller_role,
    context,
    field_bool,
    field_str,
    json_response,
    not_found,
    paged_json,
    read_body,
    repo_access,
    require_person,
)
from devhub.rest_json import JSON, full_repo_json, repo_json
from devhub.rest_repos import NEEDS_ORG_ADMIN, REPO_NAME, creation_failed
from devhub.state import Account, Repo, Role, permission_allows, utcnow

if TYPE_CHECKING:
    from devhub.rest_auth import Principal

ROUTES = web.RouteTableDef()

FORKS = API_PREFIX + "/repos/{owner}/{repo}/forks"
# GitHub's refusal for a repository without commits (403, as for other fork refusals).
EMPTY_REPOSITORY = (
    "The repository exists, but it contains no Git content. Empty repositories cannot be forked."
)
MAX_NAME_SUFFIX = 100
FORK_SORTS = {
    "newest": (lambda r: (r.created_at, r.id), True),
    "oldest": (lambda r: (r.created_at, r.id), False),
    # devhub has no stars or watchers; GitHub breaks their ties by age too.
    "stargazers": (lambda r: (r.created_at, r.id), True),
    "watchers": (lambda r: (r.created_at, r.id), True),
}


@ROUTES.post(FORKS)
async def create_fork(request: web.Request) -> web.Response:
    """Fork a repository into the caller's account or `organization` (202 with the fork)."""
    access = repo_access(request)
    caller = require_person(request)
    ctx, parent = context(request), access.repo
    body = await read_body(request)
    organization = field_str(body, "organization")
    name = field_str(body, "name")
    default_branch_only = field_bool(body, "default_branch_only", default=False)
    owner = _destination(ctx, access, organization)
    existing = next((f for f in parent.forks if f.owner is owner), None)
    if existing is not None and name in (None, existing.name):
        # Forking again answers with the fork the account already has.
        role = caller_role(ctx.state, caller, existing)
        return json_response(full_repo_json(ctx.urls, existing, role=role), status=202)
    if await ctx.git.is_empty(parent.owner.login, parent.name):
        raise GitHubError(403, EMPTY_REPOSITORY)
    fork = await _fork(
        ctx, parent, owner, _fork_name(ctx, owner, parent, name), default_branch_only
    )
    creator = caller.account or ctx.admin
    if owner.type == "Organization" and ctx.state.role(creator, fork) < Role.ADMIN:
        fork.collaborators[creator.id] = Role.ADMIN  # as for repositories created in an org
    ctx.webhooks.emit("fork", {"forkee": _forkee_json(ctx, fork)}, sender=creator, repo=parent)
    installation = ctx.state.installation_for(owner)
    if installation is not None and installation.repository_selection == "all":
        ctx.webhooks.repositories_changed(installation, added=[fork], removed=[], sender=creator)
    role = caller_role(ctx.state, caller, fork)
    return json_response(full_repo_json(ctx.urls, fork, role=role), status=202)


def _destination(ctx: Context, access: RepoAccess, organization: str | None) -> Account:
    """Return the account the fork goes to: the caller's own, or an organization it may use.

    Installation tokens fork only into their organization, with every repository selected and
    `administration: write`, and only repositories their installation reaches (GitHub's note on
    this endpoint).
    """
    caller = access.caller
    if organization is None:
        if caller.kind == "installation" or caller.account is None:
            raise GitHubError(403, NOT_ACCESSIBLE)
        return caller.account
    org = ctx.state.account(organization)
    if org is None or org.type != "Organization":
        raise not_found()
    if caller.kind == "installation":
        _require_installation_may_fork(caller, org, access)
    elif caller.kind != "admin" and (
        caller.account is None or ctx.state.org_role(org, caller.account) is None
    ):
        raise GitHubError(403, NEEDS_ORG_ADMIN)
    return org


def _require_installation_may_fork(caller: Principal, org: Account, access: RepoAccess) -> None:
    installation = caller.token.installation if caller.token else None
    allowed = (
        installation is not None
        and installation.account is org
        and installation.repository_selection == "all"
        and access.installed
        and permission_allows(caller.permissions, "administration", "write")
    )
    if not allowed:
        raise GitHubError(403, NOT_ACCESSIBLE)


def _fork_name(ctx: Context, owner: Account, parent: Repo, name: str | None) -> str:
    """Return the fork's name: `name`, else the parent's, with `-1`, `-2`... if it is taken."""
    if name is not None:
        if not REPO_NAME.match(name) or name in {".", ".."}:
            raise creation_failed("name is invalid")
        if ctx.state.repo(owner.login, name) is not None:
            raise creation_failed("name already exists on this account")
        return name
    candidates = [parent.name, *(f"{parent.name}-{n}" for n in range(1, MAX_NAME_SUFFIX))]
    for candidate in candidates:
        if ctx.state.repo(owner.login, candidate) is None:
            return candidate
    raise creation_failed("name already exists on this account")


async def _fork(
    ctx: Context, parent: Repo, owner: Account, name: str, default_branch_only: bool
) -> Repo:
    """Record the fork and copy the parent's git data into a new bare repository."""
    fork = ctx.state.add_repo(owner, name, private=parent.private, description=parent.description)
    fork.parent = parent
    parent.forks.append(fork)
    fork.default_branch = parent.default_branch
    fork.homepage = parent.homepage
    fork.has_issues = False  # GitHub turns issues off on a new fork
    # A git repository that outlived a devhub restart is adopted, as creating a repository does.
    with contextlib.suppress(RepoExists):
        await ctx.git.fork_repo(
            (parent.owner.login, parent.name),
            owner.login,
            name,
            default_branch=parent.default_branch,
            default_branch_only=default_branch_only,
        )
    fork.pushed_at = utcnow()
    return fork


def _forkee_json(ctx: Context, fork: Repo) -> JSON:
    # The `fork` event's schema types `forkee.organization` as a string; GitHub leaves it out.
    forkee = repo_json(ctx.urls, fork)
    forkee.pop("organization", None)
    return forkee


@ROUTES.get(FORKS)
async def list_forks(request: web.Request) -> web.Response:
    """List a repository's forks the caller can see (`sort`: newest, oldest, ...)."""
    access = repo_access(request)
    access.require(Role.READ, app=(("metadata", "read"),))
    ctx = context(request)
    key, descending = FORK_SORTS.get(request.query.get("sort", "newest"), FORK_SORTS["newest"])
    roles = {f.id: caller_role(ctx.state, access.caller, f) for f in access.repo.forks}
    visible = [f for f in access.repo.forks if roles[f.id] >= Role.READ]
    visible.sort(key=key, reverse=descending)

    def render(fork: Any) -> JSON:
        return repo_json(ctx.urls, fork, role=roles[fork.id])

    return paged_json(request, visible, render)
