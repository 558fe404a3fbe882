"""REST: Actions configuration variables of repositories and organizations.

https://docs.github.com/rest/actions/variables. Names are case-insensitive and kept upper case;
they are letters, digits and underscores, must not start with a digit or `GITHUB_`. Lists default
to 10 per page (at most 30). The local runner reads them as `${{ vars.NAME }}`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from devhub.http import (
    API_PREFIX,
    NOT_ACCESSIBLE,
    GitHubError,
    context,
    field_str,
    json_response,
    no_content,
    not_found,
    read_body,
    repo_access,
    require_person,
    validation_failed,
)
from devhub.state import Role, iso, permission_allows, utcnow
from devhub.state_actions import Variable

if TYPE_CHECKING:
    from devhub.rest_json import JSON
    from devhub.state import Account, Repo, State

ROUTES = web.RouteTableDef()

REPO_VARIABLES = API_PREFIX + "/repos/{owner}/{repo}/actions/variables"
ORG_VARIABLES = API_PREFIX + "/orgs/{org}/actions/variables"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
VISIBILITIES = ("all", "private", "selected")
DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 30
ALREADY_EXISTS = "Already exists - Variable already exists"


def _name(value: str | None) -> str:
    if value is None or not NAME.match(value) or value.upper().startswith("GITHUB_"):
        raise validation_failed("Variable", "name", "invalid")
    return value.upper()


def _page(request: web.Request, items: list[Variable]) -> list[Variable]:
    try:
        per_page = int(request.query.get("per_page", DEFAULT_PER_PAGE))
        page = int(request.query.get("page", 1))
    except ValueError:
        per_page, page = DEFAULT_PER_PAGE, 1
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    start = (max(1, page) - 1) * per_page
    return items[start : start + per_page]


def variable_json(variable: Variable) -> JSON:
    """Render an `actions-variable`."""
    return {
        "name": variable.name,
        "value": variable.value,
        "created_at": iso(variable.created_at),
        "updated_at": iso(variable.updated_at),
    }


def variables_for(state: State, repo: Repo) -> dict[str, str]:
    """Return the `vars` context of a repository: its organization's, overridden by its own."""
    found: dict[str, str] = {}
    if repo.owner.type == "Organization":
        for variable in state.org_variables.get(repo.owner.id, {}).values():
            visible = (
                variable.visibility == "all"
                or (variable.visibility == "private" and repo.private)
                or repo.id in variable.repository_ids
            )
            if visible:
                found[variable.name] = variable.value
    found.update({v.name: v.value for v in repo.variables.values()})
    return found


def _write(store: dict[str, Variable], body: dict[str, Any]) -> Variable:
    name = _name(field_str(body, "name", required=True))
    value = field_str(body, "value", required=True) or ""
    if name in store:
        raise GitHubError(409, ALREADY_EXISTS)
    now = utcnow()
    variable = Variable(name, value, now, now)
    store[name] = variable
    return variable


def _update(store: dict[str, Variable], name: str, body: dict[str, Any]) -> Variable:
    variable = store.get(name.upper())
    if variable is None:
        raise not_found()
    new_name = field_str(body, "name")
    if new_name is not None and _name(new_name) != variable.name:
        if _name(new_name) in store:
            raise GitHubError(409, ALREADY_EXISTS)
        del store[variable.name]
        variable.name = _name(new_name)
        store[variable.name] = variable
    value = field_str(body, "value")
    if value is not None:
        variable.value = value
    variable.updated_at = utcnow()
    return variable


# repository variables


def _repo_store(request: web.Request, *, write: bool) -> dict[str, Variable]:
    access = repo_access(request)
    level = "write" if write else "read"
    access.require(Role.WRITE, app=(("actions_variables", level),))
    return access.repo.variables


@ROUTES.get(REPO_VARIABLES)
async def list_repo_variables(request: web.Request) -> web.Response:
    """List a repository's variables (10 a page by default)."""
    store = _repo_store(request, write=False)
    items = sorted(store.values(), key=lambda v: v.name)
    rendered = [variable_json(v) for v in _page(request, items)]
    return json_response({"total_count": len(items), "variables": rendered})


@ROUTES.post(REPO_VARIABLES)
async def create_repo_variable(request: web.Request) -> web.Response:
    """Create a repository variable; 409 when the name is taken."""
    store = _repo_store(request, write=True)
    _write(store, await read_body(request))
    return json_response({}, status=201)


