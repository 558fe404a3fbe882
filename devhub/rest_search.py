"""REST: searching issues and pull requests (`GET /search/issues`).

https://docs.github.com/rest/search/search#search-issues-and-pull-requests. Qualifiers devhub
understands: `repo:`, `org:`/`user:`, `label:` (quoted or not, repeatable, `-label:` excludes),
`is:open|closed|issue|pr|merged|draft`, `state:`, `type:`, `author:`, `assignee:`, `no:label`,
`in:title|body`; other words match the title and body, case-insensitively. Results are limited
to what the caller may read (an installation token: its repositories). Search has its own rate
limit (30 a minute), counted in the `search` resource.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from devhub.http import (
    API_PREFIX,
    caller_role,
    context,
    json_response,
    paginate,
    principal,
    validation_failed,
)
from devhub.rest_json import issue_json
from devhub.state import Role

if TYPE_CHECKING:
    from devhub.http import Context
    from devhub.state import Issue, Repo, State

ROUTES = web.RouteTableDef()

SORTS = {
    "created": lambda i: i.created_at,
    "updated": lambda i: i.updated_at,
    "comments": lambda i: len(i.comments),
}
QUALIFIER = re.compile(r"^(?P<negate>-?)(?P<key>[a-z]+):(?P<value>.+)$")
MAX_RESULTS = 1000  # GitHub serves at most the first 1000 results of a search


@dataclass
class Query:
    """A parsed search query."""

    repos: set[str] = field(default_factory=set)
    owners: set[str] = field(default_factory=set)
    labels: list[str] = field(default_factory=list)
    without_labels: list[str] = field(default_factory=list)
    states: set[str] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)
    authors: set[str] = field(default_factory=set)
    assignees: set[str] = field(default_factory=set)
    flags: set[str] = field(default_factory=set)  # merged, draft, no-label
    fields: set[str] = field(default_factory=set)  # in:title, in:body
    words: list[str] = field(default_factory=list)


def _split(text: str) -> list[str]:
    """Split on spaces, keeping `label:"a b"` together (shell rules are close to GitHub's)."""
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def parse_query(text: str) -> Query:
    """Parse GitHub's issue search syntax into a Query."""
    query = Query()
    for token in _split(text):
        match = QUALIFIER.match(token)
        if match is None:
            query.words.append(token.casefold())
            continue
        key, value, negate = match["key"], match["value"], bool(match["negate"])
        folded = value.casefold()
        if key == "repo":
            query.repos.add(folded)
        elif key in {"org", "user"}:
            query.owners.add(folded)
        elif key == "label":
            (query.without_labels if negate else query.labels).append(folded)
        elif key == "state" or (key == "is" and folded in {"open", "closed"}):
            query.states.add(folded)
        elif key == "type" or (key == "is" and folded in {"issue", "pr"}):
            query.kinds.add("pr" if folded in {"pr", "pull-request"} else folded)
        elif key == "is":
            query.flags.add(folded)
        elif key == "no":
            query.flags.add(f"no-{folded}")
        elif key == "author":
            query.authors.add(folded)
        elif key == "assignee":
            query.assignees.add(folded)
        elif key == "in":
            query.fields.update(folded.split(","))
        else:
            query.words.append(token.casefold())
    return query


def _matches(query: Query, repo: Repo, issue: Issue) -> bool:
    kind = "pr" if issue.is_pull_request else "issue"
    labels = {label.name.casefold() for label in issue.labels}
    pull = repo.pulls.get(issue.number) if issue.is_pull_request else None
    checks = (
        not query.repos or repo.full_name.casefold() in query.repos,
        not query.owners or repo.owner.login.casefold() in query.owners,
        all(label in labels for label in query.labels),
        not any(label in labels for label in query.without_labels),
        not query.states or issue.state in query.states,
        not query.kinds or kind in query.kinds,
        not query.authors or issue.user.login.casefold() in query.authors,
        not query.assignees or any(a.login.casefold() in query.assignees for a in issue.assignees),
        "merged" not in query.flags or (pull is not None and pull.merged),
        "draft" not in query.flags or (pull is not None and pull.draft),
        "no-label" not in query.flags or not labels,
    )
    if not all(checks):
        return False
    searched = []
    if not query.fields or "title" in query.fields:
        searched.append(issue.title.casefold())
    if not query.fields or "body" in query.fields:
        searched.append((issue.body or "").casefold())
    text = "\n".join(searched)
    return all(word in text for word in query.words)


def _candidates(state: State, request: web.Request) -> list[tuple[Repo, Issue]]:
    caller = principal(request)
    found: list[tuple[Repo, Issue]] = []
    for repo in state.repos.values():
        if caller_role(state, caller, repo) < Role.READ:
            continue
        found.extend((repo, issue) for issue in repo.issues.values())
    return found


def _item(ctx: Context, repo: Repo, issue: Issue) -> dict[str, Any]:
    item = issue_json(ctx.urls, ctx.state, repo, issue, ctx.app) | {"score": 1.0}
    if item["body"] is None:
        del item["body"]  # a string when present in search results, never null
    return item


@ROUTES.get(API_PREFIX + "/search/issues")
async def search_issues(request: web.Request) -> web.Response:
    """Search issues and pull requests the caller can see."""
    text = request.query.get("q", "").strip()
    if not text:
        raise validation_failed("Search", "q", "missing")
    ctx = context(request)
    query = parse_query(text)
    hits = [(r, i) for r, i in _candidates(ctx.state, request) if _matches(query, r, i)]
    sort = request.query.get("sort")
    key = SORTS.get(sort or "created", SORTS["created"])
    descending = request.query.get("order", "desc") != "asc"
    # "Best match" has no meaning here; without `sort` devhub lists newest first.
    hits.sort(key=lambda pair: (key(pair[1]), pair[1].id), reverse=descending)  # type: ignore[no-untyped-call]
    page, headers = paginate(request, hits[:MAX_RESULTS])
    items = [_item(ctx, repo, issue) for repo, issue in page]
    body = {
        "total_count": len(hits),
        "incomplete_results": False,
        "items": items,
        "search_type": "lexical",  # devhub matches words; it has no semantic search
    }
    return json_response(body, headers=headers)
