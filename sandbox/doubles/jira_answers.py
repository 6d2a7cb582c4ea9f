"""Jira's answers, body and headers: its error shape, timestamps, and the JSON it renders for
users, issues, comments and remote links. Pure functions of the stored data."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

from sandbox.doubles.jira_adf import adf_to_wiki, wiki_to_adf
from sandbox.doubles.messages import Response, json_response

ACCOUNT_ID = "557058:5f1c0e3a-sandbox-dev"
NOT_FOUND_ISSUE = "Issue does not exist or you do not have permission to see it."

# What a Jira Cloud answer carries besides its body (values typical, not copied).
EDGE_HEADERS = (
    ("Cache-Control", "no-cache, no-store, no-transform"),
    ("Vary", "Accept-Encoding"),
    ("X-Arequestid", "4a6f2c1e-9b8d-4e7f-a1c2-3d4e5f6a7b8c"),
    ("X-Aaccountid", "5b10ac8d82e05b22cc7d4ef5"),
    ("X-RateLimit-Limit", "350"),
    ("X-RateLimit-Remaining", "349"),
    ("X-RateLimit-NearLimit", "false"),
    ("Timing-Allow-Origin", "*"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Xss-Protection", "1; mode=block"),
    ("Strict-Transport-Security", "max-age=63072000; includeSubDomains; preload"),
    ("Atl-Traceid", "4a6f2c1e9b8d4e7fa1c23d4e5f6a7b8c"),
    ("Atl-Request-Id", "4a6f2c1e-9b8d-4e7f-a1c2-3d4e5f6a7b8c"),
    (
        "Set-Cookie",
        "atlassian.xsrf.token=4a6f2c1e9b8d4e7f_lin; path=/; SameSite=None; Secure",
    ),
    ("Report-To", '{"group": "endpoint-1", "max_age": 600, "endpoints": []}'),
)


def error(status: int, messages: list[str], errors: dict[str, str] | None = None) -> Response:
    return json_response(status, {"errorMessages": messages, "errors": errors or {}})


def timestamp(moment: datetime) -> str:
    # Jira's format: milliseconds and a colon-less offset.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


# --------------------------------------------------------------------- errors


def not_found(base_url: str, path: str) -> Response:
    # Jersey's wording for an unknown resource.
    return error(404, [f"null for uri: {base_url}{path}"])


def method_not_allowed(method: str) -> Response:
    return error(405, [f"Method {method} is not allowed for this resource."])


def throttled(retry_after_seconds: int, rate_limit_per_minute: int | None) -> Response:
    reset = datetime.now(timezone.utc) + timedelta(seconds=retry_after_seconds)
    headers = {
        "Retry-After": str(retry_after_seconds),
        "X-RateLimit-Limit": str(rate_limit_per_minute or 100),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"),
    }
    response = error(429, ["Rate limit exceeded."])
    response.headers.update(headers)
    return response


def unavailable(retry_after: int | None) -> Response:
    response = error(503, ["Service unavailable"])
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def internal_error() -> Response:
    return error(500, ["Internal server error"])


def unauthorized() -> Response:
    return error(
        401, ["You are not authenticated. Authentication required to perform this operation."]
    )


def not_an_object() -> Response:
    return error(400, ["Unexpected request body: expected a JSON object."])


# --------------------------------------------------------------------- resources


def server_info(base_url: str, cloud: bool) -> dict[str, Any]:
    return {
        "baseUrl": base_url,
        "version": "1001.0.0-SNAPSHOT" if cloud else "9.12.0",
        "versionNumbers": [1001, 0, 0] if cloud else [9, 12, 0],
        "deploymentType": "Cloud" if cloud else "Server",
        "buildNumber": 100250 if cloud else 9120000,
        "serverTitle": "Sandbox Jira",
    }


def user_json(base_url: str, email: str) -> dict[str, Any]:
    return {
        "self": f"{base_url}/rest/api/2/user?accountId={ACCOUNT_ID}",
        "accountId": ACCOUNT_ID,
        "emailAddress": email,
        "displayName": "Sandbox Dev",
        "active": True,
        "timeZone": "Etc/UTC",
        "accountType": "atlassian",
    }


def issue_json(base_url: str, issue: dict[str, Any], version: str) -> dict[str, Any]:
    return {
        "id": issue["id"],
        "key": issue["key"],
        "self": f"{base_url}/rest/api/{version}/issue/{issue['id']}",
        "fields": {
            "summary": issue["summary"],
            "status": {"name": issue["status"]},
            # projectTypeKey: "software", "service_desk", "business" or "product_discovery".
            "project": {
                "key": issue["key"].split("-")[0],
                "projectTypeKey": "service_desk" if issue.get("service_desk") else "software",
            },
            "issuetype": {"name": "Bug"},
            "created": issue["created"],
            **copy.deepcopy(issue.get("custom_fields", {})),
        },
    }


def comment_json(
    base_url: str, email: str, issue: dict[str, Any], comment: dict[str, Any], version: str
) -> dict[str, Any]:
    body = comment["body"]
    # Jira converts between representations: v2 readers get wiki text, v3 readers get ADF.
    if version == "2" and comment["api_version"] == "3":
        body = adf_to_wiki(body)
    elif version == "3" and comment["api_version"] == "2":
        body = wiki_to_adf(body)
    data: dict[str, Any] = {
        "self": f"{base_url}/rest/api/{version}/issue/{issue['id']}/comment/{comment['id']}",
        "id": comment["id"],
        "author": user_json(base_url, email),
        "body": copy.deepcopy(body),
        "updateAuthor": user_json(base_url, email),
        "created": comment["created"],
        "updated": comment["updated"],
        # False only for an internal comment on a service desk issue.
        "jsdPublic": not comment.get("internal", False),
    }
    if "visibility" in comment:
        data["visibility"] = dict(comment["visibility"])
    return data


def link_self(base_url: str, issue: dict[str, Any], link: dict[str, Any], version: str) -> str:
    return f"{base_url}/rest/api/{version}/issue/{issue['key']}/remotelink/{link['id']}"


def link_json(
    base_url: str, issue: dict[str, Any], link: dict[str, Any], version: str
) -> dict[str, Any]:
    return {
        "id": link["id"],
        "self": link_self(base_url, issue, link, version),
        "globalId": link["globalId"],
        "application": copy.deepcopy(link["application"]),
        "relationship": link["relationship"],
        "object": copy.deepcopy(link["object"]),
    }
