"""Who may start a run: the sender's live repository role, and the bot allow-list.

`author_association` is not enough (DESIGN §5): it says how someone relates to the repository,
not what they may do in it, so the role is read live from the permission API on every request.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gidgethub

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from gidgethub.abc import GitHubAPI

PERMISSION_URL = "/repos/{owner}/{repo}/collaborators/{username}/permission"
# Roles that may change code. `role_name` names the real role (custom roles included);
# the legacy `permission` folds maintain into write and triage into read.
# https://docs.github.com/en/rest/collaborators/collaborators#get-repository-permissions-for-a-user
WRITE_ROLES = frozenset({"admin", "maintain", "write"})
READ_ROLES = frozenset({"triage", "read", "none"})
LEGACY_WRITE = frozenset({"admin", "write"})
NO_ROLE = "none"
BOT_TYPE = "Bot"


class Refusal(enum.Enum):
    """Why a sender may not start a run."""

    NO_WRITE = "no_write"
    BOT_NOT_ALLOWED = "bot_not_allowed"


@dataclass(frozen=True)
class SenderCheck:
    """The outcome of a permission check: who, with which role, and the refusal if any."""

    login: str
    role: str
    refusal: Refusal | None = None

    @property
    def allowed(self) -> bool:
        """Tell whether the sender may start a run."""
        return self.refusal is None


def may_write(answer: Mapping[str, Any]) -> bool:
    """Tell whether a permission-API answer grants write, maintain or admin."""
    role = answer.get("role_name")
    if isinstance(role, str) and role in WRITE_ROLES:
        return True
    if isinstance(role, str) and role in READ_ROLES:
        return False
    # A custom role (or an old GHES without `role_name`): its base permission decides.
    permission = answer.get("permission")
    return isinstance(permission, str) and permission in LEGACY_WRITE


def role_of(answer: Mapping[str, Any]) -> str:
    """Return the most precise role name a permission-API answer carries."""
    for key in ("role_name", "permission"):
        value = answer.get(key)
        if isinstance(value, str) and value:
            return value
    return NO_ROLE


def bot_allowed(login: str, allowed_bots: Iterable[str]) -> bool:
    """Tell whether a bot is on the config's allow-list (logins are case-insensitive)."""
    wanted = login.casefold()
    return any(bot.casefold() == wanted for bot in allowed_bots)


async def check_sender(
    gh: GitHubAPI,
    repo_full_name: str,
    *,
    login: str,
    account_type: str,
    allowed_bots: Iterable[str] = (),
) -> SenderCheck:
    """Check live whether `login` may start a run in the repository."""
    if account_type == BOT_TYPE:
        # Apps are not collaborators, so the permission API has nothing to say about them;
        # the repository's own config is the grant.
        if bot_allowed(login, allowed_bots):
            return SenderCheck(login, BOT_TYPE.lower())
        return SenderCheck(login, BOT_TYPE.lower(), Refusal.BOT_NOT_ALLOWED)
    owner, repo = repo_full_name.split("/", 1)
    try:
        answer = await gh.getitem(PERMISSION_URL, {"owner": owner, "repo": repo, "username": login})
    except gidgethub.BadRequest as error:
        if error.status_code == 404:  # no such user (e.g. deleted since): no access
            return SenderCheck(login, NO_ROLE, Refusal.NO_WRITE)
        raise
    if may_write(answer):
        return SenderCheck(login, role_of(answer))
    return SenderCheck(login, role_of(answer), Refusal.NO_WRITE)
