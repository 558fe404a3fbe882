"""REST: the git database (refs, commits, trees, blobs) and the push/create/delete webhooks.

https://docs.github.com/rest/git. Every ref change, whether through this API, the contents API or a
git push, is announced by `emit_ref_updates` the way GitHub announces pushes.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from aiohttp import web

from devhub.git import (
    ZERO_SHA,
    BadObject,
    GitCommit,
    GitError,
    GitPerson,
    NotFastForward,
    ObjectNotFound,
    RefExists,
    RefNotFound,
    RefUpdate,
    RepoNotFound,
    TreeEntry,
)
from devhub.http import (
    API_PREFIX,
    Context,
    GitHubError,
    RepoAccess,
    context,
    field_bool,
    field_str,
    json_response,
    no_content,
    not_found,
    read_body,
    repo_access,
    validation_failed,
)
from devhub.rest_json import JSON, Urls, git_person, person_json
from devhub.rest_labels import sender_of
from devhub.rest_push import emit_ref_updates
from devhub.state import Account, Repo, Role, iso, node_id, utcnow

if TYPE_CHECKING:
    from collections.abc import Iterator

ROUTES = web.RouteTableDef()

GIT = API_PREFIX + "/repos/{owner}/{repo}/git"
EMPTY_REPOSITORY = "Git Repository is empty."
READ = (("contents", "read"),)
WRITE = (("contents", "write"),)


@contextmanager
def git_errors() -> Iterator[None]:
    """Turn GitStore's typed errors into GitHub's answers."""
    try:
        yield
    except RefExists:
        raise GitHubError(422, "Reference already exists") from None
    except RefNotFound:
        raise GitHubError(422, "Reference does not exist") from None
    except NotFastForward:
        raise GitHubError(422, "Update is not a fast forward") from None
    except ObjectNotFound:
        raise GitHubError(422, "Object does not exist") from None
    except BadObject as error:
        raise GitHubError(422, str(error)) from None
    except RepoNotFound:
        raise GitHubError(409, EMPTY_REPOSITORY) from None
    except GitError as error:
        raise GitHubError(422, str(error)) from None


async def require_content(ctx: Context, repo: Repo) -> None:
    """Answer 409 `Git Repository is empty.` for a repository with no refs, as GitHub does."""
    if await ctx.git.is_empty(repo.owner.login, repo.name):
        raise GitHubError(409, EMPTY_REPOSITORY)


def _access(request: web.Request, role: Role) -> RepoAccess:
    access = repo_access(request)
    if role >= Role.WRITE:
        access.require(role, app=WRITE)
    else:
        access.require(role, app=READ)
    return access


# rendering


def ref_json(urls: Urls, repo: Repo, ref: str, sha: str, kind: str = "commit") -> JSON:
    """Render a `git-ref`."""
    api = f"{urls.api}/repos/{repo.full_name}/git"
    return {
        "ref": ref,
        "node_id": node_id("REF", zlib.crc32(f"{repo.id}:{ref}".encode())),
        "url": f"{api}/{ref}",
        "object": {"sha": sha, "type": kind, "url": f"{api}/{kind}s/{sha}"},
    }


UNSIGNED = {
    "verified": False,
    "reason": "unsigned",
    "signature": None,
    "payload": None,
    "verified_at": None,
}


def git_commit_json(urls: Urls, repo: Repo, commit: GitCommit) -> JSON:
    """Render a `git-commit`."""
    api = f"{urls.api}/repos/{repo.full_name}/git"
    web_url = f"{urls.web}/{repo.full_name}/commit"
    return {
        "sha": commit.sha,
        "node_id": node_id("C", int(commit.sha[:12], 16)),
        "url": f"{api}/commits/{commit.sha}",
        "html_url": f"{web_url}/{commit.sha}",
        "author": person_json(commit.author),
        "committer": person_json(commit.committer),
        "tree": {"sha": commit.tree, "url": f"{api}/trees/{commit.tree}"},
        "message": commit.message,
        "parents": [
            {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{web_url}/{p}"}
            for p in commit.parents
        ],
        "verification": dict(UNSIGNED),
    }


def commit_json(urls: Urls, repo: Repo, commit: GitCommit) -> JSON:
    """Render a `commit` (the repos API's view of a commit)."""
    api = f"{urls.api}/repos/{repo.full_name}"
    git = git_commit_json(urls, repo, commit)
    return {
        "sha": commit.sha,
        "node_id": git["node_id"],
        "url": f"{api}/commits/{commit.sha}",
        "html_url": git["html_url"],
        "comments_url": f"{api}/commits/{commit.sha}/comments",
        "commit": {
            "url": git["url"],
            "author": git["author"],
            "committer": git["committer"],
            "message": commit.message,
            "tree": git["tree"],
            "comment_count": 0,
            "verification": dict(UNSIGNED),
        },
        "author": None,
        "committer": None,
        "parents": [
            {"sha": p["sha"], "url": f"{api}/commits/{p['sha']}", "html_url": p["html_url"]}
            for p in git["parents"]
        ],
    }


def _person(body: dict[str, Any], name: str, default: GitPerson) -> GitPerson:
    value = body.get(name)
    if value is None:
        return default
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("name"), str)
        or not isinstance(value.get("email"), str)
    ):
        raise validation_failed("Commit", name, "invalid")
    date = value.get("date")
    return GitPerson(value["name"], value["email"], date if isinstance(date, str) else default.date)


