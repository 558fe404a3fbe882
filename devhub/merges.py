"""Merge commits for pull requests, made with git's plumbing: merge, squash and rebase.

GitHub writes merges made on the website or through the API with the merger as author and
`GitHub <noreply@github.com>` as committer (the "web-flow" identity), and titles them
`Merge pull request #N from owner/branch`; squash merges default to `<title> (#N)` and list the
squashed commits in the message:
https://docs.github.com/repositories/configuring-branches-and-merges-in-your-repository/configuring-pull-request-merges/about-merge-methods-on-github
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from devhub.git import GitPerson
from devhub.rest_json import git_person
from devhub.state import iso, utcnow

if TYPE_CHECKING:
    from devhub.http import Context
    from devhub.state import Account, Repo
    from devhub.state_pulls import PullRequest

WEB_FLOW_NAME = "GitHub"
WEB_FLOW_EMAIL = "noreply@github.com"
REBASE_SCAFFOLD = "devhub: the base a rebased commit is replayed from"


def web_flow(date: str) -> GitPerson:
    """Return the committer GitHub uses for merges it makes."""
    return GitPerson(WEB_FLOW_NAME, WEB_FLOW_EMAIL, date)


async def merge_commit(
    ctx: Context,
    repo: Repo,
    pull: PullRequest,
    method: str,
    merger: Account,
    *,
    title: str | None,
    message: str | None,
) -> str | None:
    """Write the commit(s) a merge puts on the base branch; return the new tip (None: conflict)."""
    owner, name = repo.owner.login, repo.name
    base_sha, head_sha = pull.facts.base_sha, pull.head_sha
    now = iso(utcnow()) or ""
    author, committer = git_person(merger, now), web_flow(now)
    if method == "rebase":
        return await _rebase(ctx, repo, base_sha, head_sha, committer)
    tree = await ctx.git.merge_trees(owner, name, base_sha, head_sha)
    if tree is None:
        return None
    if method == "squash":
        commits = await ctx.git.commits_between(owner, name, base_sha, head_sha, 250)
        listed = "\n\n".join(f"* {commit.message.strip()}" for commit, _change in commits)
        text = f"{title or f'{pull.issue.title} (#{pull.number})'}\n\n{message or listed}"
        parents = [base_sha]
    else:
        head_owner = pull.head_repo.owner.login  # a fork's owner for pull requests from forks
        default_title = f"Merge pull request #{pull.number} from {head_owner}/{pull.head_ref}"
        text = f"{title or default_title}\n\n{message if message is not None else pull.issue.title}"
        parents = [base_sha, head_sha]
    return await ctx.git.create_commit(
        owner,
        name,
        message=text.rstrip("\n") + "\n",
        tree=tree,
        parents=parents,
        author=author,
        committer=committer,
    )


async def _rebase(
    ctx: Context, repo: Repo, base_sha: str, head_sha: str, committer: GitPerson
) -> str | None:
    """Replay each commit of the branch on the base, keeping authors and messages.

    Each commit is cherry-picked with an explicit merge base, its own parent: a scaffold commit
    holding the current tip's tree with that parent makes `git merge-tree` use it (git 2.39 has
    no `--merge-base`).
    """
    owner, name = repo.owner.login, repo.name
    tip = base_sha
    for commit, _change in await ctx.git.commits_between(owner, name, base_sha, head_sha, 250):
        parent = commit.parents[0] if commit.parents else None
        tip_tree = (await ctx.git.get_commit(owner, name, tip)).tree
        if parent is None:
            return None
        scaffold = await ctx.git.create_commit(
            owner,
            name,
            message=REBASE_SCAFFOLD,
            tree=tip_tree,
            parents=[parent],
            author=committer,
            committer=committer,
        )
        tree = await ctx.git.merge_trees(owner, name, scaffold, commit.sha)
        if tree is None:
            return None
        tip = await ctx.git.create_commit(
            owner,
            name,
            message=commit.message,
            tree=tree,
            parents=[tip],
            author=commit.author,
            committer=committer,
        )
    return tip
