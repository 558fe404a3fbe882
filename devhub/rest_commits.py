"""REST: one commit with its diff, and comparing two commits.

https://docs.github.com/rest/commits/commits. `{ref}` is a sha, a branch or a tag; branch names
may hold slashes, so these routes are registered after `/commits/{ref}/check-runs`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from devhub.diffs import DiffEntry, diff_entries, diff_entry_json
from devhub.git import GitError
from devhub.http import API_PREFIX, GitHubError, context, json_response, not_found, repo_access
from devhub.rest_git import commit_json
from devhub.state import Role

if TYPE_CHECKING:
    from devhub.http import Context
    from devhub.rest_json import JSON
    from devhub.state import Repo

ROUTES = web.RouteTableDef()

REPO = API_PREFIX + "/repos/{owner}/{repo}"
READ = (("contents", "read"),)
MAX_COMPARE_COMMITS = 250
NO_COMMON_ANCESTOR = "No common ancestor between {base} and {head}."


def _stats(entries: list[DiffEntry]) -> JSON:
    additions = sum(e.additions for e in entries)
    deletions = sum(e.deletions for e in entries)
    return {"total": additions + deletions, "additions": additions, "deletions": deletions}


async def _resolve(ctx: Context, repo: Repo, rev: str) -> str:
    try:
        return await ctx.git.resolve(repo.owner.login, repo.name, rev)
    except GitError:
        raise GitHubError(422, f"No commit found for SHA: {rev}") from None


@ROUTES.get(REPO + "/commits/{ref:.+}")
async def get_commit(request: web.Request) -> web.Response:
    """Show a commit with its stats and changed files (against its first parent)."""
    access = repo_access(request)
    access.require(Role.READ, app=READ)
    ctx, repo = context(request), access.repo
    sha = await _resolve(ctx, repo, request.match_info["ref"])
    commit = await ctx.git.get_commit(repo.owner.login, repo.name, sha)
    if commit.parents:
        entries = await diff_entries(ctx, repo, commit.parents[0], sha)
    else:
        entries = []  # a root commit: GitHub lists its files as added; devhub lists none
    rendered = commit_json(ctx.urls, repo, commit) | {
        "stats": _stats(entries),
        "files": [diff_entry_json(ctx.urls, repo, sha, e) for e in entries],
    }
    return json_response(rendered)


@ROUTES.get(REPO + "/compare/{basehead:.+}")
async def compare(request: web.Request) -> web.Response:
    """Compare `base...head`: ahead/behind counts, the commits and files head brings."""
    access = repo_access(request)
    access.require(Role.READ, app=READ)
    ctx, repo = context(request), access.repo
    owner, name = repo.owner.login, repo.name
    base_rev, sep, head_rev = request.match_info["basehead"].partition("...")
    if not sep:
        base_rev, sep, head_rev = request.match_info["basehead"].partition("..")
    if not sep or not base_rev or not head_rev:
        raise not_found()
    base, head = await _resolve(ctx, repo, base_rev), await _resolve(ctx, repo, head_rev)
    fork_point = await ctx.git.merge_base(owner, name, base, head)
    if fork_point is None:
        raise GitHubError(404, NO_COMMON_ANCESTOR.format(base=base_rev, head=head_rev))
    ahead = await ctx.git.commits_between(owner, name, base, head, MAX_COMPARE_COMMITS)
    behind = await ctx.git.commits_between(owner, name, head, base, MAX_COMPARE_COMMITS)
    status = "identical" if base == head else "ahead" if not behind else "diverged"
    if not ahead and behind:
        status = "behind"
    entries = await diff_entries(ctx, repo, fork_point, head)
    commits = [commit for commit, _change in ahead]
    html = f"{ctx.urls.web}/{repo.full_name}/compare/{base_rev}...{head_rev}"
    base_commit = await ctx.git.get_commit(owner, name, base)
    fork_commit = await ctx.git.get_commit(owner, name, fork_point)
    answer: JSON = {
        "url": f"{ctx.urls.api}/repos/{repo.full_name}/compare/{base_rev}...{head_rev}",
        "html_url": html,
        "permalink_url": f"{ctx.urls.web}/{repo.full_name}/compare/{base[:7]}...{head[:7]}",
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "base_commit": commit_json(ctx.urls, repo, base_commit),
        "merge_base_commit": commit_json(ctx.urls, repo, fork_commit),
        "status": status,
        "ahead_by": len(ahead),
        "behind_by": len(behind),
        "total_commits": len(ahead),
        "commits": [commit_json(ctx.urls, repo, c) for c in commits],
        "files": [diff_entry_json(ctx.urls, repo, head, e) for e in entries],
    }
    return json_response(answer)
