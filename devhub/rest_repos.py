"""REST: creating, reading and listing repositories, and their collaborators.

https://docs.github.com/rest/repos/repos and https://docs.github.com/rest/collaborators/collaborators
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from devhub.git import RepoExists
from devhub.http import (
    API_PREFIX,
    NOT_ACCESSIBLE,
    Context,
    GitHubError,
    caller_role,
    context,
    field_bool,
    field_str,
    json_response,
    no_content,
    not_found,
    paged_json,
    principal,
    read_body,
    repo_access,
    require_person,
    validation_failed,
)
from devhub.rest_json import collaborator_json, full_repo_json, git_person, repo_json, user_json
from devhub.state import Account, Repo, Role, iso, node_id, permission_allows, utcnow

if TYPE_CHECKING:
    from devhub.rest_auth import Principal

ROUTES = web.RouteTableDef()

REPO_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
NEEDS_ORG_ADMIN = "You need admin access to the organization before adding a repository to it."
NEEDS_PUSH_FOR_COLLABORATORS = "Must have push access to view repository collaborators."
NEEDS_ADMIN = "Must have admin rights to Repository."
SORT_KEYS = {
    "created": lambda r: r.created_at,
    "updated": lambda r: r.updated_at,
    "pushed": lambda r: r.pushed_at or r.created_at,
    "full_name": lambda r: r.full_name.casefold(),
}


def creation_failed(message: str) -> GitHubError:
    """Return GitHub's 422 for a repository that cannot be created under that name."""
    return GitHubError(
        422,
        "Repository creation failed.",
        errors=[{"resource": "Repository", "code": "custom", "field": "name", "message": message}],
    )


async def _create_repo(
    ctx: Context, owner: Account, creator: Account, body: dict[str, Any]
) -> Repo:
    name = field_str(body, "name", required=True)
    assert name is not None
    if not REPO_NAME.match(name) or name in {".", ".."}:
        raise creation_failed("name is invalid")
    if ctx.state.repo(owner.login, name) is not None:
        raise creation_failed("name already exists on this account")
    visibility = field_str(body, "visibility")
    private = field_bool(body, "private", default=visibility in {"private", "internal"})
    description = field_str(body, "description")
    auto_init = field_bool(body, "auto_init", default=False)
    repo = ctx.state.add_repo(owner, name, private=private, description=description)
    repo.homepage = field_str(body, "homepage")
    repo.has_issues = field_bool(body, "has_issues", default=True)
    readme = f"# {name}\n" + (f"\n{description}\n" if description else "")
    person = git_person(creator, iso(utcnow()) or "")
    try:
        sha = await ctx.git.init_repo(
            owner.login,
            name,
            default_branch=repo.default_branch,
            initial_files={"README.md": readme.encode()} if auto_init else None,
            author=person,
        )
    except RepoExists:
        # The git repository outlived a devhub restart (records are in memory, git is on
        # disk): adopt it as it is rather than destroy its history.
        sha = None
    if sha is not None:
        repo.pushed_at = utcnow()
    if owner.type == "Organization" and ctx.state.role(creator, repo) < Role.ADMIN:
        repo.collaborators[creator.id] = Role.ADMIN  # GitHub makes the creator an admin
    ctx.webhooks.emit("repository", {}, action="created", sender=creator, repo=repo)
    installation = ctx.state.installation_for(owner)
    if installation is not None and installation.repository_selection == "all":
        ctx.webhooks.repositories_changed(installation, added=[repo], removed=[], sender=creator)
    return repo


def _creator(caller: Principal) -> Account:
    if caller.account is None:
        raise GitHubError(403, NOT_ACCESSIBLE)
    return caller.account


@ROUTES.post(API_PREFIX + "/user/repos")
async def create_user_repo(request: web.Request) -> web.Response:
    """Create a repository for the authenticated user."""
    caller = require_person(request)
    if caller.kind == "installation":
        raise GitHubError(403, NOT_ACCESSIBLE)
    ctx = context(request)
    creator = _creator(caller)
    repo = await _create_repo(ctx, creator, creator, await read_body(request))
    return json_response(repo_json(ctx.urls, repo, role=Role.ADMIN), status=201)


