"""The runner's input: GitHub Actions' environment contract plus the workflow's CODER_* values.

Everything `coder-agent` knows arrives here, is validated once, and becomes a `RunnerEnv`.
The run's ids come from the workflow's `env:` (`CODER_RUN_ID`, `CODER_ISSUE`, `CODER_PULL`,
`CODER_CHECK_RUN`, set from `inputs.*`); when a variable is absent the same input is read from
the `workflow_dispatch` payload at `GITHUB_EVENT_PATH`, so a runner that only provides GitHub's
own contract works too.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.ids import RUN_ID_LENGTH

if TYPE_CHECKING:
    from collections.abc import Mapping

# app.ids.run_id: the first 12 characters of a lower-case base32 digest.
RUN_ID_PATTERN = re.compile(rf"[a-z2-7]{{{RUN_ID_LENGTH}}}")
REPOSITORY_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*)/[A-Za-z0-9._-]+")
DEFAULT_SERVER_URL = "https://github.com"
DEFAULT_API_URL = "https://api.github.com"
DEFAULT_GRAPHQL_URL = "https://api.github.com/graphql"
# (environment variable, workflow_dispatch input) for each id the app dispatches.
# The fallback's secrets, coder's own names first, then Probot's (`APP_ID`, `PRIVATE_KEY`).
APP_ID_NAMES = ("CODER_APP_ID", "APP_ID")
PRIVATE_KEY_NAMES = ("CODER_PRIVATE_KEY", "PRIVATE_KEY")
ID_SOURCES = {
    "run_id": ("CODER_RUN_ID", "run_id"),
    "issue": ("CODER_ISSUE", "issue"),
    "pull": ("CODER_PULL", "pull"),
    "check_run": ("CODER_CHECK_RUN", "check_run"),
}


@dataclass(frozen=True)
class OidcSource:
    """Where to get the job's OIDC token, and the app that exchanges it."""

    request_url: str
    request_token: str
    app_url: str


@dataclass(frozen=True)
class AppKeySource:
    """The fallback: the app's own id and private key, as repository secrets."""

    app_id: int
    private_key: str
    # The variable the key came from, so a bad key is named as the user set it.
    private_key_name: str = "CODER_PRIVATE_KEY"


@dataclass(frozen=True)
class Reach:
    """What the runner needs to talk to GitHub at all: enough to report a failure."""

    repository: str
    api_url: str
    graphql_url: str
    oidc: OidcSource | None
    app_key: AppKeySource | None
    check_run: int | None


@dataclass(frozen=True)
class RunnerEnv:
    """Everything the runner reads from its environment, validated."""

    reach: Reach
    run_id: str
    issue: int
    pull: int
    check_run: int
    server_url: str
    actions_run_id: str | None
    runner_temp: Path
    output_path: Path | None
    step_summary_path: Path | None

    @property
    def repository(self) -> str:
        """Return `owner/name`."""
        return self.reach.repository

    @property
    def actions_run_url(self) -> str | None:
        """Return the URL of this Actions run, if the runner says which run it is."""
        if self.actions_run_id is None:
            return None
        return f"{self.server_url}/{self.repository}/actions/runs/{self.actions_run_id}"

    @property
    def clone_url(self) -> str:
        """Return the repository's git URL on this server."""
        return f"{self.server_url}/{self.repository}.git"


class EnvError(Exception):
    """The environment is missing something or holds an invalid value."""

    def __init__(self, problems: list[str], reach: Reach | None) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.reach = reach


