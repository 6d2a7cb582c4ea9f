"""A fake Jira (Cloud or Data Center): issues, comments (v2 wiki text / v3 ADF) and remote links.

Request bodies of the two write operations are checked against the schemas Atlassian publishes
(`jira_schemas.json`, extracted from the OpenAPI file in the shared reference folder), so our
client is held to the vendor's contract rather than to our own reading of it.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sandbox.doubles.base import (
    Double,
    Request,
    Response,
    basic_auth,
    bearer_token,
    json_response,
)

SCHEMAS: dict[str, Any] = json.loads(
    (Path(__file__).with_name("jira_schemas.json")).read_text(encoding="utf-8")
)["schemas"]

ISSUE_KEY = re.compile(r"[A-Z][A-Z0-9]+-\d+")
ACCOUNT_ID = "557058:5f1c0e3a-sandbox-dev"
_API = r"/rest/api/(?P<v>2|3|latest)"
_ISSUE = _API + r"/issue/(?P<key>[^/]+)"
_NOT_FOUND_ISSUE = "Issue does not exist or you do not have permission to see it."
_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "boolean": bool,
    "object": dict,
    "array": list,
    "number": (int, float),
    "integer": int,
}


def _errors(status: int, messages: list[str], errors: dict[str, str] | None = None) -> Response:
    return json_response(status, {"errorMessages": messages, "errors": errors or {}})


def _timestamp(moment: datetime) -> str:
    # Jira's format: milliseconds and a colon-less offset.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


# --------------------------------------------------------------------- schema validation


def validate(instance: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """The subset of OpenAPI 3.0 schema checks the vendored schemas use (jsonschema is not a
    dependency): type, nullable, enum, maxLength, required, properties, additionalProperties,
    items, allOf. readOnly properties are skipped: Jira ignores them in requests."""
    if instance is None:
        return [] if schema.get("nullable") else _type_error(instance, schema, where)
    problems = _type_error(instance, schema, where)
    if problems:
        return problems
    if "enum" in schema and instance not in schema["enum"]:
        problems.append(f"{where}: {instance!r} is not one of {schema['enum']}")
    if isinstance(instance, str) and len(instance) > schema.get("maxLength", len(instance)):
        problems.append(f"{where}: longer than {schema['maxLength']} characters")
    for part in schema.get("allOf", []):
        problems += validate(instance, part, where)
    if isinstance(instance, dict):
        properties: dict[str, Any] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in instance:
                problems.append(f"{where}: '{name}' is a required property")
        for name, value in instance.items():
            if name in properties:
                if not properties[name].get("readOnly"):
                    problems += validate(value, properties[name], f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{where}: unexpected property '{name}'")
    if isinstance(instance, list) and "items" in schema:
        for index, item in enumerate(instance):
            problems += validate(item, schema["items"], f"{where}[{index}]")
    return problems


def _type_error(instance: Any, schema: dict[str, Any], where: str) -> list[str]:
    expected = schema.get("type")
    if expected is None:
        return []
    python_type = _JSON_TYPES[expected]
    # bool is an int in Python but not a JSON number.
    ok = isinstance(instance, python_type) and not (
        isinstance(instance, bool) and expected in ("number", "integer")
    )
    return [] if ok else [f"{where}: {json.dumps(instance)[:60]} is not of type '{expected}'"]


# --------------------------------------------------------------------- ADF helpers


def is_valid_adf(doc: Any) -> bool:
    """Loose Atlassian Document Format check: a versioned doc of typed nodes, non-empty text
    nodes, and link marks carrying an href (what Jira rejects with "Comment body is not valid!")."""
    if not isinstance(doc, dict) or doc.get("type") != "doc" or doc.get("version") != 1:
        return False
    return isinstance(doc.get("content"), list) and all(_valid_node(n) for n in doc["content"])


def _valid_node(node: Any) -> bool:
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        return False
    if node["type"] == "text" and not (isinstance(node.get("text"), str) and node["text"]):
        return False
    marks = node.get("marks", [])
    if not isinstance(marks, list):
        return False
    for mark in marks:
        if not isinstance(mark, dict) or not isinstance(mark.get("type"), str):
            return False
        if mark["type"] == "link" and not isinstance((mark.get("attrs") or {}).get("href"), str):
            return False
    content = node.get("content", [])
    return isinstance(content, list) and all(_valid_node(child) for child in content)


def iter_adf(node: Any) -> Iterator[dict[str, Any]]:
    """Depth-first walk over an ADF tree's nodes."""
    if isinstance(node, dict):
        yield node
        for child in node.get("content", []) if isinstance(node.get("content"), list) else []:
            yield from iter_adf(child)


