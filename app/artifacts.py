"""Typed artifacts: what a run hands on, stored as JSON in its check run's `output.text`.

Pure. The check run is the canonical copy (DESIGN §4); the JSON sits in a fenced block that
`parse_artifact_block` finds again. Field names follow the seed design (camelCase).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime  # noqa: TC003 - pydantic resolves it at runtime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from collections.abc import Mapping

FENCE_INFO = "json coder-artifact"
ARTIFACT_BLOCK = re.compile(r"```json coder-artifact\n(.*?)\n```", re.DOTALL)


Conclusion = Literal["success", "neutral", "failure", "timed_out", "cancelled", "action_required"]


class IssueRef(BaseModel):
    """A pointer to an issue: the input of research, design and develop."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["issue"] = "issue"
    repo: str = Field(description="owner/name.")
    number: int = Field(description="The issue number.")


class PullRef(BaseModel):
    """A pointer to a pull request: what a review reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = Field(description="owner/name.")
    number: int = Field(description="The pull request number.")


class Artifact(BaseModel):
    """What every run's artifact carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runId: str = Field(description="The run that produced it.")  # noqa: N815 - the seed design's names
    repo: str = Field(description="owner/name.")
    createdAt: datetime = Field(description="When the run started.")  # noqa: N815
    completedAt: datetime = Field(description="When the run finished.")  # noqa: N815
    issue: IssueRef | None = Field(None, description="The issue the run worked on.")
    model: str = Field("", description="The model that ran.")
    costUsd: float = Field(0.0, description="What the agent reported spending.")  # noqa: N815
    durationSeconds: float = Field(0.0, description="Wall time of the run.")  # noqa: N815
    conclusion: Conclusion = Field(
        "success", description="The check run's conclusion; neutral: pushed, but no tests to run."
    )


class Decision(BaseModel):
    """One decision a research run made, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: str = Field(description="What was decided.")
    rationale: str = Field("", description="Why.")


class ResearchArtifact(Artifact):
    """The result of a research run: a spec under .coder/specs/ on its branch."""

    kind: Literal["research"] = "research"
    specPath: str = Field(description="The spec file, e.g. .coder/specs/42-login.md.")  # noqa: N815
    problemStatement: str = Field(description="The problem, in a paragraph.")  # noqa: N815
    proposedApproach: str = Field(description="The approach it proposes.")  # noqa: N815
    decisions: tuple[Decision, ...] = Field((), description="Decisions, with rationale.")
    branchName: str = Field(description="The run branch holding the spec.")  # noqa: N815
    commitSha: str | None = Field(None, description="The commit holding the spec.")  # noqa: N815


class Screen(BaseModel):
    """One screen of a design."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The screen's name.")
    path: str = Field(description="Its file under specDir.")


class DesignArtifact(Artifact):
    """The result of a design run: specs and screens under .coder/specs/ on its branch."""

    kind: Literal["design"] = "design"
    specDir: str = Field(description="The directory holding the design.")  # noqa: N815
    screens: tuple[Screen, ...] = Field((), description="The screens designed.")
    branchName: str = Field(description="The run branch holding the design.")  # noqa: N815
    commitSha: str | None = Field(None, description="The commit holding it.")  # noqa: N815


class SplitProposal(BaseModel):
    """One sub-issue the architect proposes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(description="The sub-issue's title.")
    body: str = Field("", description="What it covers.")


class PlanArtifact(BaseModel):
    """What the architect step hands to the steps after it (not a run's artifact)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["plan"] = "plan"
    summary: str = Field("", description="The plan in a few sentences.")
    files: tuple[str, ...] = Field((), description="Files it expects to touch (for claims).")
    steps: tuple[str, ...] = Field((), description="The steps, in order.")
    split: tuple[SplitProposal, ...] = Field((), description="Sub-issues, if it should split.")


class DevelopArtifact(Artifact):
    """The result of a develop run."""

    kind: Literal["develop"] = "develop"
    prUrl: str = Field(description="The pull request.")  # noqa: N815
    branchName: str = Field(description="The run branch.")  # noqa: N815
    commitSha: str | None = Field(description="The last commit pushed; None if none was.")  # noqa: N815
    testsPass: bool | None = Field(description="None when the repo configures no tests.")  # noqa: N815
    reviewSummary: str | None = Field(None, description="Filled in by the review workflow.")  # noqa: N815
    filesChanged: tuple[str, ...] = Field((), description="Paths the run changed.")  # noqa: N815
    plan: PlanArtifact | None = Field(None, description="The architect's plan, if one ran.")


class ReviewComment(BaseModel):
    """One comment of a review, on a line of the diff."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="The file.")
    line: int = Field(ge=1, description="The line in the pull request's head.")
    body: str = Field(description="The comment.")


class ReviewArtifact(Artifact):
    """The result of a review run."""

    kind: Literal["review"] = "review"
    pull: PullRef = Field(description="The pull request reviewed.")
    verdict: Literal["approve", "request_changes", "comment"] = Field(description="The verdict.")
    summary: str = Field(description="The review, in a few paragraphs.")
    comments: tuple[ReviewComment, ...] = Field((), description="Line comments.")


class ReleaseArtifact(Artifact):
    """The result of a release run: a changelog and a version on its branch; tag on merge."""

    kind: Literal["release"] = "release"
    version: str = Field(description="The version released, e.g. 1.4.0.")
    tag: str = Field(description="The tag to create when the release pull request merges.")
    changelog: str = Field(description="The changelog entry for this version.")
    prUrl: str = Field(description="The release pull request.")  # noqa: N815
    branchName: str = Field(description="The run branch.")  # noqa: N815
    commitSha: str | None = Field(None, description="The commit with the changelog.")  # noqa: N815


RunArtifact = ResearchArtifact | DesignArtifact | DevelopArtifact | ReviewArtifact | ReleaseArtifact
ARTIFACT_MODELS: dict[str, type[BaseModel]] = {
    "issue": IssueRef,
    "research": ResearchArtifact,
    "design": DesignArtifact,
    "develop": DevelopArtifact,
    "review": ReviewArtifact,
    "release": ReleaseArtifact,
}


@dataclass(frozen=True)
class InputCheck:
    """Whether an artifact may start the next workflow, and if not, which fields are wrong."""

    artifact: BaseModel | None
    problems: tuple[str, ...] = ()


def check_input(accepts: tuple[str, ...], raw: Mapping[str, object] | None) -> InputCheck:
    """Validate an artifact against what the next workflow accepts; name each wrong field."""
    if raw is None:
        return InputCheck(None, ("the run left no artifact in its check run",))
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in ARTIFACT_MODELS:
        return InputCheck(None, (f"kind: unknown artifact kind {kind!r}",))
    if kind not in accepts:
        return InputCheck(None, (f"kind: {kind} is not one of {', '.join(accepts)}",))
    try:
        return InputCheck(ARTIFACT_MODELS[kind].model_validate(raw))
    except ValidationError as error:
        return InputCheck(
            None,
            tuple(
                f"{'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}"
                for problem in error.errors()
            ),
        )


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


def load_artifact(text: str | None) -> BaseModel | None:
    """Return the valid artifact (of any kind) in a check run's text, or None."""
    raw = parse_artifact_block(text)
    model = ARTIFACT_MODELS.get(str((raw or {}).get("kind")))
    if raw is None or model is None:
        return None
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


def load_develop_artifact(text: str | None) -> DevelopArtifact | None:
    """Return the develop artifact in a check run's text, if there is a valid one."""
    artifact = load_artifact(text)
    return artifact if isinstance(artifact, DevelopArtifact) else None
