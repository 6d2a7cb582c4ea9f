"""PostHog's answers, body and headers: the error shape of its API (Django REST framework's) and
its wording, and the public replay page. Pure functions: the double decides which to give."""

from __future__ import annotations

import html

from sandbox.doubles.messages import Response, html_response, json_response

# What a PostHog Cloud API answer carries besides its body (values typical, not copied).
EDGE_HEADERS = (
    ("Vary", "Accept, Origin, Cookie"),
    ("Allow", "GET, PATCH, HEAD, OPTIONS"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
    ("X-PostHog-Request-Id", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
    ("Via", "1.1 google"),
    ("Alt-Svc", 'h3=":443"; ma=2592000,h3-29=":443"; ma=2592000'),
)


def error(status: int, type_: str, code: str, detail: str, attr: str | None = None) -> Response:
    # DRF exception shape used by every PostHog API error.
    return json_response(status, {"type": type_, "code": code, "detail": detail, "attr": attr})


def not_found() -> Response:
    return error(404, "invalid_request", "not_found", "Not found.")


def method_not_allowed(method: str) -> Response:
    return error(405, "invalid_request", "method_not_allowed", f'Method "{method}" not allowed.')


def throttled(wait: int) -> Response:
    # DRF's wording (singular for 1) and, unlike Zendesk/Jira, no Retry-After header:
    # the wait has to be parsed out of `detail`.
    unit = "second" if wait == 1 else "seconds"
    return error(
        429,
        "throttled_error",
        "throttled",
        f"Request was throttled. Expected available in {wait} {unit}.",
    )


def server_error(status: int) -> Response:
    """A 500 or a 503: PostHog words both alike."""
    return error(status, "server_error", "error", "A server error occurred.")


def invalid_key() -> Response:
    return error(
        401,
        "authentication_error",
        "authentication_failed",
        "Personal API key found in request Authorization header is invalid.",
    )


def permission_denied(detail: str) -> Response:
    return error(403, "authentication_error", "permission_denied", detail)


def public_page(session_id: str | None) -> Response:
    """`/shared/{token}` and `/embedded/{token}`: the replay of `session_id`, or (None) the
    page of a token that is not shared or has expired."""
    if session_id is None:
        return html_response(
            404,
            "<!doctype html><html><head><title>Not found</title></head>"
            "<body><h1>This replay is not shared or the link has expired.</h1></body></html>",
        )
    sid = html.escape(session_id)
    return html_response(
        200,
        "<!doctype html><html><head><title>Session replay</title></head><body>"
        f'<h1>Session replay</h1><p>Recording <code id="session-id">{sid}</code></p>'
        '<div class="player">[sandbox player]</div></body></html>',
    )
