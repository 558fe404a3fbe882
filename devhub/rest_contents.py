"""REST: file contents (read, create/update with compare-and-swap, delete) and branches.

https://docs.github.com/rest/repos/contents and https://docs.github.com/rest/branches/branches
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from devhub.git import (
    ZERO_SHA,
    GitError,
    ObjectNotFound,
    PathNotFound,
    RefNotFound,
    RefUpdate,
    ShaMismatch,
    TreeEntry,
)
from devhub.http import (
    API_PREFIX,
    NOT_ACCESSIBLE,
    Context,
    GitHubError,
    RepoAccess,
    context,
    field_str,
    json_response,
    not_found,
    paginate,
    read_body,
    repo_access,
)
from devhub.rest_git import (
    READ,
    WRITE,
    author_and_committer,
    commit_json,
    decode_base64,
    encode_content,
    git_commit_json,
)
from devhub.rest_labels import sender_of
from devhub.rest_push import emit_ref_updates
from devhub.state import Repo, Role, permission_allows

if TYPE_CHECKING:
    from devhub.rest_json import JSON, Urls

ROUTES = web.RouteTableDef()

REPO = API_PREFIX + "/repos/{owner}/{repo}"
CONTENTS = REPO + "/contents/{path:.*}"
EMPTY_REPOSITORY = "This repository is empty."
WORKFLOWS_DIR = ".github/workflows/"
ENTRY_TYPES = {"tree": "dir", "commit": "submodule"}
SYMLINK_MODE = "120000"


def _entry_type(entry: TreeEntry) -> str:
    if entry.mode == SYMLINK_MODE:
        return "symlink"
    return ENTRY_TYPES.get(entry.type, "file")


def content_entry(
    urls: Urls, repo: Repo, path: str, *, sha: str, kind: str, size: int, ref: str
) -> JSON:
    """Render one contents-API entry (`content-file` minus the content)."""
    quoted = quote(path)
    api = f"{urls.api}/repos/{repo.full_name}"
    self_url = f"{api}/contents/{quoted}?ref={quote(ref, safe='')}"
    git_url = f"{api}/git/{'trees' if kind == 'dir' else 'blobs'}/{sha}"
    html_url = f"{urls.web}/{repo.full_name}/{'tree' if kind == 'dir' else 'blob'}/{ref}/{quoted}"
    download = f"{urls.web}/{repo.full_name}/raw/{ref}/{quoted}" if kind == "file" else None
    return {
        "type": kind,
        "size": size,
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha": sha,
        "url": self_url,
        "git_url": git_url,
        "html_url": html_url,
        "download_url": download,
        "_links": {"self": self_url, "git": git_url, "html": html_url},
    }


def _path(request: web.Request) -> str:
    return request.match_info["path"].strip("/")


async def _require_content(ctx: Context, repo: Repo) -> None:
    if await ctx.git.is_empty(repo.owner.login, repo.name):
        raise GitHubError(404, EMPTY_REPOSITORY)


@ROUTES.get(CONTENTS)
async def get_content(request: web.Request) -> web.Response:
    """Read a file (base64) or list a directory at `ref` (default: the default branch)."""
    access = repo_access(request)
    access.require(Role.READ, app=READ)
    ctx = context(request)
    repo = access.repo
    await _require_content(ctx, repo)
    ref = request.query.get("ref") or repo.default_branch
    path = _path(request)
    try:
        kind, found, sha = await ctx.git.read_path(repo.owner.login, repo.name, ref, path)
    except ObjectNotFound as error:
        raise GitHubError(404, str(error)) from None
    except (PathNotFound, GitError):
        raise not_found() from None
    if kind == "dir":
        assert isinstance(found, list)
        entries = [
            content_entry(
                ctx.urls, repo, e.path, sha=e.sha, kind=_entry_type(e), size=e.size or 0, ref=ref
            )
            for e in found
        ]
        return json_response(entries)
    assert isinstance(found, bytes)
    entry = content_entry(ctx.urls, repo, path, sha=sha, kind="file", size=len(found), ref=ref)
    return json_response(entry | {"content": encode_content(found), "encoding": "base64"})


def _require_write(access: RepoAccess, path: str) -> None:
    # GitHub hides write endpoints from people who may only read behind a 404.
    access.require(Role.WRITE, app=WRITE)
    caller = access.caller
    if (
        caller.kind == "installation"
        and path.startswith(WORKFLOWS_DIR)
        and not permission_allows(caller.permissions, "workflows", "write")
    ):
        # Writing workflow files needs the `workflows` permission on top of `contents`.
        raise GitHubError(403, NOT_ACCESSIBLE)


async def _file_commit(
    ctx: Context, access: RepoAccess, branch: str, commit_sha: str, content: JSON | None
) -> tuple[JSON, RefUpdate]:
    repo = access.repo
    commit = await ctx.git.get_commit(repo.owner.login, repo.name, commit_sha)
    before = commit.parents[0] if commit.parents else ZERO_SHA
    update = RefUpdate(f"refs/heads/{branch}", before, commit_sha)
    return {"content": content, "commit": git_commit_json(ctx.urls, repo, commit)}, update


@ROUTES.put(CONTENTS)
async def put_content(request: web.Request) -> web.Response:
    """Create or update a file; `sha` is the compare-and-swap guard (409 stale, 422 missing)."""
    access = repo_access(request)
    path = _path(request)
    _require_write(access, path)
    ctx = context(request)
    repo = access.repo
    body = await read_body(request)
    message = field_str(body, "message", required=True) or ""
    content = decode_base64(field_str(body, "content", required=True) or "")
    expected = field_str(body, "sha")
    branch = field_str(body, "branch") or repo.default_branch
    author, committer = author_and_committer(body, sender_of(ctx, access))
    existed = await _exists(ctx, repo, branch, path)
    try:
        commit_sha, blob_sha = await ctx.git.write_file(
            repo.owner.login,
            repo.name,
            branch=branch,
            path=path,
            content=content,
            message=message,
            expected_sha=expected,
            author=author,
            committer=committer,
        )
    except ShaMismatch as error:
        raise GitHubError(422 if error.missing else 409, str(error)) from None
    except RefNotFound as error:
        raise GitHubError(404, str(error)) from None
    except GitError as error:
        raise GitHubError(422, str(error)) from None
    entry = content_entry(
        ctx.urls, repo, path, sha=blob_sha, kind="file", size=len(content), ref=branch
    )
    answer, update = await _file_commit(ctx, access, branch, commit_sha, entry)
    await emit_ref_updates(ctx, repo, [update], sender_of(ctx, access))
    return json_response(answer, status=200 if existed else 201)


async def _exists(ctx: Context, repo: Repo, branch: str, path: str) -> bool:
    try:
        await ctx.git.read_path(repo.owner.login, repo.name, branch, path)
    except GitError:
        return False
    return True


@ROUTES.delete(CONTENTS)
async def delete_content(request: web.Request) -> web.Response:
    """Delete a file; `sha` must be the file's current blob sha."""
    access = repo_access(request)
    path = _path(request)
    _require_write(access, path)
    ctx = context(request)
    repo = access.repo
    body = await read_body(request)
    message = field_str(body, "message", required=True) or ""
    expected = field_str(body, "sha", required=True) or ""
    branch = field_str(body, "branch") or repo.default_branch
    author, committer = author_and_committer(body, sender_of(ctx, access))
    try:
        commit_sha = await ctx.git.delete_file(
            repo.owner.login,
            repo.name,
            branch=branch,
            path=path,
            message=message,
            expected_sha=expected,
            author=author,
            committer=committer,
        )
    except ShaMismatch as error:
        raise GitHubError(409, str(error)) from None
    except (PathNotFound, RefNotFound):
        raise not_found() from None
    except GitError as error:
        raise GitHubError(422, str(error)) from None
    answer, update = await _file_commit(ctx, access, branch, commit_sha, None)
    await emit_ref_updates(ctx, repo, [update], sender_of(ctx, access))
    return json_response(answer)


