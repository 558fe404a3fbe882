"""Role prompts: built-in ones ship with coder (`actions/agent/roles/*.md`), custom ones come
from the default branch (`roles.<name>.prompt` in `.github/coder.yml`)."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from app.config import BUILT_IN_ROLES

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from app.config import CoderConfig

ROLES_PACKAGE = "actions.agent"
ROLES_DIR = "roles"
MAX_PROMPT_CHARS = 32_000


class RolePromptError(Exception):
    """A role's prompt cannot be found; the message names the config key and the path."""


def built_in_prompt(role: str) -> str | None:
    """Return the prompt coder ships for a built-in role, or None for any other name."""
    if role not in BUILT_IN_ROLES:
        return None
    return (resources.files(ROLES_PACKAGE) / ROLES_DIR / f"{role}.md").read_text(encoding="utf-8")


async def load_role_prompts(
    roles: tuple[str, ...],
    config: CoderConfig,
    read_base: Callable[[str], Awaitable[str | None]],
    base_branch: str,
) -> dict[str, str]:
    """Return each role's prompt: a custom role's file from the base branch, else the built-in."""
    prompts: dict[str, str] = {}
    for role in dict.fromkeys(roles):
        custom = config.roles.get(role)
        if custom is None:
            prompts[role] = built_in_prompt(role) or ""
            continue
        path = custom.prompt_path(role)
        text = await read_base(path)
        if text is None:
            raise RolePromptError(
                f"roles.{role}.prompt: {path} is not on the default branch ({base_branch})"
            )
        prompts[role] = text[:MAX_PROMPT_CHARS]
    return prompts
