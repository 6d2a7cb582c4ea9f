"""A fake Jira (Cloud or Data Center): issues, comments (v2 wiki text / v3 ADF) and remote links.

An issue may belong to a Jira Service Management project (`add_issue(..., service_desk=True)`):
its comments are public (customer-visible) unless posted with the `sd.public.comment` property
saying `{"internal": true}`.

Once `send_webhooks` is called, it also fires an admin webhook's signed events, for issues that
carry a session id: when such an issue is created, and when the session field is set.

This module holds the issue store and the routes, but for the comment routes (add, list), in
jira_comments.py, and the remote-link routes (upsert, list, get, delete), in jira_links.py.
Request bodies of the two write operations are checked by jira_validation.py (against
Atlassian's published schemas, among others); answers are rendered in Jira's shape by
jira_answers.py; ADF handling is in jira_adf.py; webhook bodies and signatures are in
jira_webhooks.py.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from sandbox.doubles import jira_answers as answers
from sandbox.doubles.auth import basic_auth, bearer_token
from sandbox.doubles.base import Double
from sandbox.doubles.jira_adf import adf_link
from sandbox.doubles.jira_answers import NOT_FOUND_ISSUE, error
from sandbox.doubles.jira_comments import CommentRoutes
from sandbox.doubles.jira_links import RemoteLinkRoutes
from sandbox.doubles.jira_validation import SCHEMAS, schema_error, validate
from sandbox.doubles.jira_webhooks import SESSION_FIELD, AdminWebhook
from sandbox.doubles.messages import Request, Response, json_response
from sandbox.doubles.posthog_recordings import CUSTOMER_EMAIL
from sandbox.doubles.webhooks import WebhookSender

# `adf_link` is imported from here by the console.
__all__ = ["JiraDouble", "adf_link"]

ISSUE_KEY = re.compile(r"[A-Z][A-Z0-9]+-\d+")
_API = r"/rest/api/(?P<v>2|3|latest)"
_ISSUE = _API + r"/issue/(?P<key>[^/]+)"


class JiraDouble(CommentRoutes, RemoteLinkRoutes, Double):
    EDGE_HEADERS = answers.EDGE_HEADERS

    def __init__(
        self,
        email: str = "dev@sandbox.test",
        api_token: str = "jira_sandbox_token",  # noqa: S107 (a fake server's fake credential)
        personal_access_token: str = "jira_sandbox_pat",  # noqa: S107
        deployment: str = "cloud",
        auto_create_issues: bool = False,
        validate_openapi: bool = True,
        port: int = 0,
        context_path: str = "",
    ) -> None:
        if deployment not in ("cloud", "datacenter"):
            raise ValueError("deployment must be 'cloud' or 'datacenter'")
        super().__init__(port=port)
        #: Where a Data Center installation lives under its host (``/jira``): every path
        #: hangs off it, and a request outside it gets the web server's 404.
        self.context_path = context_path.rstrip("/")
        self.email = email
        self.api_token = api_token
        self.personal_access_token = personal_access_token
        self.deployment = deployment
        self.auto_create_issues = auto_create_issues
        self.validate_openapi = validate_openapi
        self.retry_after_seconds = 1
        # Jira may or may not send Retry-After with a 503; None leaves it out.
        self.retry_after_on_503: int | None = None
        #: Jira Cloud users may hide their email address: the API then leaves
        #: `emailAddress` out of every user it shows (the reporter's included).
        self.hide_emails = False
        self.roles = {"Administrators", "Developers", "Users", "Service Desk Team"}
        self.groups = {"jira-software-users", "jira-administrators", "site-admins"}
        self.issues: dict[str, dict[str, Any]] = {}
        # One entry per rejected request body: {"operation", "path", "problems"}.
        self.schema_violations: list[dict[str, Any]] = []
        self._state = threading.RLock()
        self._next_issue_id = 10000
        self._next_comment_id = 10100
        self._next_link_id = 10500
        self._next_changelog_id = 10700
        #: The admin webhook, once `send_webhooks` is called; None fires nothing.
        self.webhook: AdminWebhook | None = None
        #: Deliveries of that webhook, with every attempt recorded.
        self.webhooks = WebhookSender(name="JiraDouble webhooks")

        self.route("GET", r"/rest/api/(?:2|latest)/serverInfo", self._server_info)
        self.route("GET", r"/rest/applinks/latest/listApplicationlinks", self._applinks)
        self.route("GET", _API + r"/myself", self._myself)
        self.route("POST", _API + r"/issue", self._create_issue)
        self.route("GET", _ISSUE, self._get_issue)
        self.route("GET", _ISSUE + r"/comment", self._list_comments)
        self.route("POST", _ISSUE + r"/comment", self._add_comment)
        self.route("GET", _ISSUE + r"/remotelink", self._list_links)
        self.route("POST", _ISSUE + r"/remotelink", self._upsert_link)
        self.route("DELETE", _ISSUE + r"/remotelink", self._delete_link_by_global_id)
        self.route("GET", _ISSUE + r"/remotelink/(?P<link>\d+)", self._get_link)
        self.route("DELETE", _ISSUE + r"/remotelink/(?P<link>\d+)", self._delete_link)

    @property
    def url(self) -> str:
        """The base URL clients are configured with (the context path included)."""
        return super().url + self.context_path

    def _dispatch(self, request: Request) -> Response:
        if not self.context_path:
            return super()._dispatch(request)
        if not request.path.startswith(self.context_path + "/"):
            return self.not_found_response(request)
        inner = dataclasses.replace(request, path=request.path[len(self.context_path) :])
        return super()._dispatch(inner)

    @property
    def cloud(self) -> bool:
        return self.deployment == "cloud"

    def stop(self) -> None:
        super().stop()
        self.webhooks.stop()

    # ----------------------------------------------------------------- test helpers

    def send_webhooks(self, url: str, secret: str, session_field: str = SESSION_FIELD) -> None:
        """From now on, POST a signed event to `url` when an issue is created with custom field
        `session_field` set (jira:issue_created), and when `set_session_field` sets it
        (jira:issue_updated)."""
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a webhook URL must be http:// or https://, not {url!r}")
        self.webhook = AdminWebhook(url, secret, session_field)

    def add_issue(
        self,
        key: str,
        summary: str = "Sandbox issue",
        fields: dict[str, Any] | None = None,
        *,
        service_desk: bool = False,
        reporter_email: str = CUSTOMER_EMAIL,
    ) -> dict[str, Any]:
        """Create (or replace) an issue. `fields` are custom fields ({"customfield_10042":
        "<session id>"}); the webhook's session field fires jira:issue_created. A
        `service_desk` issue is in a Jira Service Management project (`projectTypeKey`
        "service_desk", else "software"): its comments reach the customer unless internal.
        Its reporter is the user with `reporter_email` (the sandbox's customer by default)."""
        if not ISSUE_KEY.fullmatch(key):
            raise ValueError(f"not an issue key: {key!r}")
        with self._state:
            issue: dict[str, Any] = {
                "id": str(self._next_issue_id),
                "key": key,
                "summary": summary,
                "status": "To Do",
                "created": answers.timestamp(datetime.now(timezone.utc)),
                "custom_fields": dict(fields or {}),
                "service_desk": service_desk,
                "reporter_email": reporter_email,
                "comments": [],
                "remote_links": [],
            }
            self._next_issue_id += 1
            self.issues[key] = issue
            if self._session_id(issue) is not None:
                self._fire_webhook(issue, None)
            return issue

    def set_session_field(self, key: str, session_id: str) -> dict[str, Any]:
        """Set the session field of issue `key` (the webhook's, else customfield_10042), as a
        developer editing the issue would; fires jira:issue_updated with its changelog when
        the value changes to a non-empty one. Raises KeyError for an unknown issue."""
        field = self.webhook.session_field if self.webhook else SESSION_FIELD
        with self._state:
            issue = self.issues[key]
            previous = issue["custom_fields"].get(field)
            issue["custom_fields"][field] = session_id
            # Jira logs no change (and reports none) when the value stays the same, and the
            # webhook's JQL filter leaves out an issue whose session field is empty.
            if session_id != previous and session_id:
                self._fire_webhook(issue, (previous, session_id))
            return copy.deepcopy(issue)

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
        return answers.not_found(self.url, request.path)

    def method_not_allowed_response(self, request: Request) -> Response:
        return answers.method_not_allowed(request.method)

    def throttled_response(self) -> Response:
        return answers.throttled(self.retry_after_seconds, self.rate_limit_per_minute)

    def unavailable_response(self) -> Response:
        return answers.unavailable(self.retry_after_on_503)

    def internal_error_response(self) -> Response:
        return answers.internal_error()

    # ----------------------------------------------------------------- auth & lookup

    def _authenticated(self, request: Request) -> bool:
        if self.cloud:
            return basic_auth(request.headers) == (self.email, self.api_token)
        return bearer_token(request.headers) == self.personal_access_token

    def _guard(self, request: Request) -> Response | None:
        """Auth plus API-version availability: Data Center has no REST API v3."""
        if not self._authenticated(request):
            return answers.unauthorized()
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

    # ----------------------------------------------------------------- routes

    def _server_info(self, request: Request) -> Response:
        # Readable anonymously, but wrong credentials are still refused, as on Jira.
        if "Authorization" in request.headers and not self._authenticated(request):
            return answers.unauthorized()
        return json_response(200, answers.server_info(self.url, self.cloud))

    def _applinks(self, request: Request) -> Response:
        if not self._authenticated(request):
            return answers.unauthorized()
        return json_response(200, [])

    def _myself(self, request: Request) -> Response:
        return self._guard(request) or json_response(200, answers.user_json(self.url, self.email))

    def _get_issue(self, request: Request) -> Response:
        denied = self._guard(request)
        if denied:
            return denied
        with self._state:
            issue = self._find(request)
            if issue is None:
                return error(404, [NOT_FOUND_ISSUE])
            body = answers.issue_json(self.url, issue, self._version(request))
            body["fields"]["reporter"] = self._reporter_json(issue)
            return json_response(200, body)

    def _reporter_json(self, issue: dict[str, Any]) -> dict[str, Any]:
        reporter = answers.user_json(self.url, issue["reporter_email"])
        reporter["displayName"] = issue["reporter_email"].partition("@")[0]
        if self.hide_emails:
            del reporter["emailAddress"]
        return reporter

    def _create_issue(self, request: Request) -> Response:
        """POST /issue: a project's next issue, so that an issue created with the session
        field fires the webhook as a real one would."""
        denied = self._guard(request)
        if denied:
            return denied
        payload = request.json
        fields = payload.get("fields") if isinstance(payload, dict) else None
        project = fields.get("project") if isinstance(fields, dict) else None
        key = project.get("key") if isinstance(project, dict) else None
        if not isinstance(fields, dict) or not isinstance(key, str) or not key.isupper():
            return error(400, [], {"project": "Specify a valid project ID or key"})
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            return error(400, [], {"summary": "You must specify a summary of the issue."})
        custom = {name: value for name, value in fields.items() if name.startswith("customfield_")}
        # The sandbox names a reporter by email (Jira by accountId); without one, the
        # sandbox's customer, as a service desk portal files the issue for its customer.
        reporter = fields.get("reporter")
        email = reporter.get("emailAddress") if isinstance(reporter, dict) else None
        with self._state:
            taken = [int(k.rpartition("-")[2]) for k in self.issues if k.startswith(key + "-")]
            issue = self.add_issue(
                f"{key}-{max(taken, default=0) + 1}",
                summary,
                custom,
                reporter_email=email if isinstance(email, str) and email else CUSTOMER_EMAIL,
            )
        body = {
            "id": issue["id"],
            "key": issue["key"],
            "self": f"{self.url}/rest/api/2/issue/{issue['id']}",
        }
        return json_response(201, body)

    # ----------------------------------------------------------------- internals

    def _session_id(self, issue: dict[str, Any]) -> str | None:
        if self.webhook is None:
            return None
        value = issue["custom_fields"].get(self.webhook.session_field)
        return str(value) if value not in (None, "") else None

    def _fire_webhook(self, issue: dict[str, Any], change: tuple[Any, str] | None) -> None:
        """Queue jira:issue_created (`change` None) or jira:issue_updated for the session
        field's `change` (previous, new). Caller holds the state lock."""
        webhook = self.webhook
        if webhook is None:
            return
        rendered = answers.issue_json(self.url, issue, "2")
        user = answers.user_json(self.url, self.email)
        now_ms = int(time.time() * 1000)
        if change is None:
            body = webhook.issue_created(rendered, user, now_ms)
        else:
            previous, value = change
            changelog_id = str(self._next_changelog_id)
            self._next_changelog_id += 1
            text = None if previous in (None, "") else str(previous)
            body = webhook.session_field_changed(rendered, user, now_ms, changelog_id, text, value)
        # One identifier per event, kept by its retries: the receiver's dedupe key.
        headers = webhook.headers(body, str(uuid.uuid4()))
        self.webhooks.post(webhook.url, body, headers, retry_header="X-Atlassian-Webhook-Retry")

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
        return schema_error(name, request.json, problems)
