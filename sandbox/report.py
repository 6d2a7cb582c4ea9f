"""``python -m sandbox.report``: one bug report sent through ``serve``, then its note awaited.

The compose file's ``sandbox`` profile runs it once the stack is up, so that ``docker compose
up`` shows a replay landing on a sandbox ticket. It reads the variables the stack has: the
intake's token, and the sandbox's Zendesk URL and credentials; it exits 0 once the note is
there, 1 if it is not within ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable

import requests

#: A ticket the sandbox seeds (sandbox.app.DEMO_TICKETS) and a session it has a recording of.
TICKET = 101
SESSION = "compose-sandbox-session"


def _until(what: str, timeout: float, check: Callable[[], str | None]) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except requests.RequestException:
            found = None
        if found:
            return found
        time.sleep(0.5)
    raise TimeoutError(f"no {what} after {timeout:g} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.report", description=__doc__)
    parser.add_argument("--intake-url", default="http://serve:8080")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    token = os.environ["REPLAY_ATTACH_INTAKE_TOKENS"].split(",")[0].strip()
    zendesk = os.environ["ZENDESK_URL"].rstrip("/")
    auth = (os.environ["ZENDESK_EMAIL"] + "/token", os.environ["ZENDESK_API_TOKEN"])

    def ready() -> str | None:
        answer = requests.get(f"{args.intake_url}/readyz", timeout=2)
        return "ready" if answer.status_code == 200 else None

    def note() -> str | None:
        answer = requests.get(
            f"{zendesk}/api/v2/tickets/{TICKET}/comments.json", auth=auth, timeout=5
        )
        for comment in answer.json().get("comments", []) if answer.ok else []:
            link = re.search(r'href="([^"]*/embedded/[^"]*)"', str(comment.get("html_body")))
            if link and SESSION in str(comment.get("body")):
                return link.group(1)
        return None

    try:
        _until("answer from serve's /readyz", args.timeout, ready)
        sent = requests.post(
            f"{args.intake_url}/v1/bug-reports",
            json={"session_id": SESSION, "zendesk_ticket": TICKET},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        print(f"bug report sent to {args.intake_url}: {sent.status_code} {sent.text.strip()}")
        if sent.status_code != 202:
            return 1
        link = _until(f"note on Zendesk ticket {TICKET}", args.timeout, note)
    except TimeoutError as exc:
        print(f"sandbox report: {exc}", file=sys.stderr)
        return 1
    print(f"Zendesk ticket {TICKET} now has the replay of {SESSION}: {link}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
