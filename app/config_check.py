"""`push`: a change to `.github/coder.yml` gets a `coder/config` check run on the pushed commit.

On any branch: on a pull request's branch it tells the author early whether the file will work,
though only the default branch's config is ever used. The check says `success` with the
workflows the file defines, or `failure` with every error annotated at its line, in the same
`path:line:column: message` words as `coder config validate`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gidgethub.routing import Router
from pydantic import Field

from app import develop
from app.checks import MAX_ANNOTATIONS, MAX_OUTPUT_CHARS, TRUNCATED, check_name
from app.config import CONFIG_PATH, ConfigError, ConfigResult, describe
from app.events import Model, Repository
from app.github import create_once
from app.repo_config import FetchedConfig, Source, fetch_config_at

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from gidgethub.abc import GitHubAPI
    from gidgethub.sansio import Event

log = logging.getLogger(__name__)

router = Router()

WORKFLOW = "config"
BRANCH_PREFIX = "refs/heads/"
# A push payload's `commits` may stop at 20 (GitHub documents that cap for the payloads it
# stores, e.g. https://docs.github.com/en/rest/using-the-rest-api/github-event-types#pushevent);
# past it the config may have changed unseen, so it is checked anyway.
PUSH_COMMITS_SHOWN = 20
NO_CONFIG = "no config; built-in defaults apply"
ORG_CONFIG = "no config; the defaults in {repo} apply"
ANNOTATION_TITLE = "coder config"
# An annotation's `path` must be a file of the repository the check run is in; an error in an
# `_extends` base (`acme/.github:.github/coder.yml`) is in another repository, so only the
# summary can name it. https://docs.github.com/en/rest/checks/runs#update-a-check-run
ELSEWHERE = (
    "Errors in {files} are listed here only: that file is in another repository, and "
    "annotations can only point at this one's files."
)

COMMIT_CHECK_RUNS_URL = (
    "/repos/{owner}/{repo}/commits/{sha}/check-runs{?check_name,app_id,filter,per_page}"
)
CHECK_RUNS_URL = "/repos/{owner}/{repo}/check-runs"
CHECK_RUN_URL = "/repos/{owner}/{repo}/check-runs/{check_run_id}"


class _PushCommit(Model):
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    modified: list[str] = Field(default_factory=list)


class Push(Model):
    """`push`: commits pushed to a ref (a branch, unless `ref` is a tag)."""

    ref: str
    after: str
    deleted: bool = False
    commits: list[_PushCommit] = Field(default_factory=list)
    repository: Repository

    @property
    def branch(self) -> str | None:
        """Return the branch pushed to, or None for a tag or another kind of ref."""
        return self.ref.removeprefix(BRANCH_PREFIX) if self.ref.startswith(BRANCH_PREFIX) else None


@dataclass(frozen=True)
class Verdict:
    """What the `coder/config` check run says about one commit's config."""

    conclusion: str
    title: str
    summary: str
    errors: tuple[ConfigError, ...] = ()


def changes_config(push: Push) -> bool:
    """Tell whether a push to a branch may have added, changed or removed the config file."""
    if push.deleted or push.branch is None:
        return False
    if len(push.commits) >= PUSH_COMMITS_SHOWN:
        return True
    return any(
        CONFIG_PATH in (*commit.added, *commit.modified, *commit.removed) for commit in push.commits
    )


def verdict(fetched: FetchedConfig, *, sha: str, branch: str, default_branch: str) -> Verdict:
    """Decide what the check run says about the config found at `sha` (pure)."""
    where = f"`{CONFIG_PATH}` at `{sha[:7]}`"
    if branch == default_branch:
        scope = f"This is the config coder uses in this repository (`{default_branch}`)."
    else:
        scope = (
            f"coder reads its config from `{default_branch}` only; this shows whether this "
            f"version will work once it is merged there."
        )
    result = fetched.result
    if result.config is None:
        count = len(result.errors)
        noun = "error" if count == 1 else "errors"
        lines = [
            f"{where} cannot be used: {count} {noun}.",
            "",
            "```text",
            *(str(error) for error in result.errors),
            "```",
            "",
        ]
        elsewhere = sorted({error.path for error in result.errors if not error.in_repository})
        if elsewhere:
            named = ", ".join(f"`{path}`" for path in elsewhere)
            lines += [f"{ELSEWHERE.format(files=named)}", ""]
        lines.append(scope)
        if branch == default_branch:
            lines.append("No run starts here until the file is fixed.")
        return Verdict("failure", f"invalid: {count} {noun}", "\n".join(lines), result.errors)
    if fetched.source is Source.DEFAULTS:
        summary = f"There is no {where}, and no org defaults: the built-in defaults apply."
        return Verdict("success", NO_CONFIG, f"{summary}\n\n{scope}")
    if fetched.source is Source.ORG and fetched.base is not None:
        title = ORG_CONFIG.format(repo=fetched.base.full_name)
        summary = f"There is no {where}: {title.removeprefix('no config; ')}."
        detail = f"They are {describe(result.config)}."
        return Verdict("success", title, f"{summary} {detail}\n\n{scope}")
    summary = f"{where} is {describe(result.config)}."
    if fetched.base is not None:
        summary += f" It extends `{fetched.base.path}`."
    return Verdict("success", describe(result.config), f"{summary}\n\n{scope}")


