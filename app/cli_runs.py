"""`coder run` and `coder artifacts get`: ask for a run, and read a run's artifact, as a person.

Both act with the person's own token (`GITHUB_TOKEN` or `GH_TOKEN`), the way the gh CLI does,
so a run asked for here passes the same permission check as a label added by hand.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from gidgethub.abc import GitHubAPI

TOKEN_VARIABLES = ("GITHUB_TOKEN", "GH_TOKEN")
HOST_VARIABLE = "GH_HOST"
GITHUB_HOST = "github.com"
GITHUB_API = "https://api.github.com"
REPO_URL = "/repos/{owner}/{repo}"
ISSUE_URL = "/repos/{owner}/{repo}/issues/{number}"
ISSUE_LABELS_URL = "/repos/{owner}/{repo}/issues/{number}/labels"
ISSUE_LABEL_URL = "/repos/{owner}/{repo}/issues/{number}/labels/{name}"
COMMENTS_URL = "/repos/{owner}/{repo}/issues/{number}/comments"
RUN_REFS_URL = "/repos/{owner}/{repo}/git/matching-refs/heads/coder/"
OPEN_PULLS_URL = "/repos/{owner}/{repo}/pulls{?state,per_page}"
CHECK_RUNS_URL = "/repos/{owner}/{repo}/commits/{sha}/check-runs{?filter,per_page}"
CLOSED_PULLS_URL = "/repos/{owner}/{repo}/pulls{?state,sort,direction,per_page}"
CLOSED_PULLS_QUERY = {"state": "closed", "sort": "updated", "direction": "desc", "per_page": "100"}
PULL_COMMITS_URL = "/repos/{owner}/{repo}/pulls/{number}/commits{?per_page}"
SEARCH_ISSUES_URL = "/search/issues{?q,per_page}"
RUN_BRANCH_PREFIX = "coder/"
API_URL_HELP = "The REST API's base URL (default: from GH_HOST, else https://api.github.com)."


def api_url_for(host: str | None) -> str:
    """Return the REST API's URL for a GitHub host (github.com, or a GHES host)."""
    if not host or host == GITHUB_HOST:
        return GITHUB_API
    return f"https://{host}/api/v3"


def _token() -> str:
    for name in TOKEN_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    raise click.UsageError("set GITHUB_TOKEN (or GH_TOKEN) to a token that may use the repository")


def _split(repo: str) -> dict[str, str]:
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name:
        raise click.BadParameter(f"expected owner/name, not {repo!r}", param_hint="repo")
    return {"owner": owner, "repo": name}


async def _with_client(api_url: str, token: str, work: Any) -> Any:
    import aiohttp  # noqa: PLC0415 - keep `coder --help` fast

    from app.github import GitHub  # noqa: PLC0415

    async def authorization() -> str:
        return f"token {token}"

    async with aiohttp.ClientSession() as session:
        gh = GitHub(session, authorization=authorization, base_url=api_url, graphql_url="")
        return await work(gh)


@click.command("run")
@click.argument("workflow")
@click.option("--repo", required=True, help="The repository, owner/name.")
@click.option("--issue", type=click.IntRange(min=1), required=True, help="The issue to work on.")
@click.option("--then", "then", default=None, help="The workflow to start when this one succeeds.")
@click.option(
    "--input",
    "input_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A JSON file with the run's input artifact.",
)
@click.option("--api-url", default=None, help=API_URL_HELP)
def run(  # noqa: PLR0917 - click passes one argument per option
    workflow: str,
    repo: str,
    issue: int,
    then: str | None,
    input_file: Path | None,
    api_url: str | None,
) -> None:
    """Ask for a workflow run on an issue, as a person would: its label, or a /coder comment."""
    where = _split(repo)
    input_json = _read_input(input_file) if input_file is not None else None
    url = api_url or api_url_for(os.environ.get(HOST_VARIABLE))

    async def work(gh: GitHubAPI) -> str:
        return await ask_for_run(gh, where, issue, workflow, then=then, input_json=input_json)

    click.echo(asyncio.run(_with_client(url, _token(), work)))


def _read_input(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"{path} is not JSON: {error}", param_hint="--input") from None
    if not isinstance(value, dict):
        raise click.BadParameter(f"{path} must hold a JSON object", param_hint="--input")
    return json.dumps(value, indent=2)


async def ask_for_run(
    gh: GitHubAPI,
    where: dict[str, str],
    issue: int,
    workflow: str,
    *,
    then: str | None,
    input_json: str | None,
) -> str:
    """Add the workflow's label, or post its `/coder` command; return what was done."""
    from app.command_parser import render_command  # noqa: PLC0415 - keep `coder --help` fast
    from app.repo_config import fetch_config  # noqa: PLC0415

    repository = await gh.getitem(REPO_URL, where)
    full_name = f"{where['owner']}/{where['repo']}"
    result = await fetch_config(gh, full_name, str(repository["default_branch"]))
    if result.config is None:
        problems = "; ".join(str(error) for error in result.errors)
        raise click.ClickException(f"the repository's config is invalid: {problems}")
    found = result.config.workflows.get(workflow)
    if found is None:
        names = ", ".join(sorted(result.config.workflows))
        raise click.ClickException(f"no workflow {workflow!r} in {full_name} (there is {names})")
    on_issue = {**where, "number": str(issue)}
    label = found.on.label
    if then is None and input_json is None and label is not None:
        current = await gh.getitem(ISSUE_URL, on_issue)
        if any(item["name"] == label for item in current.get("labels", [])):
            # GitHub sends no `labeled` event for a label an issue already has: take it off first.
            await gh.delete(ISSUE_LABEL_URL, {**on_issue, "name": label})
        await gh.post(ISSUE_LABELS_URL, on_issue, data={"labels": [label]})
        return f"added `{label}` to {full_name}#{issue}"
    verb = found.on.command
    if verb is None:
        raise click.ClickException(
            f"{workflow} has no command (on.command), so --then and --input cannot reach it"
        )
    body = render_command(verb, then=then, input_json=input_json)
    comment = await gh.post(COMMENTS_URL, on_issue, data={"body": body})
    return f"asked with `/coder {verb}` on {full_name}#{issue}: {comment.get('html_url', '')}"


