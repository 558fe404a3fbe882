"""GitHub's JSON shapes for devhub's objects, shared by the REST routes and webhook payloads.

The shapes follow GitHub's OpenAPI description (`simple-user`, `full-repository`, `issue`, ...):
every required field is present, URLs point at devhub (`Urls.api` for API links, `Urls.web` for
html links and clone URLs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from devhub.git import GitPerson
from devhub.state import (
    REACTIONS,
    Account,
    App,
    Comment,
    Installation,
    Issue,
    IssueEvent,
    Label,
    Reaction,
    Repo,
    Role,
    State,
    iso,
    node_id,
)

JSON = dict[str, Any]


@dataclass(frozen=True)
class Urls:
    """Where devhub is reachable: `web` for html and git, `api` for REST (`<web>/api/v3`)."""

    web: str
    api: str


def _login_path(login: str) -> str:
    # Bots' logins carry brackets (`coder[bot]`); GitHub percent-encodes them in URLs.
    return quote(login, safe="")


def user_json(urls: Urls, account: Account) -> JSON:
    """Render a `simple-user`."""
    api = f"{urls.api}/users/{_login_path(account.login)}"
    if account.type == "Bot":
        html = f"{urls.web}/apps/{_login_path(account.login.removesuffix('[bot]'))}"
    else:
        html = f"{urls.web}/{account.login}"
    return {
        "login": account.login,
        "id": account.id,
        "node_id": account.node_id,
        "avatar_url": f"{urls.web}/avatars/u/{account.id}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": html,
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": account.type,
        "user_view_type": "public",
        "site_admin": account.site_admin,
    }


def user_full_json(urls: Urls, state: State, account: Account, *, private: bool) -> JSON:
    """Render a `public-user`, or a `private-user` when the caller is that user."""
    repos = state.repos_of(account)
    body = user_json(urls, account) | {
        "name": account.name,
        "company": None,
        "blog": "",
        "location": None,
        "email": account.email,
        "hireable": None,
        "bio": None,
        "twitter_username": None,
        "public_repos": sum(1 for r in repos if not r.private),
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "created_at": iso(account.created_at),
        "updated_at": iso(account.created_at),
    }
    if private:
        owned_private = sum(1 for r in repos if r.private)
        body |= {
            "user_view_type": "private",
            "private_gists": 0,
            "total_private_repos": owned_private,
            "owned_private_repos": owned_private,
            "disk_usage": 0,
            "collaborators": 0,
            "two_factor_authentication": False,
        }
    return body


def org_json(urls: Urls, org: Account) -> JSON:
    """Render an `organization-simple`."""
    api = f"{urls.api}/orgs/{org.login}"
    return {
        "login": org.login,
        "id": org.id,
        "node_id": org.node_id,
        "url": api,
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events",
        "hooks_url": f"{api}/hooks",
        "issues_url": f"{api}/issues",
        "members_url": f"{api}/members{{/member}}",
        "public_members_url": f"{api}/public_members{{/member}}",
        "avatar_url": f"{urls.web}/avatars/u/{org.id}?v=4",
        "description": org.description,
    }


def org_full_json(urls: Urls, state: State, org: Account) -> JSON:
    """Render an `organization-full`."""
    repos = state.repos_of(org)
    # `name`, `company`, `blog`, `location` and `email` are optional strings (never null) in
    # GitHub's organization-full, so they are left out until devhub has values for them.
    named = {"name": org.name} if org.name else {}
    return (
        org_json(urls, org)
        | named
        | {
            "twitter_username": None,
            "is_verified": False,
            "has_organization_projects": True,
            "has_repository_projects": True,
            "public_repos": sum(1 for r in repos if not r.private),
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "html_url": f"{urls.web}/{org.login}",
            "type": "Organization",
            "created_at": iso(org.created_at),
            "updated_at": iso(org.created_at),
            "archived_at": None,
        }
    )


def role_permissions(role: Role) -> JSON:
    """Render the `permissions` object GitHub attaches to a repository for the caller."""
    return {
        "admin": role >= Role.ADMIN,
        "maintain": role >= Role.MAINTAIN,
        "push": role >= Role.WRITE,
        "triage": role >= Role.TRIAGE,
        "pull": role >= Role.READ,
    }


def repo_json(
    urls: Urls, repo: Repo, *, role: Role | None = None, push_event: bool = False
) -> JSON:
    """Render a `full-repository`; `role` adds the caller's `permissions`."""
    api = f"{urls.api}/repos/{repo.full_name}"
    html = f"{urls.web}/{repo.full_name}"
    open_issues = sum(1 for i in repo.issues.values() if i.state == "open")
    host = urls.web.split("://", 1)[-1]
    body: JSON = {
        "id": repo.id,
        "node_id": node_id("R", repo.id),
        "name": repo.name,
        "full_name": repo.full_name,
        "private": repo.private,
        "owner": user_json(urls, repo.owner),
        "html_url": html,
        "description": repo.description,
        "fork": repo.parent is not None,
        "url": api,
        "forks_url": f"{api}/forks",
        "keys_url": f"{api}/keys{{/key_id}}",
        "collaborators_url": f"{api}/collaborators{{/collaborator}}",
        "teams_url": f"{api}/teams",
        "hooks_url": f"{api}/hooks",
        "issue_events_url": f"{api}/issues/events{{/number}}",
        "events_url": f"{api}/events",
        "assignees_url": f"{api}/assignees{{/user}}",
        "branches_url": f"{api}/branches{{/branch}}",
        "tags_url": f"{api}/tags",
        "blobs_url": f"{api}/git/blobs{{/sha}}",
        "git_tags_url": f"{api}/git/tags{{/sha}}",
        "git_refs_url": f"{api}/git/refs{{/sha}}",
        "trees_url": f"{api}/git/trees{{/sha}}",
        "statuses_url": f"{api}/statuses/{{sha}}",
        "languages_url": f"{api}/languages",
        "stargazers_url": f"{api}/stargazers",
        "contributors_url": f"{api}/contributors",
        "subscribers_url": f"{api}/subscribers",
        "subscription_url": f"{api}/subscription",
        "commits_url": f"{api}/commits{{/sha}}",
        "git_commits_url": f"{api}/git/commits{{/sha}}",
        "comments_url": f"{api}/comments{{/number}}",
        "issue_comment_url": f"{api}/issues/comments{{/number}}",
        "contents_url": f"{api}/contents/{{+path}}",
        "compare_url": f"{api}/compare/{{base}}...{{head}}",
        "merges_url": f"{api}/merges",
        "archive_url": f"{api}/{{archive_format}}{{/ref}}",
        "downloads_url": f"{api}/downloads",
        "issues_url": f"{api}/issues{{/number}}",
        "pulls_url": f"{api}/pulls{{/number}}",
        "milestones_url": f"{api}/milestones{{/number}}",
        "notifications_url": f"{api}/notifications{{?since,all,participating}}",
        "labels_url": f"{api}/labels{{/name}}",
        "releases_url": f"{api}/releases{{/id}}",
        "deployments_url": f"{api}/deployments",
        "created_at": iso(repo.created_at),
        "updated_at": iso(repo.updated_at),
        "pushed_at": iso(repo.pushed_at or repo.created_at),
        "git_url": f"git://{host}/{repo.full_name}.git",
        "ssh_url": f"git@{host.split(':', 1)[0]}:{repo.full_name}.git",
        "clone_url": f"{html}.git",
        "svn_url": html,
        "homepage": repo.homepage,
        "size": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": None,
        "has_issues": repo.has_issues,
        "has_projects": repo.has_projects,
        "has_downloads": True,
        "has_wiki": repo.has_wiki,
        "has_pages": False,
        "has_discussions": False,
        "forks_count": len(repo.forks),
        "mirror_url": None,
        "archived": False,
        "disabled": False,
        "open_issues_count": open_issues,
        "license": None,
        "allow_forking": True,
        "is_template": False,
        "web_commit_signoff_required": False,
        "topics": [],
        "visibility": "private" if repo.private else "public",
        "forks": len(repo.forks),
        "open_issues": open_issues,
        "watchers": 0,
        "default_branch": repo.default_branch,
        "network_count": len(repo.source.network()) - 1,
        "subscribers_count": 0,
    }
    if repo.owner.type == "Organization":
        body["organization"] = user_json(urls, repo.owner)
    if role is not None:
        body["permissions"] = role_permissions(role)
    if push_event:
        # Push payloads carry Unix timestamps for these two, a long-standing GitHub quirk:
        # https://docs.github.com/webhooks/webhook-events-and-payloads#push
        body["created_at"] = int(repo.created_at.timestamp())
        body["pushed_at"] = int((repo.pushed_at or repo.created_at).timestamp())
        body["stargazers"] = 0
        body["master_branch"] = repo.default_branch
        body.pop("organization", None)
        if repo.owner.type == "Organization":
            body["organization"] = repo.owner.login
    return body


