"""REST: users, organizations and organization memberships.

https://docs.github.com/rest/users/users and https://docs.github.com/rest/orgs/members
"""

from __future__ import annotations

from aiohttp import web

from devhub.http import (
    API_PREFIX,
    NOT_ACCESSIBLE,
    GitHubError,
    context,
    json_response,
    not_found,
    principal,
    read_body,
    require_person,
    validation_failed,
)
from devhub.rest_json import org_full_json, org_json, user_full_json, user_json
from devhub.state import Account, permission_allows

ROUTES = web.RouteTableDef()

ORG_ROLES = ("admin", "member")
NEEDS_ORG_OWNER = "You must be an owner of this organization to change memberships."


@ROUTES.get(API_PREFIX + "/user")
async def get_authenticated_user(request: web.Request) -> web.Response:
    """Describe the caller (installation tokens are refused, as on GitHub)."""
    caller = require_person(request)
    if caller.kind == "installation" or caller.account is None:
        raise GitHubError(403, NOT_ACCESSIBLE)
    ctx = context(request)
    return json_response(user_full_json(ctx.urls, ctx.state, caller.account, private=True))


@ROUTES.get(API_PREFIX + "/users/{username}")
async def get_user(request: web.Request) -> web.Response:
    """Describe any account by login (organizations too, as GitHub does)."""
    ctx = context(request)
    account = ctx.state.account(request.match_info["username"])
    if account is None:
        raise not_found()
    caller = principal(request)
    own = caller.kind == "user" and caller.account is account
    return json_response(user_full_json(ctx.urls, ctx.state, account, private=own))


def _org(request: web.Request) -> Account:
    org = context(request).state.account(request.match_info["org"])
    if org is None or org.type != "Organization":
        raise not_found()
    return org


@ROUTES.get(API_PREFIX + "/orgs/{org}")
async def get_org(request: web.Request) -> web.Response:
    """Describe an organization."""
    ctx = context(request)
    return json_response(org_full_json(ctx.urls, ctx.state, _org(request)))


def membership_json(
    request: web.Request, org: Account, user: Account, role: str
) -> dict[str, object]:
    """Render an `org-membership`."""
    urls = context(request).urls
    return {
        "url": f"{urls.api}/orgs/{org.login}/memberships/{user.login}",
        "state": "active",
        "role": role,
        "organization_url": f"{urls.api}/orgs/{org.login}",
        "organization": org_json(urls, org),
        "user": user_json(urls, user),
    }


@ROUTES.put(API_PREFIX + "/orgs/{org}/memberships/{username}")
async def set_membership(request: web.Request) -> web.Response:
    """Add a member or change their role.

    GitHub invites new members and they accept by e-mail; devhub makes them members at once.
    """
    ctx = context(request)
    caller = require_person(request)
    org = _org(request)
    user = ctx.state.account(request.match_info["username"])
    if user is None or user.type == "Organization":
        raise not_found()
    allowed = caller.kind == "admin" or (
        caller.kind == "user"
        and caller.account
        and ctx.state.org_role(org, caller.account) == "admin"
    )
    if caller.kind == "installation":
        allowed = permission_allows(caller.permissions, "members", "write")
    if not allowed:
        raise GitHubError(403, NEEDS_ORG_OWNER)
    body = await read_body(request)
    role = body.get("role", "member")
    if role not in ORG_ROLES:
        raise validation_failed("Membership", "role", "invalid")
    ctx.state.org_members[org.id][user.id] = role
    return json_response(membership_json(request, org, user, role))


@ROUTES.get(API_PREFIX + "/orgs/{org}/memberships/{username}")
async def get_membership(request: web.Request) -> web.Response:
    """Show a user's membership; only members (and apps with `members: read`) may look."""
    ctx = context(request)
    caller = require_person(request)
    org = _org(request)
    user = ctx.state.account(request.match_info["username"])
    if caller.kind == "installation" and not permission_allows(
        caller.permissions, "members", "read"
    ):
        raise GitHubError(403, NOT_ACCESSIBLE)
    if caller.kind == "user" and caller.account and ctx.state.org_role(org, caller.account) is None:
        raise not_found()
    role = ctx.state.org_role(org, user) if user is not None else None
    if user is None or role is None:
        raise not_found()
    return json_response(membership_json(request, org, user, role))