@ROUTES.post(API_PREFIX + "/orgs/{org}/repos")
async def create_org_repo(request: web.Request) -> web.Response:
    """Create a repository in an organization (members may, as GitHub's default allows)."""
    caller = require_person(request)
    ctx = context(request)
    org = ctx.state.account(request.match_info["org"])
    if org is None or org.type != "Organization":
        raise not_found()
    creator = _creator(caller)
    if caller.kind == "installation":
        installation = caller.token.installation if caller.token else None
        if installation is None or installation.account is not org:
            raise not_found()
        if not permission_allows(caller.permissions, "administration", "write"):
            raise GitHubError(403, NOT_ACCESSIBLE)
    elif caller.kind != "admin" and ctx.state.org_role(org, creator) is None:
        raise GitHubError(403, NEEDS_ORG_ADMIN)
    repo = await _create_repo(ctx, org, creator, await read_body(request))
    return json_response(
        repo_json(ctx.urls, repo, role=caller_role(ctx.state, caller, repo)), status=201
    )


@ROUTES.get(API_PREFIX + "/repos/{owner}/{repo}")
async def get_repo(request: web.Request) -> web.Response:
    """Describe a repository, with the caller's permissions."""
    access = repo_access(request)
    if access.caller.kind == "installation":
        access.require(Role.READ, app=(("metadata", "read"),))
    urls = context(request).urls
    return json_response(full_repo_json(urls, access.repo, role=access.role))


def _sorted(request: web.Request, repos: list[Repo], default: str) -> list[Repo]:
    sort = request.query.get("sort", default)
    key = SORT_KEYS.get(sort, SORT_KEYS[default])
    descending = request.query.get("direction", "asc" if sort == "full_name" else "desc") == "desc"
    return sorted(repos, key=key, reverse=descending)


def _visible(ctx: Context, caller: Principal, repos: list[Repo]) -> list[tuple[Repo, Role]]:
    pairs = [(r, caller_role(ctx.state, caller, r)) for r in repos]
    return [(r, role) for r, role in pairs if role >= Role.READ]


@ROUTES.get(API_PREFIX + "/orgs/{org}/repos")
async def list_org_repos(request: web.Request) -> web.Response:
    """List an organization's repositories the caller can see."""
    ctx = context(request)
    org = ctx.state.account(request.match_info["org"])
    if org is None or org.type != "Organization":
        raise not_found()
    caller = principal(request)
    kind = request.query.get("type", "all")
    repos = [
        r
        for r in ctx.state.repos_of(org)
        if kind not in {"public", "private"} or r.private == (kind == "private")
    ]
    roles = {r.id: role for r, role in _visible(ctx, caller, repos)}
    visible = _sorted(request, [r for r in repos if r.id in roles], "created")
    return paged_json(request, visible, lambda r: repo_json(ctx.urls, r, role=roles[r.id]))


@ROUTES.get(API_PREFIX + "/user/repos")
async def list_own_repos(request: web.Request) -> web.Response:
    """List repositories the authenticated user owns, collaborates on, or reaches via orgs."""
    caller = require_person(request)
    if caller.kind == "installation" or caller.account is None:
        raise GitHubError(403, NOT_ACCESSIBLE)
    ctx = context(request)
    user = caller.account
    affiliation = set(
        request.query.get("affiliation", "owner,collaborator,organization_member").split(",")
    )
    visibility = request.query.get("visibility", "all")
    chosen: dict[int, tuple[Repo, Role]] = {}
    for repo in ctx.state.repos.values():
        is_owner = repo.owner is user
        is_collaborator = user.id in repo.collaborators
        is_member = (
            repo.owner.type == "Organization" and ctx.state.org_role(repo.owner, user) is not None
        )
        wanted = (
            ("owner" in affiliation and is_owner)
            or ("collaborator" in affiliation and is_collaborator)
            or ("organization_member" in affiliation and is_member)
        )
        if wanted and (visibility == "all" or repo.private == (visibility == "private")):
            chosen[repo.id] = (repo, ctx.state.role(user, repo))
    repos = _sorted(request, [r for r, _ in chosen.values()], "full_name")
    return paged_json(request, repos, lambda r: repo_json(ctx.urls, r, role=chosen[r.id][1]))


# collaborators


def _collaborators(ctx: Context, repo: Repo) -> list[tuple[Account, Role]]:
    people: dict[int, Account] = {}
    if repo.owner.type == "User":
        people[repo.owner.id] = repo.owner
    else:
        for user_id in ctx.state.org_members.get(repo.owner.id, {}):
            account = ctx.state.account_by_id(user_id)
            if account is not None:
                people[account.id] = account
    for user_id in repo.collaborators:
        account = ctx.state.account_by_id(user_id)
        if account is not None:
            people[account.id] = account
    pairs = [(a, ctx.state.role(a, repo, include_public=False)) for a in people.values()]
    return sorted(pairs, key=lambda pair: pair[0].id)


