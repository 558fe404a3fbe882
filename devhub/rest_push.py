"""Announcing ref changes the way GitHub does: `push` for every ref, `create`/`delete` too.

Pull requests whose head branch moved then get `synchronize` (devhub/pulls.py).

Used by the git database API, the contents API and git pushes over smart HTTP alike.
https://docs.github.com/webhooks/webhook-events-and-payloads#push
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from devhub import pulls
from devhub.git import ZERO_SHA, FileChange, GitCommit, RefUpdate
from devhub.rest_json import JSON, git_person, person_json
from devhub.state import Account, Repo, utcnow

if TYPE_CHECKING:
    from devhub.http import Context

PUSH_COMMIT_LIMIT = 20


async def emit_ref_updates(
    ctx: Context, repo: Repo, updates: list[RefUpdate], pusher: Account
) -> None:
    """Announce ref changes as GitHub does: `push` for every ref, `create`/`delete` too."""
    if updates:
        repo.pushed_at = repo.updated_at = utcnow()
    for update in updates:
        await _emit_push(ctx, repo, update, pusher)
        short, ref_type = _short_ref(update.ref)
        if ref_type is None:
            continue
        if update.before == ZERO_SHA:
            body = {
                "ref": short,
                "ref_type": ref_type,
                "master_branch": repo.default_branch,
                "description": repo.description,
                "pusher_type": "user",
            }
            ctx.webhooks.emit("create", body, sender=pusher, repo=repo)
        elif update.after == ZERO_SHA:
            body = {"ref": short, "ref_type": ref_type, "pusher_type": "user"}
            ctx.webhooks.emit("delete", body, sender=pusher, repo=repo)
    await pulls.on_ref_updates(ctx, repo, updates, pusher)


def _short_ref(ref: str) -> tuple[str, str | None]:
    for prefix, kind in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
        if ref.startswith(prefix):
            return ref.removeprefix(prefix), kind
    return ref, None


async def _emit_push(ctx: Context, repo: Repo, update: RefUpdate, pusher: Account) -> None:
    owner, name = repo.owner.login, repo.name
    created, deleted = update.before == ZERO_SHA, update.after == ZERO_SHA
    others = (
        []
        if not created
        else [
            sha
            for ref, sha in (await ctx.git.list_refs(owner, name, "refs/heads/")).items()
            if ref != update.ref
        ]
    )
    commits = await ctx.git.commits_between(
        owner, name, update.before, update.after, PUSH_COMMIT_LIMIT, exclude=others
    )
    forced = False
    if not created and not deleted:
        forced = not await ctx.git.is_ancestor(owner, name, update.before, update.after)
    web_repo = f"{ctx.urls.web}/{repo.full_name}"
    rendered = [_push_commit(web_repo, commit, change) for commit, change in commits]
    head: JSON | None = rendered[-1] if rendered else None
    if head is None and not deleted:
        commit = await ctx.git.get_commit(owner, name, update.after)
        head = _push_commit(web_repo, commit, None) | {"distinct": False}
    compare = f"{web_repo}/compare/{update.before[:12]}...{update.after[:12]}"
    if created:
        compare = (
            f"{web_repo}/commit/{update.after[:12]}"
            if len(rendered) <= 1
            else f"{web_repo}/compare/{update.after[:12]}"
        )
    person = git_person(pusher, "")
    body = {
        "ref": update.ref,
        "before": update.before,
        "after": update.after,
        "pusher": {"name": pusher.login, "email": person.email},
        "created": created,
        "deleted": deleted,
        "forced": forced,
        "base_ref": None,
        "compare": compare,
        "commits": rendered,
        "head_commit": head,
    }
    ctx.webhooks.emit("push", body, sender=pusher, repo=repo)


def _push_commit(web_repo: str, commit: GitCommit, change: FileChange | None) -> JSON:
    return {
        "id": commit.sha,
        "tree_id": commit.tree,
        "distinct": True,
        "message": commit.message,
        "timestamp": commit.committer.date,
        "url": f"{web_repo}/commit/{commit.sha}",
        "author": person_json(commit.author) | {"date": commit.author.date},
        "committer": person_json(commit.committer),
        "added": list(change.added) if change else [],
        "removed": list(change.removed) if change else [],
        "modified": list(change.modified) if change else [],
    }