def load_env(environ: Mapping[str, str]) -> RunnerEnv:
    """Validate the environment into a `RunnerEnv`, or raise `EnvError` naming every problem."""
    problems: list[str] = []
    values = {key: value for key, value in environ.items() if value.strip()}
    inputs = _dispatch_inputs(values.get("GITHUB_EVENT_PATH"), problems)

    repository = values.get("GITHUB_REPOSITORY", "")
    if not REPOSITORY_PATTERN.fullmatch(repository):
        problems.append(_bad("GITHUB_REPOSITORY", repository, "must be owner/name"))
    run_id = _id_text("run_id", values, inputs)
    if not RUN_ID_PATTERN.fullmatch(run_id):
        problems.append(_bad("CODER_RUN_ID", run_id, "must be a coder run id (12 of a-z, 2-7)"))
    numbers = {name: _positive(name, values, inputs, problems) for name in ID_SOURCES}
    oidc, app_key = _auth_sources(values, problems)

    reach = None
    if REPOSITORY_PATTERN.fullmatch(repository) and (oidc or app_key):
        reach = Reach(
            repository=repository,
            api_url=values.get("GITHUB_API_URL", DEFAULT_API_URL).rstrip("/"),
            graphql_url=values.get("GITHUB_GRAPHQL_URL", DEFAULT_GRAPHQL_URL),
            oidc=oidc,
            app_key=app_key,
            check_run=numbers["check_run"],
        )
    if problems or reach is None:
        raise EnvError(problems, reach)
    issue, pull, check_run = numbers["issue"], numbers["pull"], numbers["check_run"]
    assert issue is not None and pull is not None and check_run is not None  # noqa: PT018 - no problems means all three parsed
    return RunnerEnv(
        reach=reach,
        run_id=run_id,
        issue=issue,
        pull=pull,
        check_run=check_run,
        server_url=values.get("GITHUB_SERVER_URL", DEFAULT_SERVER_URL).rstrip("/"),
        actions_run_id=values.get("GITHUB_RUN_ID"),
        runner_temp=Path(values.get("RUNNER_TEMP", tempfile.gettempdir())),
        output_path=_path(values.get("GITHUB_OUTPUT")),
        step_summary_path=_path(values.get("GITHUB_STEP_SUMMARY")),
    )


def _bad(name: str, value: str, rule: str) -> str:
    shown = value if len(value) <= 40 else value[:37] + "..."
    return f"{name} {rule} (got {shown!r})" if value else f"{name} is not set"


def _dispatch_inputs(event_path: str | None, problems: list[str]) -> dict[str, Any]:
    if event_path is None:
        return {}
    try:
        payload = json.loads(Path(event_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        problems.append(f"GITHUB_EVENT_PATH cannot be read as JSON ({type(error).__name__})")
        return {}
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    return inputs if isinstance(inputs, dict) else {}


def _id_text(name: str, values: Mapping[str, str], inputs: Mapping[str, Any]) -> str:
    variable, input_name = ID_SOURCES[name]
    if variable in values:
        return values[variable].strip()
    value = inputs.get(input_name)
    return "" if value is None else str(value).strip()


def _positive(
    name: str, values: Mapping[str, str], inputs: Mapping[str, Any], problems: list[str]
) -> int | None:
    if name == "run_id":
        return None
    text = _id_text(name, values, inputs)
    if not text.isascii() or not text.isdigit() or int(text) <= 0 or len(text) > 18:
        problems.append(_bad(ID_SOURCES[name][0], text, "must be a positive integer"))
        return None
    return int(text)


def _auth_sources(
    values: Mapping[str, str], problems: list[str]
) -> tuple[OidcSource | None, AppKeySource | None]:
    oidc = None
    request_url = values.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    request_token = values.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    app_url = values.get("CODER_APP_URL")
    if request_url and request_token and app_url:
        oidc = OidcSource(request_url, request_token, app_url.rstrip("/"))
    app_key = None
    id_name, app_id = _first_set(values, APP_ID_NAMES)
    key_name, private_key = _first_set(values, PRIVATE_KEY_NAMES)
    if app_id and private_key and not app_id.strip().isdigit():
        problems.append(f"{id_name} must be the app's numeric id")
        return oidc, None
    if app_id and private_key:
        # Secrets pasted into one line often carry literal "\n" instead of newlines.
        key = private_key if "\n" in private_key else private_key.replace("\\n", "\n")
        app_key = AppKeySource(int(app_id.strip()), key, key_name)
    if oidc is None and app_key is None:
        problems.append(
            "no way to get a token: the job needs `permissions: id-token: write` and the "
            "CODER_APP_URL variable (or the CODER_APP_ID and CODER_PRIVATE_KEY secrets, "
            "or APP_ID and PRIVATE_KEY)"
        )
    return oidc, app_key


def _first_set(values: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str]:
    """Return the first of `names` that is set, and its value (the first name if none is)."""
    for name in names:
        if name in values:
            return name, values[name]
    return names[0], ""


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)
