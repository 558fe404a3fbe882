"""REST: pull requests (create, read, list, update, files, commits) and merging them.

https://docs.github.com/rest/pulls/pulls. A pull request is an issue too: it takes the next issue
number, and the issues API reads, labels, comments on and closes it. Reviews live in
`rest_reviews.py`, the git facts and webhooks in `pulls.py`, merge commits in `merges.py`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from devhub import merges, pulls
from devhub.diffs import diff_entries, diff_entry_json
from devhub.git import NotFastForward, RefUpdate
from devhub.http import (
    API_PREFIX,
    NEEDS_TRIAGE,
    Context,
    GitHubError,
    RepoAccess,
    caller_role,
    context,
    field_bool,
    field_str,
    json_response,
    no_content,
    not_found,
    paged_json,
    paginate,
    read_body,
    repo_access,
    validation_failed,
)
from devhub.rest_git import commit_json
from devhub.rest_issues import edit_issue_text, set_issue_state
from devhub.rest_labels import sender_of
from devhub.rest_push import emit_ref_updates
from devhub.state import Account, Issue, Repo, Role, utcnow
from devhub.state_pulls import PullRequest

ROUTES = web.RouteTableDef()

PULLS = API_PREFIX + "/repos/{owner}/{repo}/pulls"
PULL = PULLS + "/{number:[0-9]+}"
READ = (("pull_requests", "read"),)
WRITE = (("pull_requests", "write"),)
MERGE = (("contents", "write"),)
MERGE_METHODS = ("merge", "squash", "rebase")
NOT_MERGEABLE = "Pull Request is not mergeable"
STILL_DRAFT = "Pull Request is still a draft"
HEAD_MODIFIED = "Head branch was modified. Review and try the merge again."
BASE_MODIFIED = "Base branch was modified. Review and try the merge again."
MERGED = "Pull Request successfully merged"
FORK_COLLAB_REFUSED = "Fork collab can't be granted by someone without permission"
PULL_SORTS = {
    "created": lambda p: p.issue.created_at,
    "updated": lambda p: p.issue.updated_at,
    "popularity": lambda p: len(p.issue.comments),
    "long-running": lambda p: p.issue.created_at,
}


def _custom(message: str) -> GitHubError:
    """Return GitHub's 422 with a `custom` error, the shape of pull request refusals."""
    errors = [{"resource": "PullRequest", "code": "custom", "message": message}]
    return GitHubError(422, "Validation Failed", errors=errors)


def find_pull(repo: Repo, request: web.Request) -> PullRequest:
    """Return the pull request `{number}` names, or GitHub's 404."""
    pull = repo.pulls.get(int(request.match_info["number"]))
    if pull is None:
        raise not_found()
    return pull


def _render(ctx: Context, repo: Repo, pull: PullRequest) -> dict[str, Any]:
    return pulls.pull_json(ctx.urls, ctx.state, repo, pull, ctx.app)


def _head_of(
    ctx: Context, access: RepoAccess, head: str, head_repo: str | None
) -> tuple[Repo, str]:
    """Find the head's repository and branch: `branch`, `owner:branch`, or `head_repo`'s.

    The head lives in the base repository or in a repository of its fork network that the caller
    can read: `owner:branch` names the owner's fork, and `head_repo` (`owner/name`) a fork when
    the owner holds more than one repository of the network (a fork in the same organization).
    """
    owner, sep, branch = head.rpartition(":")
    repo, network = access.repo, access.repo.network()
    if head_repo is not None:
        found = next((r for r in network if r.full_name.casefold() == head_repo.casefold()), None)
        if found is not None and sep and owner.casefold() != found.owner.login.casefold():
            found = None
    elif not sep or owner.casefold() == repo.owner.login.casefold():
        found = repo
    else:
        found = next((r for r in network if r.owner.login.casefold() == owner.casefold()), None)
    if found is None or caller_role(ctx.state, access.caller, found) < Role.READ:
        raise validation_failed("PullRequest", "head", "invalid")
    return found, branch