def author_and_committer(body: dict[str, Any], account: Account) -> tuple[GitPerson, GitPerson]:
    """Read `author`/`committer` from a request, defaulting to the caller (as GitHub does)."""
    fallback = git_person(account, iso(utcnow()) or "")
    committer = _person(body, "committer", fallback)
    author = _person(body, "author", committer)
    return author, committer


# refs


def _ref(request: web.Request) -> str:
    return "refs/" + request.match_info["ref"].removeprefix("refs/")


@ROUTES.get(GIT + "/ref/{ref:.+}")
async def get_ref(request: web.Request) -> web.Response:
    """Show one ref (`heads/main`)."""
    access = _access(request, Role.READ)
    ctx = context(request)
    await require_content(ctx, access.repo)
    ref = _ref(request)
    refs = await ctx.git.list_refs(access.repo.owner.login, access.repo.name, ref)
    if ref not in refs:
        raise not_found()
    return json_response(ref_json(ctx.urls, access.repo, ref, refs[ref]))


@ROUTES.get(GIT + "/matching-refs/{ref:.*}")
async def list_matching_refs(request: web.Request) -> web.Response:
    """List refs whose name starts with the given prefix."""
    access = _access(request, Role.READ)
    ctx = context(request)
    await require_content(ctx, access.repo)
    prefix = "refs/" + request.match_info["ref"].removeprefix("refs/")
    refs = await ctx.git.list_refs(access.repo.owner.login, access.repo.name, prefix)
    return json_response(
        [ref_json(ctx.urls, access.repo, r, sha) for r, sha in sorted(refs.items())]
    )


@ROUTES.post(GIT + "/refs")
async def create_ref(request: web.Request) -> web.Response:
    """Create a ref atomically: 422 `Reference already exists` if it is there."""
    access = _access(request, Role.WRITE)
    ctx = context(request)
    body = await read_body(request)
    ref = field_str(body, "ref", required=True) or ""
    sha = field_str(body, "sha", required=True) or ""
    if not ref.startswith("refs/") or ref.count("/") < 2:
        raise GitHubError(
            422, "Reference name must start with 'refs/' and contain at least two slashes."
        )
    repo = access.repo
    with git_errors():
        await ctx.git.create_ref(repo.owner.login, repo.name, ref, sha)
    await emit_ref_updates(ctx, repo, [RefUpdate(ref, ZERO_SHA, sha)], sender_of(ctx, access))
    rendered = ref_json(ctx.urls, repo, ref, sha)
    return json_response(rendered, status=201, headers={"Location": rendered["url"]})


@ROUTES.patch(GIT + "/refs/{ref:.+}")
async def update_ref(request: web.Request) -> web.Response:
    """Move a ref; without `force` only a fast-forward is accepted."""
    access = _access(request, Role.WRITE)
    ctx = context(request)
    body = await read_body(request)
    sha = field_str(body, "sha", required=True) or ""
    force = field_bool(body, "force", default=False)
    ref, repo = _ref(request), access.repo
    with git_errors():
        before = await ctx.git.update_ref(repo.owner.login, repo.name, ref, sha, force=force)
    await emit_ref_updates(ctx, repo, [RefUpdate(ref, before, sha)], sender_of(ctx, access))
    return json_response(ref_json(ctx.urls, repo, ref, sha))


@ROUTES.delete(GIT + "/refs/{ref:.+}")
async def delete_ref(request: web.Request) -> web.Response:
    """Delete a ref."""
    access = _access(request, Role.WRITE)
    ctx = context(request)
    ref, repo = _ref(request), access.repo
    with git_errors():
        before = await ctx.git.delete_ref(repo.owner.login, repo.name, ref)
    await emit_ref_updates(ctx, repo, [RefUpdate(ref, before, ZERO_SHA)], sender_of(ctx, access))
    return no_content()


# commits, trees, blobs


@ROUTES.get(GIT + "/commits/{sha}")
async def get_commit(request: web.Request) -> web.Response:
    """Show a commit object."""
    access = _access(request, Role.READ)
    ctx = context(request)
    try:
        commit = await ctx.git.get_commit(
            access.repo.owner.login, access.repo.name, request.match_info["sha"]
        )
    except (ObjectNotFound, RepoNotFound):
        raise not_found() from None
    return json_response(git_commit_json(ctx.urls, access.repo, commit))


