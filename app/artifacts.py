"""Typed artifacts: what a run hands on, stored as JSON in its check run's `output.text`.

Pure. The check run is the canonical copy (DESIGN §4); the JSON sits in a fenced block that
`parse_artifact_block` finds again. Field names follow the seed design (camelCase).
"""

from __future__ import annotations

import json
import re
from datetime import datetime  # noqa: TC003 - pydantic resolves it at runtime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FENCE_INFO = "json coder-artifact"
ARTIFACT_BLOCK = re.compile(r"```json coder-artifact\n(.*?)\n```", re.DOTALL)


class Artifact(BaseModel):
    """What every artifact carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runId: str = Field(description="The run that produced it.")  # noqa: N815 - the seed design's names
    repo: str = Field(description="owner/name.")
    createdAt: datetime = Field(description="When the run started.")  # noqa: N815
    completedAt: datetime = Field(description="When the run finished.")  # noqa: N815


class IssueRef(BaseModel):
    """A pointer to an issue: the input of research and develop."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str
    number: int


class DevelopArtifact(Artifact):
    """The result of a develop run."""

    kind: Literal["develop"] = "develop"
    issue: IssueRef
    prUrl: str = Field(description="The pull request.")  # noqa: N815
    branchName: str = Field(description="The run branch.")  # noqa: N815
    commitSha: str | None = Field(description="The last commit pushed; None if none was.")  # noqa: N815
    testsPass: bool | None = Field(description="None when the repo configures no tests.")  # noqa: N815
    reviewSummary: str | None = Field(None, description="Filled in by the review workflow.")  # noqa: N815
    filesChanged: tuple[str, ...] = Field((), description="Paths the run changed.")  # noqa: N815
    model: str = Field(description="The model that ran.")
    costUsd: float = Field(0.0, description="What the agent reported spending.")  # noqa: N815
    durationSeconds: float = Field(0.0, description="Wall time of the run.")  # noqa: N815
    conclusion: Literal[
        "success", "neutral", "failure", "timed_out", "cancelled", "action_required"
    ] = Field(description="The check run's conclusion; neutral: pushed, but no tests to run.")


def render_artifact_block(artifact: BaseModel) -> str:
    """Render an artifact as the fenced JSON block that goes into a check run's text."""
    return f"```{FENCE_INFO}\n{artifact.model_dump_json(indent=2)}\n```"


def parse_artifact_block(text: str | None) -> dict[str, object] | None:
    """Return the artifact JSON found in a check run's text, or None."""
    match = ARTIFACT_BLOCK.search(text or "")
    if match is None:
        return None
    try:
        value = json.loads(match.group(1))
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def load_develop_artifact(text: str | None) -> DevelopArtifact | None:
    """Return the develop artifact in a check run's text, if there is a valid one."""
    raw = parse_artifact_block(text)
    if raw is None:
        return None
    try:
        return DevelopArtifact.model_validate(raw)
    except ValidationError:
        return None