def _maintainer_can_modify(
    ctx: Context, access: RepoAccess, head_repo: Repo, body: dict[str, Any]
) -> bool:
    """Decide "Allow edits by maintainers" for a new pull request.

    It grants the base's maintainers the fork's head branch, so only someone who may push to the
    fork can grant it: GitHub refuses an explicit `true` from anyone else (`fork_collab`), and
    forks owned by organizations never grant it.
    """
    if head_repo is access.repo:
        return field_bool(body, "maintainer_can_modify", default=False)
    may_grant = caller_role(ctx.state, access.caller, head_repo) >= Role.WRITE
    may_grant = may_grant and head_repo.owner.type == "User"
    wanted = field_bool(body, "maintainer_can_modify", default=may_grant)
    if wanted and not may_grant:  # only an explicit `true` gets here
        raise validation_failed("PullRequest", "fork_collab", "custom", message=FORK_COLLAB_REFUSED)
    return wanted


@ROUTES.post(PULLS)
async def create_pull(request: web.Request) -> web.Response:
    """Open a pull request; 422 when a branch is missing, it exists already, or has no commits."""
    access = repo_access(request)
    access.require(Role.READ, app=WRITE)
    if access.caller.kind == "anonymous":
        raise GitHubError(401, "Requires authentication")
    ctx, repo = context(request), access.repo
    body = await read_body(request)
    title = field_str(body, "title", required=True) or ""
    head = field_str(body, "head", required=True) or ""
    base = field_str(body, "base", required=True) or ""
    draft = field_bool(body, "draft", default=False)
    head_repo, head_ref = _head_of(ctx, access, head, field_str(body, "head_repo"))
    maintainer_can_modify = _maintainer_can_modify(ctx, access, head_repo, body)
    head_sha = await pulls.branch_sha(ctx, head_repo, head_ref)
    if head_sha is None:
        raise validation_failed("PullRequest", "head", "invalid")
    base_sha = await pulls.branch_sha(ctx, repo, base)
    if base_sha is None:
        raise validation_failed("PullRequest", "base", "invalid")
    _refuse_duplicate(repo, head_repo, head_ref, base)
    if head_repo is not repo:
        source = (head_repo.owner.login, head_repo.name)
        await ctx.git.fetch_commit(repo.owner.login, repo.name, source, head_sha)
    facts = await pulls.compute_facts(ctx, repo, base_sha, head_sha)
    if facts.commits == 0:
        raise _custom(f"No commits between {base} and {head}")
    # Checked again after the last await: a concurrent create may have landed meanwhile, and
    # nothing until the insert yields, so the check and the insert are one step for the loop.
    _refuse_duplicate(repo, head_repo, head_ref, base)
    sender = sender_of(ctx, access)
    now = utcnow()
    issue = Issue(
        ctx.state.next_id(),
        repo.next_number(),
        title,
        field_str(body, "body"),
        sender,
        now,
        now,
        via_app=access.caller.kind == "installation",
        is_pull_request=True,
    )
    pull = PullRequest(
        id=ctx.state.next_id(),
        issue=issue,
        head_repo=head_repo,
        head_ref=head_ref,
        head_sha=head_sha,
        base_ref=base,
        facts=facts,
        draft=draft,
        maintainer_can_modify=maintainer_can_modify,
    )
    repo.issues[issue.number] = issue
    repo.pulls[issue.number] = pull
    await pulls.keep_head(ctx, repo, pull)
    pulls.emit_pull(ctx, "opened", repo, pull, sender)
    rendered = _render(ctx, repo, pull)
    return json_response(rendered, status=201, headers={"Location": rendered["url"]})


def _refuse_duplicate(repo: Repo, head_repo: Repo, head_ref: str, base: str) -> None:
    if any(
        p.is_open and p.head_repo is head_repo and (p.head_ref, p.base_ref) == (head_ref, base)
        for p in repo.pulls.values()
    ):
        raise _custom(f"A pull request already exists for {head_repo.owner.login}:{head_ref}.")


@ROUTES.get(PULL)
async def get_pull(request: web.Request) -> web.Response:
    """Show one pull request with its branches, diff size and mergeability."""
    access = repo_access(request)
    access.require(Role.READ, app=READ)
    pull = find_pull(access.repo, request)
    ctx = context(request)
    return json_response(_render(ctx, access.repo, pull))