def adf_link(node: dict[str, Any]) -> str | None:
    """The URL a text node links to (link mark) or an inline/block card points at."""
    if node.get("type") in ("inlineCard", "blockCard"):
        url = (node.get("attrs") or {}).get("url")
        return url if isinstance(url, str) else None
    for mark in node.get("marks", []) or []:
        if isinstance(mark, dict) and mark.get("type") == "link":
            href = (mark.get("attrs") or {}).get("href")
            return href if isinstance(href, str) else None
    return None


def adf_to_wiki(doc: Any) -> str:
    """How Jira shows a v3 (ADF) comment through v2: wiki markup, links as [text|url]."""
    blocks: list[str] = []
    for block in doc.get("content", []) if isinstance(doc, dict) else []:
        parts: list[str] = []
        for node in iter_adf(block):
            url = adf_link(node)
            text = node.get("text") if node.get("type") == "text" else None
            if node.get("type") == "hardBreak":
                parts.append("\n")
            elif url and text:
                parts.append(f"[{text}|{url}]")
            elif url:
                parts.append(f"[{url}]")
            elif isinstance(text, str):
                parts.append(text)
        blocks.append("".join(parts))
    return "\n\n".join(blocks)


_WIKI_LINK = re.compile(r"\[(?:([^|\]]*)\|)?([a-z][a-z0-9+.-]*://[^\]\s]+)\]")


def wiki_to_adf(text: str) -> dict[str, Any]:
    """How Jira shows a v2 (wiki) comment through v3: paragraphs, [text|url] as link marks."""
    content: list[dict[str, Any]] = []
    for paragraph in (p for p in text.split("\n\n") if p.strip()):
        nodes: list[dict[str, Any]] = []
        position = 0
        for match in _WIKI_LINK.finditer(paragraph):
            if match.start() > position:
                nodes.append({"type": "text", "text": paragraph[position : match.start()]})
            label, url = match.group(1) or match.group(2), match.group(2)
            link = {"type": "link", "attrs": {"href": url}}
            nodes.append({"type": "text", "text": label, "marks": [link]})
            position = match.end()
        if position < len(paragraph):
            nodes.append({"type": "text", "text": paragraph[position:]})
        content.append({"type": "paragraph", "content": nodes})
    return {"type": "doc", "version": 1, "content": content}


# --------------------------------------------------------------------- the double


