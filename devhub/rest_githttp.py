"""Git over smart HTTP at `/<owner>/<repo>.git/...`: GitHub's access rules, then `git http-backend`.

Authentication is HTTP Basic with a token as the password (`x-access-token:<token>`), as on
GitHub. Reading needs read access; pushing needs write (installation tokens: `contents: write`).
The protocol itself is GitStore's; this module decides who may do what and announces pushes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from devhub.http import caller_role, context, principal
from devhub.rest_push import emit_ref_updates
from devhub.state import Role, permission_allows

if TYPE_CHECKING:
    from devhub.git import RefUpdate

ROUTES = web.RouteTableDef()

CHALLENGE = {"WWW-Authenticate": 'Basic realm="GitHub"'}
RECEIVE_PACK = "git-receive-pack"


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers=headers)


@ROUTES.route("*", "/{owner}/{name}.git/{tail:.*}")
async def smart_http(request: web.Request) -> web.StreamResponse:
    """Serve clone, fetch and push for one repository."""
    ctx = context(request)
    caller = principal(request)
    owner, name = request.match_info["owner"], request.match_info["name"]
    repo = ctx.state.repo(owner, name)
    tail = request.match_info["tail"]
    pushing = tail == RECEIVE_PACK or request.query.get("service") == RECEIVE_PACK
    if repo is None:
        return _text(404, "Repository not found.")
    role = caller_role(ctx.state, caller, repo)
    if caller.kind == "anonymous" and (role < Role.READ or pushing):
        # git only sends credentials after a challenge, so ask instead of refusing.
        return _text(401, "Authentication required.", CHALLENGE)
    if role < Role.READ or (
        caller.kind == "installation"
        and not permission_allows(caller.permissions, "contents", "read")
    ):
        return _text(404, "Repository not found.")
    may_push = role >= Role.WRITE
    if caller.kind == "installation":
        may_push = may_push and permission_allows(caller.permissions, "contents", "write")
    pusher = caller.account or ctx.admin

    async def announce(updates: list[RefUpdate]) -> None:
        await emit_ref_updates(ctx, repo, updates, pusher)

    response, _ = await ctx.git.serve_smart_http(
        request,
        repo.owner.login,
        repo.name,
        remote_user=caller.owner_label or "anonymous",
        allow_push=may_push,
        on_updates=announce,
    )
    return response