@ROUTES.get(PULLS)
async def list_pulls(request: web.Request) -> web.Response:
    """List pull requests with GitHub's filters (`state`, `head` as owner:branch, `base`)."""
    access = repo_access(request)
    access.require(Role.READ, app=READ)
    ctx, repo, query = context(request), access.repo, request.query
    state = query.get("state", "open")
    head = query.get("head")
    chosen = [
        p
        for p in repo.pulls.values()
        if state in ("all", p.issue.state)
        and (head is None or _head_matches(p, head))
        and query.get("base", p.base_ref) == p.base_ref
    ]
    sort = query.get("sort", "created")
    key = PULL_SORTS.get(sort, PULL_SORTS["created"])
    default_direction = "asc" if sort == "long-running" else "desc"
    descending = query.get("direction", default_direction) == "desc"
    chosen.sort(key=lambda p: (key(p), p.number), reverse=descending)  # type: ignore[no-untyped-call]
    return paged_json(request, chosen, lambda p: _render(ctx, repo, p))


def _head_matches(pull: PullRequest, head: str) -> bool:
    """Apply the `head` filter, `owner:branch` (the head's owner; a bare branch matches none)."""
    owner, sep, branch = head.partition(":")
    owner_matches = owner.casefold() == pull.head_repo.owner.login.casefold()
    return bool(sep) and owner_matches and pull.head_ref == branch


@ROUTES.patch(PULL)
async def update_pull(request: web.Request) -> web.Response:
    """Edit title, body, base or state; the author may, others need write access."""
    access = repo_access(request)
    pull = find_pull(access.repo, request)
    is_author = access.caller.kind == "user" and access.caller.account is pull.issue.user
    if not is_author:
        access.require(Role.WRITE, app=WRITE, message=NEEDS_TRIAGE)
    access.require(Role.READ, app=WRITE)
    ctx, repo = context(request), access.repo
    body = await read_body(request)
    sender = sender_of(ctx, access)
    edit_issue_text(ctx, access, pull.issue, body, sender)
    pull.maintainer_can_modify = field_bool(
        body, "maintainer_can_modify", default=pull.maintainer_can_modify
    )
    await _change_base(ctx, repo, pull, field_str(body, "base"), sender)
    await _change_state(ctx, repo, pull, field_str(body, "state"), sender)
    return json_response(_render(ctx, repo, pull))


async def _change_base(
    ctx: Context, repo: Repo, pull: PullRequest, base: str | None, sender: Account
) -> None:
    if base is None or base == pull.base_ref:
        return
    base_sha = await pulls.branch_sha(ctx, repo, base)
    if base_sha is None or not pull.is_open:
        raise validation_failed("PullRequest", "base", "invalid")
    previous = {"ref": {"from": pull.base_ref}, "sha": {"from": pull.facts.base_sha}}
    pull.base_ref = base
    pull.issue.updated_at = utcnow()
    await pulls.refresh(ctx, repo, pull)
    pulls.emit_pull(ctx, "edited", repo, pull, sender, changes={"base": previous})


async def _change_state(
    ctx: Context, repo: Repo, pull: PullRequest, state: str | None, sender: Account
) -> None:
    if state is None or state == pull.issue.state:
        return
    if state not in ("open", "closed") or pull.merged:
        raise validation_failed("PullRequest", "state", "invalid")
    if state == "open":
        head_sha = await pulls.branch_sha(ctx, pull.head_repo, pull.head_ref)
        if head_sha is None:
            raise _custom("state cannot be changed. The head branch was deleted.")
        pull.head_sha = head_sha
        await pulls.keep_head(ctx, repo, pull)
    set_issue_state(ctx, repo, pull.issue, state, sender, reason=None)
    await pulls.refresh(ctx, repo, pull)


@ROUTES.get(PULL + "/files")
async def list_files(request: web.Request) -> web.Response:
    """List the files a pull request changes (against the merge base), with patches."""
    access = repo_access(request)
    access.require(Role.READ, app=READ)
    pull = find_pull(access.repo, request)
    ctx, repo = context(request), access.repo
    base = pull.facts.base_sha
    fork_point = await ctx.git.merge_base(repo.owner.login, repo.name, base, pull.head_sha)
    entries = await diff_entries(ctx, repo, fork_point or base, pull.head_sha)
    return paged_json(request, entries, lambda e: diff_entry_json(ctx.urls, repo, pull.head_sha, e))


