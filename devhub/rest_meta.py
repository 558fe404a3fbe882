"""REST: the API root (`GET /`) and `GET /rate_limit`."""

from __future__ import annotations

from aiohttp import web

from devhub.http import API_PREFIX, context, json_response, principal

ROUTES = web.RouteTableDef()


@ROUTES.get(API_PREFIX)
@ROUTES.get(API_PREFIX + "/")
async def get_root(request: web.Request) -> web.Response:
    """List the API's entry points, as `GET /` on GitHub does."""
    api = context(request).urls.api
    web_url = context(request).urls.web
    return json_response(
        {
            "current_user_url": f"{api}/user",
            "current_user_authorizations_html_url": (
                f"{web_url}/settings/connections/applications{{/client_id}}"
            ),
            "authorizations_url": f"{api}/authorizations",
            "code_search_url": f"{api}/search/code?q={{query}}{{&page,per_page,sort,order}}",
            "commit_search_url": f"{api}/search/commits?q={{query}}{{&page,per_page,sort,order}}",
            "emails_url": f"{api}/user/emails",
            "emojis_url": f"{api}/emojis",
            "events_url": f"{api}/events",
            "feeds_url": f"{api}/feeds",
            "followers_url": f"{api}/user/followers",
            "following_url": f"{api}/user/following{{/target}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "hub_url": f"{api}/hub",
            "issue_search_url": f"{api}/search/issues?q={{query}}{{&page,per_page,sort,order}}",
            "issues_url": f"{api}/issues",
            "keys_url": f"{api}/user/keys",
            "label_search_url": (
                f"{api}/search/labels?q={{query}}&repository_id={{repository_id}}{{&page,per_page}}"
            ),
            "notifications_url": f"{api}/notifications",
            "organization_url": f"{api}/orgs/{{org}}",
            "organization_repositories_url": (
                f"{api}/orgs/{{org}}/repos{{?type,page,per_page,sort}}"
            ),
            "organization_teams_url": f"{api}/orgs/{{org}}/teams",
            "public_gists_url": f"{api}/gists/public",
            "rate_limit_url": f"{api}/rate_limit",
            "repository_url": f"{api}/repos/{{owner}}/{{repo}}",
            "repository_search_url": (
                f"{api}/search/repositories?q={{query}}{{&page,per_page,sort,order}}"
            ),
            "current_user_repositories_url": f"{api}/user/repos{{?type,page,per_page,sort}}",
            "starred_url": f"{api}/user/starred{{/owner}}{{/repo}}",
            "starred_gists_url": f"{api}/gists/starred",
            "topic_search_url": f"{api}/search/topics?q={{query}}{{&page,per_page}}",
            "user_url": f"{api}/users/{{user}}",
            "user_organizations_url": f"{api}/user/orgs",
            "user_repositories_url": f"{api}/users/{{user}}/repos{{?type,page,per_page,sort}}",
            "user_search_url": f"{api}/search/users?q={{query}}{{&page,per_page}}",
        }
    )


@ROUTES.get(API_PREFIX + "/rate_limit")
async def get_rate_limit(request: web.Request) -> web.Response:
    """Report the caller's budgets; this call itself is free, as on GitHub."""
    limits = context(request).limits
    caller = principal(request)
    core = limits.bucket(caller, "core").snapshot()
    resources = {
        "core": core,
        "graphql": limits.bucket(caller, "graphql").snapshot(),
        "search": limits.bucket(caller, "search").snapshot(),
    }
    return json_response({"resources": resources, "rate": core})