def full_repo_json(urls: Urls, repo: Repo, *, role: Role | None = None) -> JSON:
    """Render a `full-repository` as `GET /repos/{o}/{r}` does: a fork names its family.

    `parent` is the repository it was forked from, `source` the root of the fork network; only
    this answer carries them (webhooks and lists do not).
    """
    body = repo_json(urls, repo, role=role)
    if repo.parent is not None:
        body["parent"] = repo_json(urls, repo.parent)
        body["source"] = repo_json(urls, repo.source)
    return body


def repo_brief_json(repo: Repo) -> JSON:
    """Render the short repository entry of installation events."""
    return {
        "id": repo.id,
        "node_id": node_id("R", repo.id),
        "name": repo.name,
        "full_name": repo.full_name,
        "private": repo.private,
    }


def collaborator_json(urls: Urls, account: Account, role: Role) -> JSON:
    """Render a `collaborator`: the user plus their permissions and role name."""
    return user_json(urls, account) | {
        "permissions": role_permissions(role),
        "role_name": role.api_name,
    }


def git_person(account: Account, date: str) -> GitPerson:
    """Make the git identity GitHub uses for an account (a noreply address)."""
    return GitPerson(
        account.name or account.login,
        f"{account.id}+{account.login}@users.noreply.devhub.local",
        date,
    )


