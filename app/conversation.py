"""Talking back on GitHub: replies posted once and edited on redelivery, and reactions.

A reply is found again by its hidden marker among the app's own comments (only the app can post
as its bot, so a pasted marker is not trusted). Reactions are idempotent on GitHub itself: adding
the same reaction twice answers 200 with the existing one instead of 201.
https://docs.github.com/rest/reactions/reactions
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gidgethub

from app.github import create_once
from app.markers import find_marked
from app.once import where

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gidgethub.abc import GitHubAPI

    from app.command_replies import CommandReply

log = logging.getLogger(__name__)

COMMENTS_URL = "/repos/{owner}/{repo}/issues/{number}/comments"
COMMENTS_PAGE_URL = "/repos/{owner}/{repo}/issues/{number}/comments{?per_page}"
COMMENT_URL = "/repos/{owner}/{repo}/issues/comments/{comment_id}"
REACTIONS_URL = {
    "issue-comment": "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
    "review-comment": "/repos/{owner}/{repo}/pulls/comments/{comment_id}/reactions",
}


class Reaction(enum.StrEnum):
    """The reactions coder uses: seen, done, and did not work."""

    EYES = "eyes"
    ROCKET = "rocket"
    CONFUSED = "confused"


@dataclass(frozen=True)
class Source:
    """Where a command was written: an issue comment, a review comment, or a review body."""

    kind: str  # "issue-comment", "review-comment" or "review"
    id: int

    @property
    def reactable(self) -> bool:
        """Tell whether GitHub takes reactions on it (reviews themselves take none)."""
        return self.kind in REACTIONS_URL

    def render(self) -> str:
        """Return `kind:id`, as a run's snapshot records where it was asked for."""
        return f"{self.kind}:{self.id}"

    @classmethod
    def parse(cls, text: str | None) -> Source | None:
        """Read `kind:id` back; None if it is not one."""
        kind, _, number = (text or "").partition(":")
        return cls(kind, int(number)) if kind and number.isdigit() else None


async def reply_once(
    gh: GitHubAPI, repo: str, number: int, reply: CommandReply, bot_login: str
) -> Mapping[str, Any]:
    """Post the reply, or edit the one already posted for the same command."""
    on_issue = where(repo, number=number)

    async def find() -> Mapping[str, Any] | None:
        pages = gh.getiter(COMMENTS_PAGE_URL, {**on_issue, "per_page": 100})
        comments = [comment async for comment in pages]
        return find_marked(comments, reply.kind, author=bot_login, **reply.fields)

    existing = await find()
    if existing is None:
        data = {"body": reply.body}
        return await create_once(
            gh, create=lambda: gh.post(COMMENTS_URL, on_issue, data=data), find=find
        )
    if existing.get("body") != reply.body:
        url = where(repo, comment_id=int(existing["id"]))
        edited: Mapping[str, Any] = await gh.patch(COMMENT_URL, url, data={"body": reply.body})
        return edited
    return existing


async def react(gh: GitHubAPI, repo: str, source: Source | None, reaction: Reaction) -> None:
    """Add a reaction to the comment a command came from; a gone comment is not an error."""
    if source is None or not source.reactable:
        return
    url = where(repo, comment_id=source.id)
    try:
        await gh.post(REACTIONS_URL[source.kind], url, data={"content": str(reaction)})
    except gidgethub.BadRequest as error:
        if error.status_code not in {404, 410}:
            raise
        log.info("no %s reaction: %s %d is gone", reaction, source.kind, source.id)
