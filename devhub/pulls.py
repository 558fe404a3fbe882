"""Pull requests: git facts, GitHub's JSON shape, `pull_request` webhooks and ref-change hooks.

The REST routes live in `rest_pulls.py`; this module holds what other parts share: issues and
labels route their events here when the issue is a pull request (GitHub sends `pull_request`
events for them, not `issues`), pushes to a head branch emit `synchronize`, and check runs list
the pull requests of their commit.
https://docs.github.com/webhooks/webhook-events-and-payloads#pull_request
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from devhub.git import ZERO_SHA, GitError
from devhub.rest_json import (
    JSON,
    Urls,
    author_association,
    label_json,
    repo_json,
    user_json,
)
from devhub.state import iso, node_id, utcnow
from devhub.state_pulls import PullFacts, PullRequest

if TYPE_CHECKING:
    from devhub.git import RefUpdate
    from devhub.http import Context
    from devhub.state import Account, App, Issue, Repo, State

HEADS = "refs/heads/"
MAX_COMMITS = 250  # GitHub lists at most 250 commits of a pull request
# GitHub closes an issue when a pull request that references it with a keyword is merged
# into the default branch: https://docs.github.com/issues/tracking-your-work-with-issues/linking-a-pull-request-to-an-issue
CLOSING_KEYWORD = re.compile(
    r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+#(?P<number>[0-9]+)\b", re.IGNORECASE
)


def pull_node_id(pull: PullRequest) -> str:
    """Return the pull request's global id (REST `node_id` and GraphQL `id` agree)."""
    return node_id("PR", pull.id)


async def branch_sha(ctx: Context, repo: Repo, branch: str) -> str | None:
    """Return a branch's head sha, or None when the branch does not exist."""
    try:
        return await ctx.git.get_ref(repo.owner.login, repo.name, HEADS + branch)
    except GitError:
        return None


async def keep_head(ctx: Context, repo: Repo, pull: PullRequest) -> None:
    """Make the head reachable in the base repository as `refs/pull/<n>/head`, as GitHub does.

    A fork's commits are copied into the base repository first (on GitHub the network shares
    its objects), so everything the base computes (facts, diffs, merges) can read them.
    """
    owner, name = repo.owner.login, repo.name
    if pull.head_repo is not repo:
        source = (pull.head_repo.owner.login, pull.head_repo.name)
        await ctx.git.fetch_commit(owner, name, source, pull.head_sha)
    await ctx.git.write_hidden_ref(owner, name, pull.hidden_ref, pull.head_sha)


async def compute_facts(ctx: Context, repo: Repo, base_sha: str, head_sha: str) -> PullFacts:
    """Ask git what a pull request would bring: commits, diff size and mergeability."""
    owner, name = repo.owner.login, repo.name
    commits = await ctx.git.commits_between(owner, name, base_sha, head_sha, MAX_COMMITS)
    fork_point = await ctx.git.merge_base(owner, name, base_sha, head_sha) or base_sha
    numstat = await ctx.git.diff_tree(owner, name, fork_point, head_sha, "numstat")
    additions = deletions = files = 0
    for record in numstat.decode(errors="surrogateescape").split("\0"):
        added, _, rest = record.partition("\t")
        deleted, _, path = rest.partition("\t")
        if path:
            files += 1
            additions += int(added) if added.isdigit() else 0
            deletions += int(deleted) if deleted.isdigit() else 0
    merged_tree = await ctx.git.merge_trees(owner, name, base_sha, head_sha)
    return PullFacts(
        base_sha=base_sha,
        commits=len(commits),
        additions=additions,
        deletions=deletions,
        changed_files=files,
        mergeable=merged_tree is not None,
    )


async def refresh(ctx: Context, repo: Repo, pull: PullRequest) -> None:
    """Recompute an open pull request's facts from its branches as they are now."""
    if not pull.is_open:
        return
    base = await branch_sha(ctx, repo, pull.base_ref)
    if base is not None:
        pull.facts = await compute_facts(ctx, repo, base, pull.head_sha)


def pull_for_issue(repo: Repo, issue: Issue) -> PullRequest | None:
    """Return the pull request behind an issue, if it is one."""
    return repo.pulls.get(issue.number) if issue.is_pull_request else None


def pulls_for_sha(repo: Repo, sha: str, *, from_forks: bool = False) -> list[PullRequest]:
    """List the open pull requests whose head is at `sha` (check runs show them).

    GitHub leaves pull requests from forks out of check runs', check suites' and workflow runs'
    `pull_requests` ("Pushes to a branch in a forked repository are not detected"); pass
    `from_forks` to include them.
    """
    return [
        p
        for p in repo.pulls.values()
        if p.is_open and p.head_sha == sha and (from_forks or p.head_repo is repo)
    ]


# rendering


def _branch_json(urls: Urls, repo: Repo, ref: str, sha: str) -> JSON:
    # GitHub leaves `organization` out of the head and base repositories (some webhook schemas
    # even type it as a string there).
    branch_repo = repo_json(urls, repo)
    branch_repo.pop("organization", None)
    return {
        "label": f"{repo.owner.login}:{ref}",
        "ref": ref,
        "sha": sha,
        "user": user_json(urls, repo.owner),
        "repo": branch_repo,
    }


def mergeable_state(pull: PullRequest) -> str:
    """Say why a pull request can or cannot be merged, as GitHub's `mergeable_state` does."""
    if not pull.is_open:
        return "unknown"
    if pull.draft:
        return "draft"
    if pull.facts.mergeable is None:
        return "unknown"
    return "clean" if pull.facts.mergeable else "dirty"