def person_json(person: GitPerson) -> JSON:
    """Render a git author or committer."""
    return {"name": person.name, "email": person.email, "date": person.date}


def label_json(urls: Urls, repo: Repo, label: Label) -> JSON:
    """Render a `label`."""
    return {
        "id": label.id,
        "node_id": node_id("LA", label.id),
        "url": f"{urls.api}/repos/{repo.full_name}/labels/{quote(label.name, safe='')}",
        "name": label.name,
        "color": label.color,
        "default": label.default,
        "description": label.description,
    }


def author_association(state: State, repo: Repo, user: Account) -> str:
    """Say how an author relates to a repository (OWNER, MEMBER, COLLABORATOR, NONE)."""
    if user is repo.owner:
        return "OWNER"
    if repo.owner.type == "Organization" and state.org_role(repo.owner, user) is not None:
        return "MEMBER"
    if user.id in repo.collaborators:
        return "COLLABORATOR"
    return "NONE"


def reactions_json(url: str, reactions: list[Reaction]) -> JSON:
    """Render a `reaction-rollup`."""
    counts: JSON = dict.fromkeys(REACTIONS, 0)
    for reaction in reactions:
        counts[reaction.content] += 1
    return {"url": url, "total_count": len(reactions)} | counts


def reaction_json(urls: Urls, reaction: Reaction) -> JSON:
    """Render a `reaction`."""
    return {
        "id": reaction.id,
        "node_id": node_id("REA", reaction.id),
        "user": user_json(urls, reaction.user),
        "content": reaction.content,
        "created_at": iso(reaction.created_at),
    }


def app_json(urls: Urls, app: App) -> JSON:
    """Render an `integration` (the app as `GET /app` shows it)."""
    return {
        "id": app.id,
        "slug": app.slug,
        "node_id": app.node_id,
        "client_id": f"Iv1.{app.id:016x}",
        "owner": user_json(urls, app.owner),
        "name": app.name,
        "description": app.description,
        "external_url": app.external_url,
        "html_url": f"{urls.web}/apps/{app.slug}",
        "created_at": iso(app.created_at),
        "updated_at": iso(app.created_at),
        "permissions": dict(app.permissions),
        "events": list(app.events),
    }


def _via_app(urls: Urls, app: App, *, webhook: bool) -> JSON:
    rendered = app_json(urls, app)
    if webhook:
        # GitHub's webhook schemas enumerate an app's events and permissions with lists that
        # lag behind (no `workflow_job`) and do not require either field, so payloads omit them.
        del rendered["events"], rendered["permissions"]
    return rendered


def issue_json(
    urls: Urls, state: State, repo: Repo, issue: Issue, app: App, *, webhook: bool = False
) -> JSON:
    """Render an `issue`."""
    api = f"{urls.api}/repos/{repo.full_name}/issues/{issue.number}"
    kind = "pull" if issue.is_pull_request else "issues"
    return {
        "url": api,
        "repository_url": f"{urls.api}/repos/{repo.full_name}",
        "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments",
        "events_url": f"{api}/events",
        "html_url": f"{urls.web}/{repo.full_name}/{kind}/{issue.number}",
        "id": issue.id,
        "node_id": node_id("I", issue.id),
        "number": issue.number,
        "title": issue.title,
        "user": user_json(urls, issue.user),
        "labels": [label_json(urls, repo, label) for label in issue.labels],
        "state": issue.state,
        "locked": issue.locked,
        "assignee": user_json(urls, issue.assignees[0]) if issue.assignees else None,
        "assignees": [user_json(urls, a) for a in issue.assignees],
        "milestone": None,
        "comments": len(issue.comments),
        "created_at": iso(issue.created_at),
        "updated_at": iso(issue.updated_at),
        "closed_at": iso(issue.closed_at),
        "closed_by": user_json(urls, issue.closed_by) if issue.closed_by else None,
        "author_association": author_association(state, repo, issue.user),
        "active_lock_reason": None,
        "body": issue.body,
        "reactions": reactions_json(f"{api}/reactions", issue.reactions),
        "timeline_url": f"{api}/timeline",
        "performed_via_github_app": _via_app(urls, app, webhook=webhook) if issue.via_app else None,
        "state_reason": issue.state_reason,
        "sub_issues_summary": sub_issues_summary(issue),
    } | _pull_fields(urls, repo, issue)