@ROUTES.get(REPO_VARIABLES + "/{name}")
async def get_repo_variable(request: web.Request) -> web.Response:
    """Show one repository variable."""
    store = _repo_store(request, write=False)
    variable = store.get(request.match_info["name"].upper())
    if variable is None:
        raise not_found()
    return json_response(variable_json(variable))


@ROUTES.patch(REPO_VARIABLES + "/{name}")
async def update_repo_variable(request: web.Request) -> web.Response:
    """Rename a repository variable or change its value."""
    store = _repo_store(request, write=True)
    _update(store, request.match_info["name"], await read_body(request))
    return no_content()


@ROUTES.delete(REPO_VARIABLES + "/{name}")
async def delete_repo_variable(request: web.Request) -> web.Response:
    """Delete a repository variable."""
    store = _repo_store(request, write=True)
    if store.pop(request.match_info["name"].upper(), None) is None:
        raise not_found()
    return no_content()


# organization variables


def _org_store(request: web.Request, *, write: bool) -> tuple[Account, dict[str, Variable]]:
    ctx = context(request)
    caller = require_person(request)
    org = ctx.state.account(request.match_info["org"])
    if org is None or org.type != "Organization":
        raise not_found()
    if caller.kind == "installation":
        installation = caller.token.installation if caller.token else None
        level = "write" if write else "read"
        if installation is None or installation.account is not org:
            raise not_found()
        if not permission_allows(caller.permissions, "organization_actions_variables", level):
            raise GitHubError(403, NOT_ACCESSIBLE)
    elif caller.kind == "user":
        assert caller.account is not None
        if ctx.state.org_role(org, caller.account) != "admin":
            raise GitHubError(403, "You must be an org admin to manage variables.")
    return org, ctx.state.org_variables.setdefault(org.id, {})


def _org_variable_json(request: web.Request, org: Account, variable: Variable) -> JSON:
    body = variable_json(variable) | {"visibility": variable.visibility}
    if variable.visibility == "selected":
        api = context(request).urls.api
        body["selected_repositories_url"] = (
            f"{api}/orgs/{org.login}/actions/variables/{variable.name}/repositories"
        )
    return body


def _visibility(variable: Variable, body: dict[str, Any]) -> None:
    visibility = field_str(body, "visibility")
    if visibility is not None:
        if visibility not in VISIBILITIES:
            raise validation_failed("Variable", "visibility", "invalid")
        variable.visibility = visibility
    ids = body.get("selected_repository_ids")
    if isinstance(ids, list):
        variable.repository_ids = {int(i) for i in ids if isinstance(i, int)}


@ROUTES.get(ORG_VARIABLES)
async def list_org_variables(request: web.Request) -> web.Response:
    """List an organization's variables."""
    org, store = _org_store(request, write=False)
    items = sorted(store.values(), key=lambda v: v.name)
    rendered = [_org_variable_json(request, org, v) for v in _page(request, items)]
    return json_response({"total_count": len(items), "variables": rendered})


@ROUTES.post(ORG_VARIABLES)
async def create_org_variable(request: web.Request) -> web.Response:
    """Create an organization variable (`visibility` all, private or selected)."""
    _org, store = _org_store(request, write=True)
    body = await read_body(request)
    if body.get("visibility") is None:
        raise GitHubError(422, 'Invalid request.\n\n"visibility" wasn\'t supplied.')
    variable = _write(store, body)
    _visibility(variable, body)
    return json_response({}, status=201)


@ROUTES.get(ORG_VARIABLES + "/{name}")
async def get_org_variable(request: web.Request) -> web.Response:
    """Show one organization variable."""
    org, store = _org_store(request, write=False)
    variable = store.get(request.match_info["name"].upper())
    if variable is None:
        raise not_found()
    return json_response(_org_variable_json(request, org, variable))


@ROUTES.patch(ORG_VARIABLES + "/{name}")
async def update_org_variable(request: web.Request) -> web.Response:
    """Change an organization variable."""
    _org, store = _org_store(request, write=True)
    body = await read_body(request)
    variable = _update(store, request.match_info["name"], body)
    _visibility(variable, body)
    return no_content()


@ROUTES.delete(ORG_VARIABLES + "/{name}")
async def delete_org_variable(request: web.Request) -> web.Response:
    """Delete an organization variable."""
    _org, store = _org_store(request, write=True)
    if store.pop(request.match_info["name"].upper(), None) is None:
        raise not_found()
    return no_content()
