"""Benchmark: CPU per request of the HTTP clients replay-attach could send its writes with.

One Zendesk note (PUT /api/v2/tickets/{id}.json, a JSON body, basic auth) sent
again and again to the sandbox's Zendesk double, running in another process so
that only the client's CPU is counted (``time.thread_time`` of the sending
thread). Prints each client's CPU per request and its ratio to
``requests.Session``, measured in the same run; medians of several rounds.

    .venv/bin/python bench/http_clients.py [--requests 3000] [--rounds 5]

The job's hot path is ``integrations.http.JsonApi``: urllib3 on a pool set
up by requests' ``HTTPAdapter``. The ``HTTPAdapter.send`` row is the
alternative it was measured against (a request prepared by requests per call,
sent by the adapter), and the other rows are references.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import urllib3  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402
from requests.auth import HTTPBasicAuth  # noqa: E402

from integrations.http import JsonApi  # noqa: E402

NOTE = {
    "ticket": {
        "comment": {
            "html_body": "<p><strong>PostHog session replay</strong></p>" * 4,
            "body": "PostHog session replay " * 8,
            "public": False,
        }
    }
}


def serve(queue: Queue[dict[str, str]]) -> None:
    from sandbox.app import Sandbox

    with Sandbox(latency=0, auto_create=True) as box:
        queue.put(box.env())
        time.sleep(24 * 3600)


def cpu_per_request(send: Callable[[], int], count: int) -> float:
    for _ in range(min(200, count)):  # warm up: connection, caches
        assert send() == 200
    start = time.thread_time()
    for _ in range(count):
        send()
    return (time.thread_time() - start) / count


def clients(env: dict[str, str]) -> dict[str, Callable[[], int]]:
    base = env["ZENDESK_URL"].rstrip("/")
    path = "/api/v2/tickets/4242.json"
    auth = HTTPBasicAuth(f"{env['ZENDESK_EMAIL']}/token", env["ZENDESK_API_TOKEN"])

    session = requests.Session()
    session.trust_env = False

    def with_session() -> int:
        return session.put(base + path, json=NOTE, auth=auth, timeout=(3, 10)).status_code

    url = urllib3.util.parse_url(base)
    assert url.host is not None
    pool = urllib3.HTTPConnectionPool(url.host, url.port, maxsize=1, retries=False)
    headers: dict[str, Any] = {
        **urllib3.make_headers(
            basic_auth=f"{env['ZENDESK_EMAIL']}/token:{env['ZENDESK_API_TOKEN']}"
        ),
        "Content-Type": "application/json",
        "Accept": "application/json",
    }

    def with_urllib3() -> int:
        response = pool.urlopen(
            "PUT",
            path,
            body=json.dumps(NOTE).encode(),
            headers=headers,
            redirect=False,
            timeout=urllib3.Timeout(connect=3, read=10),
        )
        return response.status

    # The standard library alone, kept alive: what urllib3 and requests build on.
    stdlib = http.client.HTTPConnection(url.host, url.port, timeout=10)

    def with_http_client() -> int:
        stdlib.request("PUT", path, body=json.dumps(NOTE).encode(), headers=headers)
        response = stdlib.getresponse()
        response.read()
        return response.status

    # requests without a Session: a request prepared per call, sent by the adapter.
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
    adapter_headers = {"Accept": "application/json", "User-Agent": "bench"}

    def with_adapter_send() -> int:
        request = requests.Request(
            "PUT", base + path, headers=adapter_headers, json=NOTE, auth=auth
        )
        response = adapter.send(request.prepare(), timeout=(3, 10), verify=True, proxies={})
        response.content  # noqa: B018  # read whole, so the connection is reused
        return response.status_code

    api = JsonApi(base, (3, 10), auth=auth, system="Zendesk")

    def with_json_api() -> int:
        return api.send("PUT", base + path, NOTE).status_code

    return {
        "requests.Session (zenpy, jira)": with_session,
        "requests HTTPAdapter.send": with_adapter_send,
        "urllib3 connection pool": with_urllib3,
        "http.client, kept alive": with_http_client,
        "JsonApi, urllib3 (hot path)": with_json_api,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000, help="requests per client per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; medians are printed")
    args = parser.parse_args()

    queue: Queue[dict[str, str]] = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(queue,), daemon=True)
    server.start()
    try:
        candidates = clients(queue.get(timeout=30))
        figures: dict[str, list[float]] = {name: [] for name in candidates}
        for _ in range(args.rounds):
            for name, send in candidates.items():  # interleaved: drift hits all alike
                figures[name].append(cpu_per_request(send, args.requests))
    finally:
        server.terminate()
    baseline = statistics.median(figures["requests.Session (zenpy, jira)"])
    print(
        f"CPU per request, median of {args.rounds} rounds of {args.requests} (client thread only)"
    )
    for name, values in figures.items():
        median = statistics.median(values)
        print(f"  {name:<32} {median * 1e6:6.0f} us   {median / baseline:5.2f}x requests.Session")


if __name__ == "__main__":
    main()