class JiraDouble(Double):
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

    def __init__(
        self,
        email: str = "dev@sandbox.test",
        api_token: str = "jira_sandbox_token",  # noqa: S107 (a fake server's fake credential)
        personal_access_token: str = "jira_sandbox_pat",  # noqa: S107
        deployment: str = "cloud",
        auto_create_issues: bool = False,
        validate_openapi: bool = True,
        port: int = 0,
    ) -> None:
        if deployment not in ("cloud", "datacenter"):
            raise ValueError("deployment must be 'cloud' or 'datacenter'")
        super().__init__(port=port)
        self.email = email
        self.api_token = api_token
        self.personal_access_token = personal_access_token
        self.deployment = deployment
        self.auto_create_issues = auto_create_issues
        self.validate_openapi = validate_openapi
        self.retry_after_seconds = 1
        # Jira may or may not send Retry-After with a 503; None leaves it out.
        self.retry_after_on_503: int | None = None
        self.roles = {"Administrators", "Developers", "Users", "Service Desk Team"}
        self.groups = {"jira-software-users", "jira-administrators", "site-admins"}
        self.issues: dict[str, dict[str, Any]] = {}
        # One entry per rejected request body: {"operation", "path", "problems"}.
        self.schema_violations: list[dict[str, Any]] = []
        self._state = threading.RLock()
        self._next_issue_id = 10000
        self._next_comment_id = 10100
        self._next_link_id = 10500

        self.route("GET", r"/rest/api/(?:2|latest)/serverInfo", self._server_info)
        self.route("GET", r"/rest/applinks/latest/listApplicationlinks", self._applinks)
        self.route("GET", _API + r"/myself", self._myself)
        self.route("GET", _ISSUE, self._get_issue)
        self.route("GET", _ISSUE + r"/comment", self._list_comments)
        self.route("POST", _ISSUE + r"/comment", self._add_comment)
        self.route("GET", _ISSUE + r"/remotelink", self._list_links)
        self.route("POST", _ISSUE + r"/remotelink", self._upsert_link)
        self.route("GET", _ISSUE + r"/remotelink/(?P<link>\d+)", self._get_link)

    @property
    def cloud(self) -> bool:
        return self.deployment == "cloud"

    # ----------------------------------------------------------------- test helpers

    def add_issue(self, key: str, summary: str = "Sandbox issue") -> dict[str, Any]:
        if not ISSUE_KEY.fullmatch(key):
            raise ValueError(f"not an issue key: {key!r}")
        with self._state:
            issue: dict[str, Any] = {
                "id": str(self._next_issue_id),
                "key": key,
                "summary": summary,
                "status": "To Do",
                "created": _timestamp(datetime.now(timezone.utc)),
                "comments": [],
                "remote_links": [],
            }
            self._next_issue_id += 1
            self.issues[key] = issue
            return issue

    def issue(self, key: str) -> dict[str, Any] | None:
        """A deep copy of an issue with its comments and remote links."""
        with self._state:
            found = self.issues.get(key)
            return copy.deepcopy(found) if found else None

    def snapshot(self) -> dict[str, Any]:
        with self._state:
            return {
                "deployment": self.deployment,
                "issues": [copy.deepcopy(i) for _, i in sorted(self.issues.items())],
            }

    # ----------------------------------------------------------------- vendor style

    def not_found_response(self, request: Request) -> Response:
        # Jersey's wording for an unknown resource.
        return _errors(404, [f"null for uri: {self.url}{request.path}"])

    def method_not_allowed_response(self, request: Request) -> Response:
        return _errors(405, [f"Method {request.method} is not allowed for this resource."])

    def throttled_response(self) -> Response:
        reset = datetime.now(timezone.utc) + timedelta(seconds=self.retry_after_seconds)
        headers = {
            "Retry-After": str(self.retry_after_seconds),
            "X-RateLimit-Limit": str(self.rate_limit_per_minute or 100),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"),
        }
        response = _errors(429, ["Rate limit exceeded."])
        response.headers.update(headers)
        return response

    def unavailable_response(self) -> Response:
        response = _errors(503, ["Service unavailable"])
        if self.retry_after_on_503 is not None:
            response.headers["Retry-After"] = str(self.retry_after_on_503)
        return response

    def internal_error_response(self) -> Response:
        return _errors(500, ["Internal server error"])

    # ----------------------------------------------------------------- auth & lookup

    def _authenticated(self, request: Request) -> bool:
        if self.cloud:
            return basic_auth(request.headers) == (self.email, self.api_token)
        return bearer_token(request.headers) == self.personal_access_token

    def _unauthorized(self) -> Response:
        return _errors(
            401, ["You are not authenticated. Authentication required to perform this operation."]
        )

    def _guard(self, request: Request) -> Response | None:
        """Auth plus API-version availability: Data Center has no REST API v3."""
        if not self._authenticated(request):
            return self._unauthorized()
        if request.params.get("v") == "3" and not self.cloud:
            return self.not_found_response(request)
        return None

    def _find(self, request: Request) -> dict[str, Any] | None:
        """Caller holds the state lock. Accepts a key or a numeric id, like Jira."""
        key = request.params["key"]
        issue = self.issues.get(key)
        if issue is None and key.isdigit():
            issue = next((i for i in self.issues.values() if i["id"] == key), None)
        if issue is None and self.auto_create_issues and ISSUE_KEY.fullmatch(key):
            issue = self.add_issue(key, summary=f"Load-test issue {key}")
        return issue

    def _version(self, request: Request) -> str:
        return "3" if request.params.get("v") == "3" else "2"

    def _user(self) -> dict[str, Any]:
        return {
            "self": f"{self.url}/rest/api/2/user?accountId={ACCOUNT_ID}",
            "accountId": ACCOUNT_ID,
            "emailAddress": self.email,
            "displayName": "Sandbox Dev",
            "active": True,
            "timeZone": "Etc/UTC",
            "accountType": "atlassian",
        }

    # ----------------------------------------------------------------- routes

    def _server_info(self, request: Request) -> Response:
        # Readable anonymously, but wrong credentials are still refused, as on Jira.
        if "Authorization" in request.headers and not self._authenticated(request):
            return self._unauthorized()
        version = [1001, 0, 0] if self.cloud else [9, 12, 0]
        return json_response(
            200,
            {
                "baseUrl": self.url,
                "version": "1001.0.0-SNAPSHOT" if self.cloud else "9.12.0",
                "versionNumbers": version,
                "deploymentType": "Cloud" if self.cloud else "Server",
                "buildNumber": 100250 if self.cloud else 9120000,
                "serverTitle": "Sandbox Jira",
            },
        )

    def _applinks(self, request: Request) -> Response:
        if not self._authenticated(request):
            return self._unauthorized()
        return json_response(200, [])

    def _myself(self, request: Request) -> Response:
        return self._guard(request) or json_response(200, self._user())

    def _get_issue(self, request: Request) -> Response:
        denied = self._guard(request)
        if denied:
            return denied
        with self._state:
            issue = self._find(request)
            if issue is None:
                return _errors(404, [_NOT_FOUND_ISSUE])
            return json_response(
                200,
                {
                    "id": issue["id"],
                    "key": issue["key"],
                    "self": f"{self.url}/rest/api/{self._version(request)}/issue/{issue['id']}",
                    "fields": {
                        "summary": issue["summary"],
                        "status": {"name": issue["status"]},
                        "project": {"key": issue["key"].split("-")[0]},
                        "issuetype": {"name": "Bug"},
                        "created": issue["created"],
                    },
                },
            )

    def _add_comment(self, request: Request) -> Response:
        denied = self._guard(request)
        if denied:
            return denied
        version = self._version(request)
        payload = request.json
        if not isinstance(payload, dict):
            return _errors(400, ["Unexpected request body: expected a JSON object."])
        violation = self._check_schema("Comment", request)
        if violation:
            return violation
        body = payload.get("body")
        if version == "2":
            valid = isinstance(body, str)
            if valid and not str(body).strip():
                return _errors(400, [], {"comment": "Comment body can not be empty!"})
        else:
            valid = is_valid_adf(body)
        if not valid:
            return _errors(400, [], {"comment": "Comment body is not valid!"})
        visibility = payload.get("visibility")
        if visibility is not None:
            problem = self._check_visibility(visibility)
            if problem:
                return problem
        with self._state:
            issue = self._find(request)
            if issue is None:
                return _errors(404, [_NOT_FOUND_ISSUE])
            now = _timestamp(datetime.now(timezone.utc))
            comment: dict[str, Any] = {
                "id": str(self._next_comment_id),
                "body": copy.deepcopy(body),
                "api_version": version,
                "created": now,
                "updated": now,
            }
            if visibility is not None:
                comment["visibility"] = dict(visibility)
            if payload.get("properties"):
                comment["properties"] = copy.deepcopy(payload["properties"])
            self._next_comment_id += 1
            issue["comments"].append(comment)
            return json_response(201, self._comment_json(issue, comment, version))

    def _list_comments(self, request: Request) -> Response:
        denied = self._guard(request)
        if denied:
            return denied
        try:
            start = max(0, int(request.query.get("startAt", "0")))
            size = min(5000, max(0, int(request.query.get("maxResults", "50"))))
        except ValueError:
            return _errors(400, ["startAt and maxResults must be integers."])
        version = self._version(request)
        with self._state:
            issue = self._find(request)
            if issue is None:
                return _errors(404, [_NOT_FOUND_ISSUE])
            comments = issue["comments"]
            page = [self._comment_json(issue, c, version) for c in comments[start : start + size]]
            return json_response(
                200,
                {"startAt": start, "maxResults": size, "total": len(comments), "comments": page},
            )

    def _upsert_link(self, request: Request) -> Response:
        denied = self._guard(request)
        if denied:
            return denied
        payload = request.json
        if not isinstance(payload, dict):
            return _errors(400, ["Unexpected request body: expected a JSON object."])
        violation = self._check_schema("RemoteIssueLinkRequest", request)
        if violation:
            return violation
        obj = payload.get("object")
        missing = {
            name: f"'{name}' is required."
            for name in ("url", "title")
            if not isinstance(obj, dict) or not obj.get(name)
        }
        if missing:
            return _errors(400, [], missing)
        version = self._version(request)
        with self._state:
            issue = self._find(request)
            if issue is None:
                return _errors(404, [_NOT_FOUND_ISSUE])
            global_id = payload.get("globalId")
            existing = next(
                (
                    link
                    for link in issue["remote_links"]
                    if global_id is not None and link["globalId"] == global_id
                ),
                None,
            )
            fields = {
                # Upsert semantics: whatever the update leaves out becomes null.
                "globalId": global_id,
                "application": copy.deepcopy(payload.get("application")),
                "relationship": payload.get("relationship"),
                "object": copy.deepcopy(obj),
            }
            if existing is not None:
                existing.update(fields)
                status, link = 200, existing
            else:
                link = {"id": self._next_link_id, **fields}
                self._next_link_id += 1
                issue["remote_links"].append(link)
                status = 201
            self_url = f"{self.url}/rest/api/{version}/issue/{issue['key']}/remotelink/{link['id']}"
            return json_response(status, {"id": link["id"], "self": self_url})

    def _list_links(self, request: Request) -> Response:
        denied = self._guard(request)
        if denied:
            return denied
        wanted = request.query.get("globalId")
        with self._state:
            issue = self._find(request)
            if issue is None:
                return _errors(404, [_NOT_FOUND_ISSUE])
            links = [
                self._link_json(issue, link, self._version(request))
                for link in issue["remote_links"]
                if wanted is None or link["globalId"] == wanted
            ]
        if wanted is not None:
            # With ?globalId= Jira answers with the single link, not a list.
            return json_response(200, links[0]) if links else _errors(404, ["No link found."])
        return json_response(200, links)

    def _get_link(self, request: Request) -> Response:
        denied = self._guard(request)
        if denied:
            return denied
        with self._state:
            issue = self._find(request)
            if issue is None:
                return _errors(404, [_NOT_FOUND_ISSUE])
            for link in issue["remote_links"]:
                if str(link["id"]) == request.params["link"]:
                    return json_response(200, self._link_json(issue, link, self._version(request)))
        return _errors(404, ["No link found."])

    # ----------------------------------------------------------------- internals

    def _check_schema(self, name: str, request: Request) -> Response | None:
        if not self.validate_openapi:
            return None
        problems = validate(request.json, SCHEMAS[name])
        if not problems:
            return None
        with self._state:
            self.schema_violations.append(
                {"operation": name, "path": request.path, "problems": problems}
            )
        errors: dict[str, str] = {}
        if name == "RemoteIssueLinkRequest":
            # Jira also names the missing required object fields, as in its documented example.
            obj = request.json.get("object") if isinstance(request.json, dict) else None
            for field in ("url", "title"):
                if not isinstance(obj, dict) or field not in obj:
                    errors[field] = f"'{field}' is required."
        return _errors(400, problems, errors)

    def _check_visibility(self, visibility: Any) -> Response | None:
        kind = visibility.get("type") if isinstance(visibility, dict) else None
        value = visibility.get("value") if isinstance(visibility, dict) else None
        if kind not in ("role", "group") or not isinstance(value, str):
            return _errors(400, [], {"visibility": "Invalid visibility: type must be role/group."})
        if kind == "role" and value not in self.roles:
            return _errors(
                400,
                [],
                {"commentLevel": f"You are currently not a member of the project role: {value}."},
            )
        if kind == "group" and value not in self.groups:
            return _errors(
                400, [], {"commentLevel": f"You are currently not a member of the group: {value}."}
            )
        return None

    def _comment_json(
        self, issue: dict[str, Any], comment: dict[str, Any], version: str
    ) -> dict[str, Any]:
        body = comment["body"]
        # Jira converts between representations: v2 readers get wiki text, v3 readers get ADF.
        if version == "2" and comment["api_version"] == "3":
            body = adf_to_wiki(body)
        elif version == "3" and comment["api_version"] == "2":
            body = wiki_to_adf(body)
        data: dict[str, Any] = {
            "self": f"{self.url}/rest/api/{version}/issue/{issue['id']}/comment/{comment['id']}",
            "id": comment["id"],
            "author": self._user(),
            "body": copy.deepcopy(body),
            "updateAuthor": self._user(),
            "created": comment["created"],
            "updated": comment["updated"],
            "jsdPublic": True,
        }
        if "visibility" in comment:
            data["visibility"] = dict(comment["visibility"])
        return data

    def _link_json(
        self, issue: dict[str, Any], link: dict[str, Any], version: str
    ) -> dict[str, Any]:
        return {
            "id": link["id"],
            "self": f"{self.url}/rest/api/{version}/issue/{issue['key']}/remotelink/{link['id']}",
            "globalId": link["globalId"],
            "application": copy.deepcopy(link["application"]),
            "relationship": link["relationship"],
            "object": copy.deepcopy(link["object"]),
        }