def sub_issues_summary(issue: Issue) -> JSON:
    """Render an issue's `sub_issues_summary`: how many sub-issues, how many closed."""
    total = len(issue.sub_issues)
    completed = sum(1 for sub in issue.sub_issues if sub.state == "closed")
    percent = completed * 100 // total if total else 0
    return {"total": total, "completed": completed, "percent_completed": percent}


def _pull_fields(urls: Urls, repo: Repo, issue: Issue) -> JSON:
    """Return what an issue that is a pull request adds: `draft` and `pull_request` links."""
    pull = repo.pulls.get(issue.number) if issue.is_pull_request else None
    if pull is None:
        return {}
    api = f"{urls.api}/repos/{repo.full_name}/pulls/{issue.number}"
    html = f"{urls.web}/{repo.full_name}/pull/{issue.number}"
    return {
        "draft": pull.draft,
        "pull_request": {
            "url": api,
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "merged_at": iso(pull.merged_at),
        },
    }


def comment_json(urls: Urls, state: State, repo: Repo, comment: Comment, app: App) -> JSON:
    """Render an `issue-comment`."""
    api = f"{urls.api}/repos/{repo.full_name}/issues/comments/{comment.id}"
    html = f"{urls.web}/{repo.full_name}/issues/{comment.issue_number}"
    return {
        "url": api,
        "html_url": f"{html}#issuecomment-{comment.id}",
        "issue_url": f"{urls.api}/repos/{repo.full_name}/issues/{comment.issue_number}",
        "id": comment.id,
        "node_id": node_id("IC", comment.id),
        "user": user_json(urls, comment.user),
        "created_at": iso(comment.created_at),
        "updated_at": iso(comment.updated_at),
        "author_association": author_association(state, repo, comment.user),
        "body": comment.body,
        "reactions": reactions_json(f"{api}/reactions", comment.reactions),
        "performed_via_github_app": app_json(urls, app) if comment.via_app else None,
    }


def issue_event_json(urls: Urls, repo: Repo, event: IssueEvent) -> JSON:
    """Render an `issue-event-for-issue` entry."""
    body: JSON = {
        "id": event.id,
        "node_id": node_id("LE" if event.label else "E", event.id),
        "url": f"{urls.api}/repos/{repo.full_name}/issues/events/{event.id}",
        "actor": user_json(urls, event.actor),
        "event": event.event,
        "commit_id": None,
        "commit_url": None,
        "created_at": iso(event.created_at),
        "performed_via_github_app": None,
    }
    if event.label is not None:
        body["label"] = {"name": event.label.name, "color": event.label.color}
    if event.event in {"closed", "reopened"}:
        body["state_reason"] = event.state_reason
    return body


def installation_json(urls: Urls, app: App, installation: Installation) -> JSON:
    """Render an `installation`."""
    account = installation.account
    return {
        "id": installation.id,
        "client_id": f"Iv1.{app.id:016x}",
        "account": user_json(urls, account),
        "repository_selection": installation.repository_selection,
        "access_tokens_url": f"{urls.api}/app/installations/{installation.id}/access_tokens",
        "repositories_url": f"{urls.api}/installation/repositories",
        "html_url": _installation_html(urls, installation),
        "app_id": app.id,
        "app_slug": app.slug,
        "target_id": account.id,
        "target_type": account.type,
        "permissions": dict(installation.permissions),
        "events": list(installation.events),
        "created_at": iso(installation.created_at),
        "updated_at": iso(installation.updated_at),
        "single_file_name": None,
        "has_multiple_single_files": False,
        "single_file_paths": [],
        "suspended_by": None,
        "suspended_at": None,
    }


def _installation_html(urls: Urls, installation: Installation) -> str:
    if installation.account.type == "Organization":
        base = f"{urls.web}/organizations/{installation.account.login}"
        return f"{base}/settings/installations/{installation.id}"
    return f"{urls.web}/settings/installations/{installation.id}"
