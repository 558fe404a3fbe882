"""Typed artifacts and their fenced-JSON form in a check run's text (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from app.artifacts import (
    DevelopArtifact,
    IssueRef,
    ResearchArtifact,
    check_input,
    load_artifact,
    load_develop_artifact,
    parse_artifact_block,
    render_artifact_block,
)
from app.config import ACCEPTS

STARTED = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def artifact(**overrides):
    fields = {
        "runId": "abcdefghijkl",
        "repo": "acme/widgets",
        "createdAt": STARTED,
        "completedAt": STARTED,
        "issue": IssueRef(repo="acme/widgets", number=42),
        "prUrl": "http://127.0.0.1/acme/widgets/pull/43",
        "branchName": "coder/42-fix-login",
        "commitSha": "a" * 40,
        "testsPass": True,
        "filesChanged": ("src/login.py",),
        "model": "sonnet",
        "costUsd": 0.12,
        "durationSeconds": 61.5,
        "conclusion": "success",
    }
    return DevelopArtifact(**(fields | overrides))


def test_an_artifact_round_trips_through_a_check_run_text():
    text = "## Summary\n\nwhat happened\n\n" + render_artifact_block(artifact()) + "\n\nmore"
    assert load_develop_artifact(text) == artifact()


def test_text_without_a_block_has_no_artifact():
    assert parse_artifact_block("no artifact here") is None
    assert parse_artifact_block(None) is None
    assert load_develop_artifact("```json coder-artifact\n{not json}\n```") is None


def test_a_block_of_the_wrong_shape_is_not_a_develop_artifact():
    assert load_develop_artifact('```json coder-artifact\n{"kind": "develop"}\n```') is None


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="extra"):
        artifact(surprise=1)


def test_field_names_follow_the_seed_design():
    dumped = artifact().model_dump(mode="json")
    for name in ("prUrl", "branchName", "commitSha", "testsPass", "reviewSummary", "runId"):
        assert name in dumped


def research(**overrides):
    fields = {
        "runId": "researchrun1",
        "repo": "acme/widgets",
        "createdAt": STARTED,
        "completedAt": STARTED,
        "issue": IssueRef(repo="acme/widgets", number=42),
        "specPath": ".coder/specs/42-login.md",
        "problemStatement": "Logins fail on Safari.",
        "proposedApproach": "Use SameSite=Lax cookies.",
        "decisions": [{"decision": "keep sessions", "rationale": "fewer moving parts"}],
        "branchName": "coder/42-login",
    }
    return ResearchArtifact(**(fields | overrides))


def test_every_kind_round_trips_through_its_block():
    for made in (artifact(), research()):
        assert load_artifact(render_artifact_block(made)) == made


def test_a_good_artifact_may_start_the_next_workflow():
    raw = json.loads(research().model_dump_json())
    check = check_input(ACCEPTS["develop"], raw)
    assert check.problems == ()
    assert check.artifact == research()


def test_a_broken_artifact_stops_the_chain_naming_the_field():
    raw = json.loads(research().model_dump_json())
    del raw["specPath"]
    raw["decisions"] = "not a list"
    check = check_input(ACCEPTS["develop"], raw)
    assert check.artifact is None
    assert check.problems[0] == "specPath: Field required"
    assert any(problem.startswith("decisions:") for problem in check.problems)


def test_an_artifact_of_the_wrong_kind_is_refused():
    raw = json.loads(research().model_dump_json())
    assert check_input(ACCEPTS["review"], raw).problems == ("kind: research is not one of develop",)
    assert check_input(ACCEPTS["develop"], None).problems == (
        "the run left no artifact in its check run",
    )
    assert check_input(ACCEPTS["develop"], {"kind": "poem"}).problems == (
        "kind: unknown artifact kind 'poem'",
    )
