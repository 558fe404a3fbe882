"""How the demo counts a develop run's API calls (DESIGN §8), from devhub's request log (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CONFIG_CONTENTS = "/contents/.github/coder.yml"
GRAPHQL_PATH = "/api/graphql"


@dataclass
class ApiCalls:
    """A run's rate-limited requests, sorted by who made them and whether they count."""

    app: list[dict[str, Any]]
    runner: list[dict[str, Any]]  # the runner's calls, progress edits left out
    progress: list[dict[str, Any]]
    jwt: list[dict[str, Any]]
    graphql: list[dict[str, Any]]
    by_runner: list[dict[str, Any]]  # all of the runner's REST calls, in order


def api_calls(requests: list[dict[str, Any]]) -> ApiCalls:
    """Sort devhub's request log of one run into what DESIGN §8 counts.

    Counted: every REST request GitHub would count against a rate limit (devhub marks them;
    a 304 is free). With the app's installation token (every repository: `app`), with the
    runner's token (narrowed to one repository: `runner`), and with the app's JWT (`app JWT`:
    minting the runner's token, on the runner's behalf). GitHub's installation limit covers
    requests made with an installation token; JWT requests are not made with one, so they do
    not draw on it, but they are calls all the same and are counted here. GraphQL has its own
    budget and is listed apart. Progress edits, counted apart as DESIGN §8 says, are the
    runner's check-run edits between its first (the start: `in_progress`) and its last (the
    end), and its pull-request body edits: the final body goes in the run's end request
    (GraphQL), unless that failed and REST wrote it after (`_progress_edits`).
    """
    counted = [r for r in requests if r["rate_limited"]]
    rest = [r for r in counted if r["path"].startswith("/api/v3/")]
    by_runner = [r for r in rest if r["token_repository_ids"]]
    app = [
        r for r in rest if str(r["token_owner"]).endswith("[bot]") and not r["token_repository_ids"]
    ]
    jwt = [r for r in rest if str(r["token_owner"]).startswith("app/")]
    # In order and with the ones that did not count: a failed end request still marks the end.
    progress = _progress_edits([r for r in requests if r["token_repository_ids"]])
    edits = {id(r) for r in progress}
    return ApiCalls(
        app=app,
        runner=[r for r in by_runner if id(r) not in edits],
        progress=progress,
        jwt=jwt,
        graphql=[r for r in counted if r["path"] == GRAPHQL_PATH],
        by_runner=by_runner,
    )


def _progress_edits(runner: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the runner's progress edits among all its requests (REST and GraphQL, in order).

    Neither its first nor its last check-run edit is one. Its pull-request body edits are,
    except the REST fallback's final status line: a body edit after the run's end request (the
    GraphQL request that follows its last check-run edit). A runner that made no end request
    wrote the final body as its last body edit.
    """
    check_edits = [i for i, r in enumerate(runner) if _edits(r, "/check-runs/")]
    body_edits = [i for i, r in enumerate(runner) if _edits(r, "/pulls/")]
    last_check = check_edits[-1] if check_edits else -1
    ends = [i for i, r in enumerate(runner) if r["path"] == GRAPHQL_PATH and i > last_check]
    if ends:
        progress_bodies = [i for i in body_edits if i < ends[0]]
    else:
        progress_bodies = body_edits[:-1]
    return [runner[i] for i in sorted(check_edits[1:-1] + progress_bodies)]


def _edits(request: dict[str, Any], what: str) -> bool:
    counted = bool(request["rate_limited"])
    return counted and request["method"] == "PATCH" and what in str(request["path"])


def config_read(request: dict[str, Any]) -> bool:
    """Tell whether a request reads `.github/coder.yml` through the contents API."""
    return request["method"] == "GET" and str(request["path"]).endswith(CONFIG_CONTENTS)