def _links(api: str, html: str, issue_api: str, statuses: str) -> JSON:
    return {
        "self": {"href": api},
        "html": {"href": html},
        "issue": {"href": issue_api},
        "comments": {"href": f"{issue_api}/comments"},
        "review_comments": {"href": f"{api}/comments"},
        "review_comment": {"href": f"{api.rsplit('/', 1)[0]}/comments{{/number}}"},
        "commits": {"href": f"{api}/commits"},
        "statuses": {"href": statuses},
    }


def pull_json(urls: Urls, state: State, repo: Repo, pull: PullRequest, app: App) -> JSON:
    """Render a `pull-request` (REST answers and webhook payloads share it)."""
    issue = pull.issue
    repo_api = f"{urls.api}/repos/{repo.full_name}"
    api = f"{repo_api}/pulls/{pull.number}"
    html = f"{urls.web}/{repo.full_name}/pull/{pull.number}"
    issue_api = f"{repo_api}/issues/{pull.number}"
    statuses = f"{repo_api}/statuses/{pull.head_sha}"
    facts = pull.facts
    del app  # pull requests carry no `performed_via_github_app`
    return {
        "url": api,
        "id": pull.id,
        "node_id": pull_node_id(pull),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": issue_api,
        "commits_url": f"{api}/commits",
        "review_comments_url": f"{api}/comments",
        "review_comment_url": f"{repo_api}/pulls/comments{{/number}}",
        "comments_url": f"{issue_api}/comments",
        "statuses_url": statuses,
        "number": pull.number,
        "state": issue.state,
        "locked": issue.locked,
        "title": issue.title,
        "user": user_json(urls, issue.user),
        "body": issue.body,
        "labels": [label_json(urls, repo, label) for label in issue.labels],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": iso(issue.created_at),
        "updated_at": iso(issue.updated_at),
        "closed_at": iso(issue.closed_at),
        "merged_at": iso(pull.merged_at),
        "merge_commit_sha": pull.merge_commit_sha,
        "assignee": user_json(urls, issue.assignees[0]) if issue.assignees else None,
        "assignees": [user_json(urls, a) for a in issue.assignees],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": _branch_json(urls, pull.head_repo, pull.head_ref, pull.head_sha),
        "base": _branch_json(urls, repo, pull.base_ref, facts.base_sha),
        "_links": _links(api, html, issue_api, statuses),
        "author_association": author_association(state, repo, issue.user),
        "auto_merge": None,
        "draft": pull.draft,
        "merged": pull.merged,
        "mergeable": facts.mergeable if pull.is_open else None,
        "rebaseable": facts.mergeable if pull.is_open else None,
        "mergeable_state": mergeable_state(pull),
        "merged_by": user_json(urls, pull.merged_by) if pull.merged_by else None,
        "comments": len(issue.comments),
        "review_comments": sum(1 for c in pull.review_comments if c.visible),
        "maintainer_can_modify": pull.maintainer_can_modify,
        "commits": facts.commits,
        "additions": facts.additions,
        "deletions": facts.deletions,
        "changed_files": facts.changed_files,
    }


def pull_brief_json(urls: Urls, repo: Repo, pull: PullRequest) -> JSON:
    """Render the short pull request entry of check runs and workflow runs."""
    api = f"{urls.api}/repos/{repo.full_name}"
    head = pull.head_repo
    head_brief = {"id": head.id, "url": f"{urls.api}/repos/{head.full_name}", "name": head.name}
    repo_brief = {"id": repo.id, "url": api, "name": repo.name}
    return {
        "id": pull.id,
        "number": pull.number,
        "url": f"{api}/pulls/{pull.number}",
        "head": {"ref": pull.head_ref, "sha": pull.head_sha, "repo": head_brief},
        "base": {"ref": pull.base_ref, "sha": pull.facts.base_sha, "repo": repo_brief},
    }


# webhooks


def emit_pull(
    ctx: Context, action: str, repo: Repo, pull: PullRequest, sender: Account, **extra: Any
) -> None:
    """Emit a `pull_request` webhook."""
    body = {
        "number": pull.number,
        "pull_request": pull_json(ctx.urls, ctx.state, repo, pull, ctx.app),
    } | extra
    ctx.webhooks.emit("pull_request", body, action=action, sender=sender, repo=repo)


async def on_ref_updates(
    ctx: Context, repo: Repo, updates: list[RefUpdate], pusher: Account
) -> None:
    """Keep pull requests in step with their branches; emit `synchronize` for head pushes.

    A branch of `repo` can be the head of pull requests anywhere in its fork network (a fork's
    branch proposed to its parent) and the base of pull requests in `repo`.
    """
    moved = {u.ref.removeprefix(HEADS): u for u in updates if u.ref.startswith(HEADS)}
    if not moved:
        return
    for base_repo in repo.network():
        for pull in list(base_repo.pulls.values()):
            if not pull.is_open:
                continue
            head_update = moved.get(pull.head_ref) if pull.head_repo is repo else None
            if head_update is not None and head_update.after != ZERO_SHA:
                await _synchronize(ctx, base_repo, pull, head_update.after, pusher)
            elif base_repo is repo and pull.base_ref in moved:
                await refresh(ctx, repo, pull)


async def _synchronize(
    ctx: Context, repo: Repo, pull: PullRequest, after: str, pusher: Account
) -> None:
    before = pull.head_sha
    pull.head_sha = after
    pull.issue.updated_at = utcnow()
    await keep_head(ctx, repo, pull)
    await refresh(ctx, repo, pull)
    emit_pull(ctx, "synchronize", repo, pull, pusher, before=before, after=after)


def closing_references(text: str | None) -> list[int]:
    """List issue numbers a pull request body closes (`Closes #42`, `fixes #7`, ...)."""
    found: list[int] = []
    for match in CLOSING_KEYWORD.finditer(text or ""):
        number = int(match["number"])
        if number not in found:
            found.append(number)
    return found