@click.group("artifacts")
def artifacts() -> None:
    """Read the typed artifacts runs leave in their check runs."""


@artifacts.command("get")
@click.argument("repo")
@click.argument("run_id")
@click.option("--api-url", default=None, help=API_URL_HELP)
def get_artifact(repo: str, run_id: str, api_url: str | None) -> None:
    """Print the artifact JSON of run RUN_ID in REPO (owner/name)."""
    where = _split(repo)
    url = api_url or api_url_for(os.environ.get(HOST_VARIABLE))

    async def work(gh: GitHubAPI) -> dict[str, object] | None:
        return await find_artifact(gh, where, run_id)

    artifact = asyncio.run(_with_client(url, _token(), work))
    if artifact is None:
        raise click.ClickException(f"no artifact for run {run_id} in {repo}")
    click.echo(json.dumps(artifact, indent=2))


async def find_artifact(
    gh: GitHubAPI, where: dict[str, str], run_id: str
) -> dict[str, object] | None:
    """Find a run's artifact in its `coder/*` check run, whether its branch is live or gone."""
    heads = [str(ref["object"]["sha"]) for ref in await gh.getitem(RUN_REFS_URL, where)]
    pulls = gh.getiter(OPEN_PULLS_URL, {**where, "state": "open", "per_page": 100})
    heads += [str(pull["head"]["sha"]) async for pull in pulls]
    artifact = await _artifact_on(gh, where, run_id, heads)
    if artifact is not None:
        return artifact
    # A merged or closed pull request's branch may be gone, but GitHub keeps the pull request's
    # commits (`refs/pull/N/head`) and the check runs on them. The run's check run sits on the
    # last commit it pushed, or on its claim commit: both carry its `Coder-Run` trailer.
    for number, head in await _gone_pulls(gh, where, run_id):
        commits = gh.getiter(PULL_COMMITS_URL, {**where, "number": str(number), "per_page": 100})
        shas = [str(commit["sha"]) async for commit in commits if _made_by(commit, run_id)]
        # A review runs on the pull request's head, with no commit of its own.
        artifact = await _artifact_on(gh, where, run_id, [*reversed(shas), *head])
        if artifact is not None:
            return artifact
    return None


async def _gone_pulls(
    gh: GitHubAPI, where: dict[str, str], run_id: str
) -> list[tuple[int, tuple[str, ...]]]:
    """Return closed pull requests that may hold the run: the ones naming it, then run branches.

    The run's pull request names the run in its body (until a later run on it rewrites it), so
    an issue search finds it in one request; failing that, the most recently updated closed
    pull requests from `coder/` branches are looked through, newest first.
    """
    query = f"repo:{where['owner']}/{where['repo']} is:pr {run_id}"
    found = await gh.getitem(SEARCH_ISSUES_URL, {"q": query, "per_page": "10"})
    named = [int(item["number"]) for item in found.get("items", [])]
    closed = await gh.getitem(CLOSED_PULLS_URL, {**where, **CLOSED_PULLS_QUERY})
    heads = {int(pull["number"]): str(pull["head"]["sha"]) for pull in closed}
    branches = [
        int(pull["number"])
        for pull in closed
        if str(pull["head"]["ref"]).startswith(RUN_BRANCH_PREFIX)
    ]
    # Only a pull request that names the run is worth its head's check runs without a trailer.
    candidates = {number: (heads[number],) if number in heads else () for number in named}
    for number in branches:
        candidates.setdefault(number, ())
    return list(candidates.items())


def _made_by(commit: dict[str, Any], run_id: str) -> bool:
    from app.briefing import TRAILER_RUN, parse_trailers  # noqa: PLC0415 - keep --help fast

    message = str((commit.get("commit") or {}).get("message") or "")
    return parse_trailers(message).get(TRAILER_RUN) == run_id


async def _artifact_on(
    gh: GitHubAPI, where: dict[str, str], run_id: str, shas: list[str]
) -> dict[str, object] | None:
    """Return the artifact of the run's newest check run on these commits, if one has it."""
    from app.artifacts import parse_artifact_block  # noqa: PLC0415 - keep `coder --help` fast
    from app.checks import CHECK_PREFIX  # noqa: PLC0415

    found = []
    for sha in dict.fromkeys(shas):
        answer = await gh.getitem(CHECK_RUNS_URL, {**where, "sha": sha, "filter": "all"})
        found += [
            check_run
            for check_run in answer.get("check_runs", [])
            if str(check_run.get("name", "")).startswith(CHECK_PREFIX)
            and check_run.get("external_id") == run_id
        ]
    # A run's check run moves with the branch's head; the newest completed one has the artifact.
    found.sort(key=lambda c: (c.get("status") == "completed", int(c["id"])), reverse=True)
    for check_run in found:
        artifact = parse_artifact_block((check_run.get("output") or {}).get("text"))
        if artifact is not None:
            return artifact
    return None