@ROUTES.get(PULL + "/commits")
async def list_commits(request: web.Request) -> web.Response:
    """List the commits a pull request brings, oldest first (at most 250, as GitHub)."""
    access = repo_access(request)
    access.require(Role.READ, app=READ)
    pull = find_pull(access.repo, request)
    ctx, repo = context(request), access.repo
    commits = await ctx.git.commits_between(
        repo.owner.login, repo.name, pull.facts.base_sha, pull.head_sha, pulls.MAX_COMMITS
    )
    page, headers = paginate(request, [commit for commit, _change in commits])
    return json_response([commit_json(ctx.urls, repo, c) for c in page], headers=headers)


@ROUTES.get(PULL + "/merge")
async def check_merged(request: web.Request) -> web.Response:
    """Answer 204 if the pull request was merged, 404 if not."""
    access = repo_access(request)
    access.require(Role.READ, app=READ)
    if not find_pull(access.repo, request).merged:
        raise not_found()
    return no_content()


@ROUTES.put(PULL + "/merge")
async def merge_pull(request: web.Request) -> web.Response:
    """Merge (merge commit, squash or rebase); 405 when it cannot, 409 when `sha` is stale."""
    access = repo_access(request)
    access.require(Role.WRITE, app=MERGE, message=NEEDS_TRIAGE)
    pull = find_pull(access.repo, request)
    ctx, repo = context(request), access.repo
    body = await read_body(request)
    method = field_str(body, "merge_method") or "merge"
    if method not in MERGE_METHODS:
        raise validation_failed("PullRequest", "merge_method", "invalid")
    if not pull.is_open:
        raise GitHubError(405, NOT_MERGEABLE)
    if pull.draft:
        raise GitHubError(405, STILL_DRAFT)
    expected = field_str(body, "sha")
    if expected is not None and expected != pull.head_sha:
        raise GitHubError(409, HEAD_MODIFIED)
    await pulls.refresh(ctx, repo, pull)
    if not pull.facts.mergeable:
        raise GitHubError(405, NOT_MERGEABLE)
    merger = sender_of(ctx, access)
    base_sha = pull.facts.base_sha
    new_head = await merges.merge_commit(
        ctx,
        repo,
        pull,
        method,
        merger,
        title=field_str(body, "commit_title"),
        message=field_str(body, "commit_message"),
    )
    if new_head is None:
        raise GitHubError(405, NOT_MERGEABLE)
    try:
        await ctx.git.update_ref(
            repo.owner.login, repo.name, pulls.HEADS + pull.base_ref, new_head, force=False
        )
    except NotFastForward:
        raise GitHubError(409, BASE_MODIFIED) from None
    _record_merge(pull, merger, new_head)
    update = RefUpdate(pulls.HEADS + pull.base_ref, base_sha, new_head)
    await emit_ref_updates(ctx, repo, [update], merger)
    pulls.emit_pull(ctx, "closed", repo, pull, merger)
    if pull.base_ref == repo.default_branch:
        _close_referenced_issues(ctx, repo, pull, merger)
    return json_response({"sha": new_head, "merged": True, "message": MERGED})


def _record_merge(pull: PullRequest, merger: Account, merge_sha: str) -> None:
    now = utcnow()
    pull.merged_at, pull.merged_by, pull.merge_commit_sha = now, merger, merge_sha
    issue = pull.issue
    issue.state, issue.closed_at, issue.closed_by, issue.updated_at = "closed", now, merger, now


def _close_referenced_issues(ctx: Context, repo: Repo, pull: PullRequest, merger: Account) -> None:
    for number in pulls.closing_references(pull.issue.body):
        issue = repo.issues.get(number)
        if issue is not None and not issue.is_pull_request and issue.state == "open":
            set_issue_state(ctx, repo, issue, "closed", merger, reason="completed")


def access_for_review(request: web.Request) -> tuple[RepoAccess, PullRequest]:
    """Return the caller's access and the pull request a review endpoint names."""
    access = repo_access(request)
    return access, find_pull(access.repo, request)