# branches


@ROUTES.get(REPO + "/branches")
async def list_branches(request: web.Request) -> web.Response:
    """List branches, with the sha each points at."""
    access = repo_access(request)
    access.require(Role.READ, app=(("metadata", "read"), ("contents", "read")))
    ctx = context(request)
    repo = access.repo
    refs = await ctx.git.list_refs(repo.owner.login, repo.name, "refs/heads/")
    api = f"{ctx.urls.api}/repos/{repo.full_name}"
    branches = sorted((ref.removeprefix("refs/heads/"), sha) for ref, sha in refs.items())
    if request.query.get("protected") == "true":
        branches = []  # devhub has no branch protection yet
    page, headers = paginate(request, branches)
    return json_response(
        [
            {
                "name": name,
                "commit": {"sha": sha, "url": f"{api}/commits/{sha}"},
                "protected": False,
            }
            for name, sha in page
        ],
        headers=headers,
    )


@ROUTES.get(REPO + "/branches/{branch:.+}")
async def get_branch(request: web.Request) -> web.Response:
    """Show a branch and its head commit."""
    access = repo_access(request)
    access.require(Role.READ, app=(("metadata", "read"), ("contents", "read")))
    ctx = context(request)
    repo, name = access.repo, request.match_info["branch"]
    try:
        sha = await ctx.git.get_ref(repo.owner.login, repo.name, f"refs/heads/{name}")
        commit = await ctx.git.get_commit(repo.owner.login, repo.name, sha)
    except GitError:
        raise GitHubError(404, "Branch not found") from None
    api = f"{ctx.urls.api}/repos/{repo.full_name}/branches/{quote(name)}"
    answer: dict[str, Any] = {
        "name": name,
        "commit": commit_json(ctx.urls, repo, commit),
        "_links": {"self": api, "html": f"{ctx.urls.web}/{repo.full_name}/tree/{name}"},
        "protected": False,
        "protection": {
            "enabled": False,
            "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []},
        },
        "protection_url": f"{api}/protection",
    }
    return json_response(answer)
