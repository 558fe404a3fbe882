"""REST: reactions on issues, issue comments and pull request review comments.

https://docs.github.com/rest/reactions/reactions
"""

from __future__ import annotations

from aiohttp import web

from devhub.http import (
    API_PREFIX,
    GitHubError,
    context,
    field_str,
    json_response,
    no_content,
    not_found,
    paged_json,
    read_body,
    repo_access,
    validation_failed,
)
from devhub.rest_json import reaction_json
from devhub.rest_labels import find_issue, issue_permissions, sender_of
from devhub.review_comments import find_comment
from devhub.state import REACTIONS, Reaction, Role, utcnow

ROUTES = web.RouteTableDef()

ISSUE_REACTIONS = API_PREFIX + "/repos/{owner}/{repo}/issues/{number:[0-9]+}/reactions"
COMMENT_REACTIONS = (
    API_PREFIX + "/repos/{owner}/{repo}/issues/comments/{comment_id:[0-9]+}/reactions"
)
REVIEW_COMMENT_REACTIONS = (
    API_PREFIX + "/repos/{owner}/{repo}/pulls/comments/{review_comment_id:[0-9]+}/reactions"
)
READ_PERMISSIONS = (("issues", "read"), ("pull_requests", "read"))


def _reactions(request: web.Request) -> tuple[list[Reaction], tuple[tuple[str, str], ...]]:
    """Find the reaction list the path names, and the app permission that writes to it."""
    access = repo_access(request)
    if "review_comment_id" in request.match_info:
        found = find_comment(access.repo, int(request.match_info["review_comment_id"]))
        if found is None:
            raise not_found()
        return found[1].reactions, (("pull_requests", "write"),)
    if "comment_id" in request.match_info:
        comment = access.repo.comments.get(int(request.match_info["comment_id"]))
        if comment is None:
            raise not_found()
        return comment.reactions, issue_permissions(access.repo.issues[comment.issue_number])
    issue = find_issue(access.repo, request)
    return issue.reactions, issue_permissions(issue)


async def _list(request: web.Request) -> web.Response:
    access = repo_access(request)
    access.require(Role.READ, app=READ_PERMISSIONS)
    reactions, _ = _reactions(request)
    content = request.query.get("content")
    chosen = [r for r in reactions if content is None or r.content == content]
    urls = context(request).urls
    return paged_json(request, chosen, lambda reaction: reaction_json(urls, reaction))


async def _create(request: web.Request) -> web.Response:
    access = repo_access(request)
    reactions, permissions = _reactions(request)
    access.require(Role.READ, app=permissions)
    if access.caller.kind == "anonymous":
        raise GitHubError(401, "Requires authentication")
    ctx = context(request)
    content = field_str(await read_body(request), "content", required=True)
    if content not in REACTIONS:
        raise validation_failed("Reaction", "content", "invalid")
    sender = sender_of(ctx, access)
    existing = next((r for r in reactions if r.user is sender and r.content == content), None)
    if existing is not None:
        # GitHub answers 200 with the reaction that is already there.
        return json_response(reaction_json(ctx.urls, existing))
    reaction = Reaction(ctx.state.next_id(), sender, content, utcnow())
    reactions.append(reaction)
    return json_response(reaction_json(ctx.urls, reaction), status=201)


@ROUTES.get(ISSUE_REACTIONS)
async def list_issue_reactions(request: web.Request) -> web.Response:
    """List reactions on an issue."""
    return await _list(request)


@ROUTES.post(ISSUE_REACTIONS)
async def create_issue_reaction(request: web.Request) -> web.Response:
    """React to an issue (201 new, 200 when it already exists)."""
    return await _create(request)


@ROUTES.get(COMMENT_REACTIONS)
async def list_comment_reactions(request: web.Request) -> web.Response:
    """List reactions on an issue comment."""
    return await _list(request)


@ROUTES.post(COMMENT_REACTIONS)
async def create_comment_reaction(request: web.Request) -> web.Response:
    """React to an issue comment (201 new, 200 when it already exists)."""
    return await _create(request)


@ROUTES.get(REVIEW_COMMENT_REACTIONS)
async def list_review_comment_reactions(request: web.Request) -> web.Response:
    """List reactions on a pull request review comment."""
    return await _list(request)


@ROUTES.post(REVIEW_COMMENT_REACTIONS)
async def create_review_comment_reaction(request: web.Request) -> web.Response:
    """React to a pull request review comment (201 new, 200 when it already exists)."""
    return await _create(request)


@ROUTES.delete(REVIEW_COMMENT_REACTIONS + "/{reaction_id:[0-9]+}")
async def delete_review_comment_reaction(request: web.Request) -> web.Response:
    """Remove a reaction from a review comment (its author, or an admin)."""
    return await _delete(request)


@ROUTES.delete(COMMENT_REACTIONS + "/{reaction_id:[0-9]+}")
async def delete_comment_reaction(request: web.Request) -> web.Response:
    """Remove a reaction from a comment (its author, or an admin)."""
    return await _delete(request)


async def _delete(request: web.Request) -> web.Response:
    access = repo_access(request)
    reactions, permissions = _reactions(request)
    reaction_id = int(request.match_info["reaction_id"])
    reaction = next((r for r in reactions if r.id == reaction_id), None)
    if reaction is None:
        raise not_found()
    if not (access.caller.account is reaction.user and access.caller.kind != "anonymous"):
        access.require(Role.ADMIN, app=permissions)
    reactions.remove(reaction)
    return no_content()
