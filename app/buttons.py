"""The buttons coder's check runs offer: Retry, Fix and Cancel (DESIGN §5). Pure.

GitHub shows at most three `actions` on a check run, each with a label of at most 20 characters,
a description of at most 40 and an identifier of at most 20; pressing one sends
`check_run.requested_action` to the app that made the check run, which handles it like the
command of the same name, with the same permission check on whoever pressed it.
https://docs.github.com/rest/guides/using-the-rest-api-to-interact-with-checks#check-runs-and-requested-actions
"""

from __future__ import annotations

from typing import Any

RETRY = "retry"
FIX = "fix"
CANCEL = "cancel"
BUTTONS: dict[str, dict[str, str]] = {
    RETRY: {
        "label": "Retry",
        "description": "Run it again, one model tier up",
        "identifier": RETRY,
    },
    FIX: {
        "label": "Fix",
        "description": "A fix run on this pull request's branch",
        "identifier": FIX,
    },
    CANCEL: {"label": "Cancel", "description": "Stop the run and its job", "identifier": CANCEL},
}
ENDED_BADLY = frozenset({"failure", "timed_out", "cancelled", "action_required", "stale"})


def buttons_for(status: str, conclusion: str | None, *, fixable: bool) -> list[dict[str, Any]]:
    """Return the buttons a run's check run offers in this state.

    Cancel while it is queued or running; Retry once it ended badly, and Fix as well when it
    has a coder branch's pull request to work on.
    """
    if status != "completed":
        return [dict(BUTTONS[CANCEL])]
    if conclusion not in ENDED_BADLY:
        return []
    chosen = [RETRY, FIX] if fixable and conclusion != "cancelled" else [RETRY]
    return [dict(BUTTONS[name]) for name in chosen]
