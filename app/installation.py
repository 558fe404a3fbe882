"""On installation, make sure every repository has coder's labels (and nothing twice)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import gidgethub
from gidgethub.routing import Router

from app.events import InstallationCreated, InstallationRepositoriesAdded, RepositoryRef
from app.github import create_once
from app.labels import CODER_LABELS, Label

if TYPE_CHECKING:
    from gidgethub.abc import GitHubAPI
    from gidgethub.sansio import Event

log = logging.getLogger(__name__)

router = Router()

LABELS_URL = "/repos/{owner}/{repo}/labels"
LABEL_URL = "/repos/{owner}/{repo}/labels/{name}"
ALREADY_EXISTS = "already_exists"


@router.register("installation", action="created")
async def label_new_installation(event: Event, gh: GitHubAPI) -> None:
    """Create coder's labels in every repository of a new installation."""
    installation = InstallationCreated.from_payload(event.data)
    await _label_repositories(gh, installation.repositories)


@router.register("installation_repositories", action="added")
async def label_added_repositories(event: Event, gh: GitHubAPI) -> None:
    """Create coder's labels in repositories just added to an installation."""
    added = InstallationRepositoriesAdded.from_payload(event.data)
    await _label_repositories(gh, added.repositories_added)


async def _label_repositories(gh: GitHubAPI, repositories: list[RepositoryRef]) -> None:
    for repository in repositories:
        changed = await ensure_labels(gh, repository.full_name)
        if changed:
            log.info("labels in %s: %s", repository.full_name, ", ".join(changed))


async def ensure_labels(gh: GitHubAPI, repo_full_name: str) -> list[str]:
    """Create or correct coder's labels in one repository; return what changed."""
    owner, repo = repo_full_name.split("/", 1)
    where = {"owner": owner, "repo": repo}
    # Listed with the ETag cache, so a repeat visit costs a free 304 per page.
    existing = {
        str(label["name"]).casefold(): label
        async for label in gh.getiter(LABELS_URL + "{?per_page}", {**where, "per_page": 100})
    }
    changed = []
    for label in CODER_LABELS:
        current = existing.get(label.name.casefold())
        if current is None:
            await _create_label(gh, where, label)
            changed.append(f"created {label.name}")
        elif _differs(current, label):
            await gh.patch(
                LABEL_URL,
                {**where, "name": current["name"]},
                data={"color": label.color, "description": label.description},
            )
            changed.append(f"updated {label.name}")
    return changed


def _differs(current: Mapping[str, Any], label: Label) -> bool:
    color = str(current.get("color") or "").lower()
    return color != label.color or (current.get("description") or "") != label.description


async def _create_label(gh: GitHubAPI, where: Mapping[str, str], label: Label) -> None:
    async def create() -> Any:
        try:
            return await gh.post(
                LABELS_URL,
                dict(where),
                data={"name": label.name, "color": label.color, "description": label.description},
            )
        except (gidgethub.InvalidField, gidgethub.ValidationError) as error:
            # Someone (or another replica) created it since we listed: that is the goal.
            if _already_exists(error.errors):
                return {"name": label.name}
            raise

    async def find() -> Any:
        try:
            return await gh.getitem(LABEL_URL, {**where, "name": label.name})
        except gidgethub.BadRequest as error:
            if error.status_code == 404:
                return None
            raise

    await create_once(gh, create=create, find=find)


def _already_exists(errors: Any) -> bool:
    if not isinstance(errors, list):
        return False
    return any(isinstance(e, Mapping) and e.get("code") == ALREADY_EXISTS for e in errors)
