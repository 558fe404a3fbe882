"""Deterministic ids: run ids from what triggered a run, and the dispatcher's subject keys."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Protocol

RUN_ID_LENGTH = 12

# Events about one issue or pull request, and where its number sits in the payload.
NUMBERED_SUBJECTS: dict[str, str] = {
    "issues": "issue",
    "issue_comment": "issue",
    "pull_request": "pull_request",
    "pull_request_review": "pull_request",
    "pull_request_review_comment": "pull_request",
    "pull_request_review_thread": "pull_request",
}
# Events whose object lists the pull requests it belongs to (empty for forks and plain pushes).
PR_LIST_SUBJECTS: dict[str, str] = {
    "check_run": "check_run",
    "check_suite": "check_suite",
    "workflow_run": "workflow_run",
}


class WebhookEvent(Protocol):
    """What `subject_key` needs from a `gidgethub.sansio.Event`."""

    event: str
    data: Any


def run_id(repo_full_name: str, workflow: str, subject_number: int, trigger_key: str) -> str:
    """Return a short id that is the same every time the same trigger is seen again."""
    material = json.dumps([repo_full_name.lower(), workflow, subject_number, trigger_key])
    digest = hashlib.sha256(material.encode("utf-8")).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:RUN_ID_LENGTH]


def subject_key(event: WebhookEvent) -> str:
    """Return the key whose deliveries must be handled one at a time, in order."""
    payload = event.data if isinstance(event.data, Mapping) else {}
    repository = payload.get("repository")
    repo = repository.get("full_name") if isinstance(repository, Mapping) else None
    if isinstance(repo, str):
        number = _subject_number(event.event, payload)
        return f"{repo}#{number}" if number is not None else repo
    installation = payload.get("installation")
    if isinstance(installation, Mapping) and installation.get("id") is not None:
        return f"installation:{installation['id']}"
    return "app"


def _subject_number(event: str, payload: Mapping[str, Any]) -> int | None:
    if event in NUMBERED_SUBJECTS:
        return _number(payload.get(NUMBERED_SUBJECTS[event]))
    if event in PR_LIST_SUBJECTS:
        subject = payload.get(PR_LIST_SUBJECTS[event])
        pulls = subject.get("pull_requests") if isinstance(subject, Mapping) else None
        if isinstance(pulls, list) and pulls:
            return _number(pulls[0])
    return None


def _number(item: Any) -> int | None:
    if isinstance(item, Mapping) and isinstance(item.get("number"), int):
        return int(item["number"])
    return None
