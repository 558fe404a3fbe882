"""The parts of a run's summary that depend on its kind: the plan and its split proposal, the
spec, the review, the release (pure rendering)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.artifacts import PlanArtifact

MAX_LISTED = 30
MAX_TEXT_CHARS = 8_000
VERDICT_TITLES = {
    "approve": "Review: approved",
    "request_changes": "Review: changes requested",
    "comment": "Review: comments",
}
DRAFT_NOTE = "The pull request stays a draft: it holds a spec, not code."


def model_line(model: str, reason: str) -> str:
    """Return `Model: X — <why>` for the summary."""
    return f"Model: {model} — {reason}" if reason else f"Model: {model}"


def success_title(kind: str, fields: dict[str, Any], files: str) -> str:
    """Return the check run's title for a successful run that is not a develop run."""
    if kind == "review":
        return VERDICT_TITLES.get(str(fields.get("verdict")), "Review done")
    if kind == "release":
        return f"Release {fields.get('version', '?')}: {files} changed"
    where = fields.get("specPath") or fields.get("specDir") or "the spec"
    return f"Spec pushed: {where}"


def kind_sections(
    *,
    kind: str,
    succeeded: bool,
    fields: dict[str, Any],
    plan: PlanArtifact | None,
    auto_split: bool,
) -> list[str]:
    """Return the summary's sections for what the agents handed in."""
    lines: list[str] = []
    if plan is not None:
        lines += _plan(plan, auto_split=auto_split)
    if kind in {"research", "design"}:
        lines += _spec(kind, fields, succeeded=succeeded)
    elif kind == "review" and "verdict" in fields:
        lines += _review(fields)
    elif kind == "release" and "version" in fields:
        lines += _release(fields)
    return lines


def _plan(plan: PlanArtifact, *, auto_split: bool) -> list[str]:
    lines = ["", "### Plan", ""]
    if plan.summary:
        lines += [_quote(plan.summary), ""]
    if plan.files:
        lines.append(
            "Files: " + ", ".join(f"`{_inline(path)}`" for path in plan.files[:MAX_LISTED])
        )
        lines.append("")
    lines += [f"{number}. {_inline(step)}" for number, step in enumerate(plan.steps, 1)]
    if not plan.split:
        return lines
    count = len(plan.split)
    lines += ["", f"Proposed split: {count} sub-issue{'s' if count != 1 else ''}", ""]
    for proposal in plan.split[:MAX_LISTED]:
        body = f" — {_inline(proposal.body.splitlines()[0])}" if proposal.body.strip() else ""
        lines.append(f"- **{_inline(proposal.title)}**{body}")
    lines += [
        "",
        "auto_split is on: coder opens these as sub-issues."
        if auto_split
        else "Say `/coder split` to open these as sub-issues.",
    ]
    return lines


def _spec(kind: str, fields: dict[str, Any], *, succeeded: bool) -> list[str]:
    lines = ["", "### Spec" if kind == "research" else "### Design", ""]
    if kind == "research":
        if "specPath" in fields:
            lines.append(f"Spec: `{_inline(str(fields['specPath']))}`")
        for key, label in (("problemStatement", "Problem"), ("proposedApproach", "Approach")):
            if fields.get(key):
                lines += ["", f"**{label}**", "", _quote(str(fields[key]))]
        decisions = fields.get("decisions") or []
        if decisions:
            lines += ["", "**Decisions**", ""]
            lines += [
                f"- {_inline(item['decision'])}"
                + (f" — {_inline(item['rationale'])}" if item.get("rationale") else "")
                for item in decisions[:MAX_LISTED]
            ]
    else:
        if "specDir" in fields:
            lines.append(f"Design: `{_inline(str(fields['specDir']))}`")
        screens = fields.get("screens") or []
        if screens:
            lines += ["", *(f"- {_inline(s['name'])}: `{_inline(s['path'])}`" for s in screens)]
    if succeeded:
        lines += ["", DRAFT_NOTE]
    return lines


def _review(fields: dict[str, Any]) -> list[str]:
    lines = ["", "### Review", "", f"Verdict: `{fields['verdict']}`"]
    if fields.get("summary"):
        lines += ["", _quote(str(fields["summary"]))]
    comments = fields.get("comments") or []
    if comments:
        lines += ["", "**Comments**", ""]
        lines += [
            f"- `{_inline(c['path'])}:{c['line']}` {_inline(c['body'])}"
            for c in comments[:MAX_LISTED]
        ]
        if len(comments) > MAX_LISTED:
            lines.append(f"- … and {len(comments) - MAX_LISTED} more")
    return lines


def _release(fields: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "### Release",
        "",
        (
            f"Version `{_inline(str(fields['version']))}`, tag "
            f"`{_inline(str(fields.get('tag', '?')))}` (created when this pull request merges)."
        ),
    ]
    if fields.get("changelog"):
        lines += ["", _quote(str(fields["changelog"]))]
    return lines


def _quote(text: str) -> str:
    text = text[:MAX_TEXT_CHARS]
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines() or [""])


def _inline(text: str) -> str:
    return " ".join(text.replace("`", "'").split())