@ROUTES.get(API_PREFIX + "/repos/{owner}/{repo}/collaborators")
async def list_collaborators(request: web.Request) -> web.Response:
    """List everyone with access; people need push access to look, as on GitHub."""
    access = repo_access(request)
    access.require(Role.WRITE, app=(("metadata", "read"),), message=NEEDS_PUSH_FOR_COLLABORATORS)
    ctx = context(request)
    people = _collaborators(ctx, access.repo)
    affiliation = request.query.get("affiliation", "all")
    if affiliation in {"outside", "direct"}:
        people = [(a, r) for a, r in people if a.id in access.repo.collaborators]
    return paged_json(request, people, lambda pair: collaborator_json(ctx.urls, *pair))


def _user(ctx: Context, request: web.Request) -> Account:
    user = ctx.state.account(request.match_info["username"])
    if user is None or user.type == "Organization":
        raise not_found()
    return user


@ROUTES.get(API_PREFIX + "/repos/{owner}/{repo}/collaborators/{username}")
async def check_collaborator(request: web.Request) -> web.Response:
    """Answer 204 when the user has access of their own, 404 otherwise."""
    access = repo_access(request)
    ctx = context(request)
    user = _user(ctx, request)
    if ctx.state.role(user, access.repo, include_public=False) < Role.READ:
        raise not_found()
    return no_content()


@ROUTES.put(API_PREFIX + "/repos/{owner}/{repo}/collaborators/{username}")
async def add_collaborator(request: web.Request) -> web.Response:
    """Give a user a role on a repository.

    GitHub invites outside collaborators and waits for them to accept; devhub accepts the
    invitation at once but answers as GitHub does (201 with the invitation, 204 for an update).
    """
    access = repo_access(request)
    access.require(Role.ADMIN, app=(("administration", "write"),), message=NEEDS_ADMIN)
    ctx = context(request)
    user = _user(ctx, request)
    body = await read_body(request)
    name = field_str(body, "permission") or "push"
    role = Role.from_api(name)
    if role is None:
        raise validation_failed("Repository", "permission", "invalid")
    repo = access.repo
    existing = repo.collaborators.get(user.id)
    repo.collaborators[user.id] = role
    sender = access.caller.account or ctx.admin
    if existing is not None:
        return no_content()
    change = {"permission": {"to": role.legacy_name}, "role_name": {"to": role.api_name}}
    ctx.webhooks.emit(
        "member",
        {"member": user_json(ctx.urls, user), "changes": change},
        action="added",
        sender=sender,
        repo=repo,
    )
    invitation_id = ctx.state.next_id()
    return json_response(
        {
            "id": invitation_id,
            "node_id": node_id("RI", invitation_id),
            "repository": repo_json(ctx.urls, repo),
            "invitee": user_json(ctx.urls, user),
            "inviter": user_json(ctx.urls, sender),
            "permissions": role.api_name,
            "created_at": iso(utcnow()),
            "expired": False,
            "url": f"{ctx.urls.api}/user/repository_invitations/{invitation_id}",
            "html_url": f"{ctx.urls.web}/{repo.full_name}/invitations",
        },
        status=201,
    )


@ROUTES.delete(API_PREFIX + "/repos/{owner}/{repo}/collaborators/{username}")
async def remove_collaborator(request: web.Request) -> web.Response:
    """Take a collaborator's own access away."""
    access = repo_access(request)
    ctx = context(request)
    user = _user(ctx, request)
    caller_is_self = access.caller.account is user and access.caller.kind == "user"
    if not caller_is_self:
        access.require(Role.ADMIN, app=(("administration", "write"),), message=NEEDS_ADMIN)
    access.repo.collaborators.pop(user.id, None)
    return no_content()


@ROUTES.get(API_PREFIX + "/repos/{owner}/{repo}/collaborators/{username}/permission")
async def get_permission(request: web.Request) -> web.Response:
    """Report a user's permission; `permission` folds maintain->write and triage->read."""
    access = repo_access(request)
    ctx = context(request)
    user = _user(ctx, request)
    role = ctx.state.role(user, access.repo)
    return json_response(
        {
            "permission": role.legacy_name,
            "role_name": role.api_name,
            "user": collaborator_json(ctx.urls, user, role),
        }
    )
