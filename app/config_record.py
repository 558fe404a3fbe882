"""The config a run was started under, as the app hands it to the runner in the check run. Pure.

A runner's token is narrowed to its one repository (DESIGN §7). On github.com such a token
cannot read another repository's contents, so a runner cannot read `<org>/.github`, where the
org's defaults and most `_extends` bases live; narrowing the token to that repository as well
would hand the job the same write permissions there. The app, which read and merged every file
(`app.repo_config.resolve_config`), therefore puts the merged config in the run's queued check
run: only the app can write its check runs, and the runner already reads that check run by id.
The runner uses it whenever its own file depends on another repository (`base_needed`).
"""

from __future__ import annotations

import json
import re

from pydantic import ValidationError

from app.config import CoderConfig, ConfigError, ConfigResult

CONFIG_RECORD_FENCE = "json coder-config"
CONFIG_RECORD_BLOCK = re.compile(r"```json coder-config\n(.*?)\n```", re.DOTALL)
# How errors in a record name where it came from.
RECORD_PATH = "the run's check run"
MAX_PROBLEMS = 5


def render_config_record(config: CoderConfig) -> str:
    """Render a merged config as the fenced block a run's queued check run carries."""
    values = config.model_dump(mode="json", by_alias=True)
    return f"```{CONFIG_RECORD_FENCE}\n{json.dumps(values, separators=(',', ':'))}\n```"


def config_from_record(text: str | None) -> ConfigResult | None:
    """Read the config block back from a check run's text; None if it carries none."""
    match = CONFIG_RECORD_BLOCK.search(text or "")
    if match is None:
        return None
    try:
        values = json.loads(match.group(1))
        return ConfigResult(CoderConfig.model_validate(values))
    except json.JSONDecodeError as error:
        return _invalid(f"not JSON ({error.msg})")
    except ValidationError as error:
        return _invalid("; ".join(str(problem["msg"]) for problem in error.errors()[:MAX_PROBLEMS]))


def _invalid(why: str) -> ConfigResult:
    return ConfigResult(None, (ConfigError(RECORD_PATH, 1, 1, f"the recorded config is {why}"),))