@ROUTES.post(GIT + "/commits")
async def create_commit(request: web.Request) -> web.Response:
    """Write a commit object."""
    access = _access(request, Role.WRITE)
    ctx = context(request)
    body = await read_body(request)
    message = field_str(body, "message", required=True) or ""
    tree = field_str(body, "tree", required=True) or ""
    parents = body.get("parents", [])
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise validation_failed("Commit", "parents", "invalid")
    author, committer = author_and_committer(body, sender_of(ctx, access))
    repo = access.repo
    with git_errors():
        sha = await ctx.git.create_commit(
            repo.owner.login,
            repo.name,
            message=message,
            tree=tree,
            parents=parents,
            author=author,
            committer=committer,
        )
        commit = await ctx.git.get_commit(repo.owner.login, repo.name, sha)
    rendered = git_commit_json(ctx.urls, repo, commit)
    return json_response(rendered, status=201, headers={"Location": rendered["url"]})


@ROUTES.get(GIT + "/trees/{sha}")
async def get_tree(request: web.Request) -> web.Response:
    """List a tree, recursively when `recursive` is given (any value, as on GitHub)."""
    access = _access(request, Role.READ)
    ctx = context(request)
    repo, sha = access.repo, request.match_info["sha"]
    recursive = "recursive" in request.query
    try:
        entries = await ctx.git.get_tree(repo.owner.login, repo.name, sha, recursive=recursive)
    except (ObjectNotFound, RepoNotFound):
        raise not_found() from None
    sha = await _tree_sha(ctx, repo, sha)
    return json_response(_tree_json(ctx.urls, repo, sha, entries))


def _tree_json(urls: Urls, repo: Repo, sha: str, entries: list[TreeEntry]) -> JSON:
    """Render a `git-tree`."""
    api = f"{urls.api}/repos/{repo.full_name}/git"
    tree: list[JSON] = []
    for entry in entries:
        item: JSON = {"path": entry.path, "mode": entry.mode, "type": entry.type, "sha": entry.sha}
        if entry.size is not None:
            item["size"] = entry.size
        if entry.type in {"blob", "tree"}:
            item["url"] = f"{api}/{entry.type}s/{entry.sha}"
        tree.append(item)
    return {"sha": sha, "url": f"{api}/trees/{sha}", "tree": tree, "truncated": False}


async def _tree_sha(ctx: Context, repo: Repo, sha: str) -> str:
    """Peel a commit or branch to its tree sha; a tree sha stays as it is."""
    try:
        commit_sha = await ctx.git.resolve(repo.owner.login, repo.name, sha)
        return (await ctx.git.get_commit(repo.owner.login, repo.name, commit_sha)).tree
    except GitError:
        return sha


@ROUTES.post(GIT + "/trees")
async def create_tree(request: web.Request) -> web.Response:
    """Write a tree, optionally on top of `base_tree`."""
    access = _access(request, Role.WRITE)
    ctx = context(request)
    body = await read_body(request)
    entries = body.get("tree")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise GitHubError(422, 'Invalid request.\n\n"tree" wasn\'t supplied.')
    repo = access.repo
    with git_errors():
        sha = await ctx.git.create_tree(
            repo.owner.login, repo.name, entries, field_str(body, "base_tree")
        )
        listing = await ctx.git.get_tree(repo.owner.login, repo.name, sha, recursive=False)
    rendered = _tree_json(ctx.urls, repo, sha, listing)
    return json_response(rendered, status=201, headers={"Location": rendered["url"]})


@ROUTES.get(GIT + "/blobs/{sha}")
async def get_blob(request: web.Request) -> web.Response:
    """Show a blob, base64-encoded."""
    access = _access(request, Role.READ)
    ctx = context(request)
    sha = request.match_info["sha"]
    try:
        content = await ctx.git.get_blob(access.repo.owner.login, access.repo.name, sha)
    except (ObjectNotFound, RepoNotFound):
        raise not_found() from None
    return json_response(
        {
            "sha": sha,
            "node_id": node_id("B", int(sha[:12], 16)),
            "size": len(content),
            "url": f"{ctx.urls.api}/repos/{access.repo.full_name}/git/blobs/{sha}",
            "content": encode_content(content),
            "encoding": "base64",
        }
    )


@ROUTES.post(GIT + "/blobs")
async def create_blob(request: web.Request) -> web.Response:
    """Store a blob (`encoding` utf-8 or base64)."""
    access = _access(request, Role.WRITE)
    ctx = context(request)
    body = await read_body(request)
    text = field_str(body, "content", required=True) or ""
    encoding = field_str(body, "encoding") or "utf-8"
    if encoding not in {"utf-8", "base64"}:
        raise validation_failed("Blob", "encoding", "invalid")
    content = decode_base64(text) if encoding == "base64" else text.encode()
    with git_errors():
        sha = await ctx.git.create_blob(access.repo.owner.login, access.repo.name, content)
    url = f"{ctx.urls.api}/repos/{access.repo.full_name}/git/blobs/{sha}"
    return json_response({"url": url, "sha": sha}, status=201, headers={"Location": url})


def encode_content(content: bytes) -> str:
    """Base64-encode file content the way GitHub does: 60-character lines, newline-ended."""
    encoded = base64.b64encode(content).decode()
    return "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))


def decode_base64(text: str) -> bytes:
    """Decode base64 content sent by a client (newlines allowed); 422 when it is not base64."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise GitHubError(422, "content is not valid Base64") from None