def annotation(error: ConfigError) -> dict[str, Any]:
    """Return a check-run annotation for one config error, at its line and column."""
    return {
        "path": error.path,
        "start_line": error.line,
        "end_line": error.line,
        # Columns are only allowed when an annotation starts and ends on one line, as here.
        "start_column": error.column,
        "end_column": error.column,
        "annotation_level": "failure",
        "title": ANNOTATION_TITLE,
        "message": error.message,
    }


def check_run_updates(result: Verdict, *, annotated: int = 0) -> list[dict[str, Any]]:
    """Return the request bodies that report `result`, 50 annotations each, last one completing.

    `annotated` annotations are already on the check run (a redelivery resuming); GitHub
    appends each request's annotations to those already there.
    https://docs.github.com/en/rest/checks/runs#update-a-check-run
    """
    remaining = [annotation(error) for error in result.errors if error.in_repository][annotated:]
    pages = [
        remaining[start : start + MAX_ANNOTATIONS]
        for start in range(0, len(remaining), MAX_ANNOTATIONS)
    ] or [[]]
    output = {"title": result.title, "summary": _clip(result.summary)}
    bodies: list[dict[str, Any]] = []
    for page in pages:
        body: dict[str, Any] = {"status": "in_progress", "output": dict(output)}
        if page:
            body["output"]["annotations"] = page
        bodies.append(body)
    bodies[-1] = {**bodies[-1], "status": "completed", "conclusion": result.conclusion}
    return bodies


@router.register("push")
async def check_config_change(event: Event, gh: GitHubAPI) -> None:
    """Report on `.github/coder.yml` with a `coder/config` check run when a push changes it."""
    push = Push.from_payload(event.data)
    if not changes_config(push) or push.branch is None:
        return
    repo = push.repository
    existing = await find_config_check_run(gh, repo.full_name, push.after)
    if existing is not None and existing.get("status") == "completed":
        return
    fetched = await fetch_config_at(gh, repo.full_name, push.after)
    result = verdict(
        fetched, sha=push.after, branch=push.branch, default_branch=repo.default_branch
    )
    annotated = int((existing or {}).get("output", {}).get("annotations_count") or 0)
    updates = check_run_updates(result, annotated=annotated)
    await report(gh, repo.full_name, push.after, updates, existing)
    log.info("coder/config on %s@%s: %s", repo.full_name, push.after[:7], result.title)


async def find_config_check_run(gh: GitHubAPI, repo: str, sha: str) -> Mapping[str, Any] | None:
    """Return the app's own `coder/config` check run on a commit, if there is one."""
    owner, name = repo.split("/", 1)
    answer = await gh.getitem(
        COMMIT_CHECK_RUNS_URL,
        {
            "owner": owner,
            "repo": name,
            "sha": sha,
            "check_name": check_name(WORKFLOW),
            # Anyone's app can name a check run `coder/config`; only ours counts.
            "app_id": str(develop.APP_ACCESS.get().settings.app_id),
            "per_page": 1,
        },
    )
    runs = list(answer.get("check_runs", []))
    return runs[0] if runs else None


async def config_check_run(
    gh: GitHubAPI, repo: str, sha: str, result: ConfigResult, *, branch: str
) -> Mapping[str, Any] | None:
    """Return the `coder/config` check run that reports an invalid config on `sha`.

    A trigger under an invalid config points there, so a commit has one red check however many
    triggers arrive. If the commit has none (the app was installed after the push, or the file
    did not change there), it is created. None if the commit's own says the config was fine:
    then it was a base in another repository that broke since, and that check run is not wrong
    about its commit.
    """
    existing = await find_config_check_run(gh, repo, sha)
    if existing is not None:
        fine = existing.get("status") == "completed" and existing.get("conclusion") != "failure"
        return None if fine else existing
    fetched = FetchedConfig(result, Source.FILE)
    updates = check_run_updates(verdict(fetched, sha=sha, branch=branch, default_branch=branch))
    return await report(gh, repo, sha, updates, None)


async def report(
    gh: GitHubAPI,
    repo: str,
    sha: str,
    updates: Sequence[Mapping[str, Any]],
    existing: Mapping[str, Any] | None,
) -> Mapping[str, Any]:
    """Create the check run with the first update (unless it exists), then send the rest."""
    owner, name = repo.split("/", 1)
    where = {"owner": owner, "repo": name}
    pending = list(updates)
    if existing is None:
        first = {"name": check_name(WORKFLOW), "head_sha": sha, **pending.pop(0)}

        async def create() -> Mapping[str, Any]:
            created: Mapping[str, Any] = await gh.post(CHECK_RUNS_URL, where, data=first)
            return created

        existing = await create_once(
            gh, create=create, find=lambda: find_config_check_run(gh, repo, sha)
        )
    check_run_where = {**where, "check_run_id": str(existing["id"])}
    for update in pending:
        await gh.patch(CHECK_RUN_URL, check_run_where, data=dict(update))
    return existing


def _clip(text: str) -> str:
    if len(text) <= MAX_OUTPUT_CHARS:
        return text
    return text[: MAX_OUTPUT_CHARS - len(TRUNCATED)] + TRUNCATED
