"""Step artifacts: the JSON object a session may leave at `$CODER_ARTIFACT_FILE`, checked.

The architect writes a plan (`PlanArtifact`); the researcher, designer, reviewer and release roles
write the fields of their kind of artifact; any other role writes fields of the run's kind. A
file that is not one JSON object, or holds a field of the wrong name or type, fails the run with
the field named. Later steps read every earlier step artifact in their briefing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actions.agent.kinds import PLAN_KIND, step_kind, validate_fields
from app.artifacts import PlanArtifact

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

ARTIFACT_VARIABLE = "CODER_ARTIFACT_FILE"
# A check run's text holds at most 65535 characters, and the run's artifact is built from these.
MAX_ARTIFACT_BYTES = 24 * 1024


@dataclass(frozen=True)
class StepArtifact:
    """One step's artifact: who wrote it, its kind, and its checked fields (JSON values)."""

    role: str
    kind: str
    fields: dict[str, Any]

    def to_json(self) -> str:
        """Return the artifact as indented JSON, kind first."""
        return json.dumps({"kind": self.kind, **self.fields}, indent=2, ensure_ascii=False)


class StepArtifactError(Exception):
    """A step artifact is malformed; the message names the role and each wrong field."""

    def __init__(self, role: str, problems: Iterable[str]) -> None:
        self.role = role
        self.problems = tuple(problems)
        super().__init__(
            f"The {role}'s step artifact (${ARTIFACT_VARIABLE}) is invalid: "
            + "; ".join(self.problems)
        )


def read_step_artifact(path: Path, role: str, run_kind: str) -> StepArtifact | None:
    """Read and check the artifact a session left; None if it left none (or an empty file)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if not path.is_file():
        raise StepArtifactError(role, ("the path is not a regular file",))
    if size > MAX_ARTIFACT_BYTES:
        raise StepArtifactError(role, (f"the file is larger than {MAX_ARTIFACT_BYTES} bytes",))
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        return None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise StepArtifactError(role, (f"not JSON ({error.msg} at line {error.lineno})",)) from None
    return check_step_artifact(role, run_kind, raw)


def check_step_artifact(role: str, run_kind: str, raw: object) -> StepArtifact:
    """Check a step artifact's JSON value against what `role` writes in a run of `run_kind`."""
    if not isinstance(raw, dict):
        raise StepArtifactError(role, (f"expected one JSON object, got {type(raw).__name__}",))
    kind = step_kind(role, run_kind)
    fields, problems = validate_fields(kind, raw)
    if problems:
        raise StepArtifactError(role, problems)
    return StepArtifact(role, kind, fields)


def plan_of(artifacts: Iterable[StepArtifact]) -> PlanArtifact | None:
    """Return the latest plan among the step artifacts, if any step wrote one."""
    plans = [artifact for artifact in artifacts if artifact.kind == PLAN_KIND]
    return PlanArtifact.model_validate(plans[-1].fields) if plans else None


def fields_of(artifacts: Iterable[StepArtifact], kind: str) -> dict[str, Any]:
    """Merge the fields every step wrote for `kind`; a later step's value wins."""
    merged: dict[str, Any] = {}
    for artifact in artifacts:
        if artifact.kind == kind:
            merged.update(artifact.fields)
    return merged
