"""The consent-check API as an integrating system meets it: a real WSGI server (gunicorn, two
sync workers) on 127.0.0.1, driven by the open-loop generator in another process
(``benchmarks/loadgen.py``), over the synthetic hospital.

DESIGN.md: a single check p50 <= 5 ms and p99 <= 15 ms at a steady 200 requests/s; a batch of
1,000 studies at >= 20,000 decisions/s. Every check writes its ledger event, as in production.
The server runs with the benchmark's database and without Redis (the per-process cache
counts the rate limit), and with the API rate limit raised (``RATE_API``): the benchmark's
one token sends more than one integrating system's share on purpose.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import Measurement

P50_MS, P99_MS = 5.0, 15.0
BATCH_TARGET = 20_000.0
URL_PATH = "/api/v1/consent-checks"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _token(username: str = "bench-router") -> str:
    from django.contrib.auth import get_user_model

    from access.grants import role_grant
    from access.models import TokenScope
    from access.roles import Role
    from access.tokens import api_token_create
    from audit.ledger import Actor

    actor = Actor.system("bench")
    user = get_user_model().objects.create(username=username)
    role_grant(user=user, role=Role.STAFF, actor=actor)
    _, secret = api_token_create(owner=user, name="bench router",
                                 scopes=[TokenScope.CONSENT_READ], actor=actor)
    return secret


def _loadgen(*args: object) -> dict:
    done = subprocess.run(  # noqa: S603 - this interpreter running our own module
        [sys.executable, "-m", "benchmarks.loadgen", *map(str, args)],
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _wait_until_serving(port: int, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("gunicorn exited before serving")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start serving")


def run(work_dir: Path, *, rate: int = 200, seconds: int = 20) -> list[Measurement]:
    from registry.models import ImagingStudy

    token = _token()
    uid_file = work_dir / "uids.txt"
    # Studies spread over the hospital, not its first rows only.
    uids = list(ImagingStudy.objects.order_by("?").values_list("study_uid", flat=True)[:20_000])
    uid_file.write_text("\n".join(uids) + "\n")
    port = _free_port()
    env = {**os.environ, "SECURE_SSL_REDIRECT": "false", "RATE_API": "100000000/m",
           "DEBUG": "false"}
    server = subprocess.Popen(  # noqa: S603 - this interpreter running gunicorn
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--workers", "2",
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}{URL_PATH}"
    try:
        _wait_until_serving(port, server)
        print("  warming up both workers ...", file=sys.stderr, flush=True)
        warm = _loadgen("single", url, token, uid_file, 50, 4)
        if warm["statuses"] != {"200": warm["sent"]}:
            raise RuntimeError(f"the check API did not answer 200: {warm['statuses']}")
        print(f"  single checks at {rate}/s for {seconds} s ...", file=sys.stderr, flush=True)
        single = _loadgen("single", url, token, uid_file, rate, seconds)
        print("  batches of 1,000 and 10,000 ...", file=sys.stderr, flush=True)
        batch_1k = _loadgen("batch", url, token, uid_file, 1000, 20, 2)
        batch_10k = _loadgen("batch", url, token, uid_file, 10_000, 4, 2)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    shown = (f"{single['sent']:,} requests due at {rate}/s over {single['seconds']:.0f} s, "
             f"answered {single['answered_per_s']:,.0f}/s; statuses {single['statuses']}; "
             f"p90 {single['p90_ms']:.1f} ms, max {single['max_ms']:.0f} ms")
    return [
        Measurement(f"single check p50 at {rate} req/s (gunicorn, 2)", single["p50_ms"], "ms",
                    target=P50_MS, at_most=True, detail=shown),
        Measurement(f"single check p99 at {rate} req/s", single["p99_ms"], "ms",
                    target=P99_MS, at_most=True),
        Measurement("batch check over HTTP, 1,000 UIDs", batch_1k["decisions_per_s"],
                    "decisions/s", target=BATCH_TARGET,
                    detail=f"{batch_1k['requests']} requests, 2 at a time, "
                           f"statuses {batch_1k['statuses']}"),
        Measurement("batch check over HTTP, 10,000 UIDs", batch_10k["decisions_per_s"],
                    "decisions/s",
                    detail=f"{batch_10k['requests']} requests, 2 at a time, "
                           f"statuses {batch_10k['statuses']}"),
    ]
