"""An open-loop HTTP load generator, run as its own process beside the server it measures.

``python -m benchmarks.loadgen single URL TOKEN UIDFILE RATE SECONDS``: one consent check per
request, sent on a fixed schedule (request i at start + i / RATE) whatever the server's pace:
a slow answer never delays the next request, so queueing shows up in the latencies instead of
hiding (no "coordinated omission"). Latency is measured from the moment a request was due,
not from when it was sent.

``python -m benchmarks.loadgen batch URL TOKEN UIDFILE SIZE REQUESTS CONCURRENCY``: batches of
SIZE UIDs, CONCURRENCY at a time, as fast as the server answers.

Prints one JSON line. asyncio and raw HTTP/1.1 (one connection per request, as gunicorn's
sync workers close each one), so the generator itself stays cheap next to the server.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from urllib.parse import urlsplit


def _request(url: str, token: str, body: bytes) -> bytes:
    parts = urlsplit(url)
    return (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


async def _send(host: str, port: int, payload: bytes) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(payload)
        await writer.drain()
        response = await reader.read()  # the server closes after the answer
    finally:
        writer.close()
    status = response.split(b" ", 2)[1] if response.startswith(b"HTTP/") else b"0"
    return int(status)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def single(url: str, token: str, uids: list[str], rate: float, seconds: float) -> dict:
    parts = urlsplit(url)
    total = int(rate * seconds)
    payloads = [_request(url, token, json.dumps({
        "purpose": "ai-training", "study_instance_uids": [uids[i % len(uids)]]}).encode())
        for i in range(total)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter() + 0.2

    async def one(i: int) -> None:
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        try:
            status = await _send(parts.hostname, parts.port, payloads[i])
        except OSError:
            status = 0
        latencies.append((time.perf_counter() - due) * 1000)
        statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(one(i) for i in range(total)))
    elapsed = time.perf_counter() - start
    return {"mode": "single", "sent": total, "rate": rate, "seconds": elapsed,
            "answered_per_s": total / elapsed, "statuses": statuses,
            "p50_ms": _percentile(latencies, 0.50), "p90_ms": _percentile(latencies, 0.90),
            "p99_ms": _percentile(latencies, 0.99), "max_ms": max(latencies),
            "mean_ms": statistics.fmean(latencies)}


async def batch(url: str, token: str, uids: list[str], size: int, requests: int,
                concurrency: int) -> dict:
    parts = urlsplit(url)
    payloads = [_request(url, token, json.dumps({
        "purpose": "ai-training",
        "study_instance_uids": [uids[(i * size + k) % len(uids)] for k in range(size)],
    }).encode()) for i in range(requests)]
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for payload in payloads:
        queue.put_nowait(payload)

    async def worker() -> None:
        while not queue.empty():
            payload = queue.get_nowait()
            status = await _send(parts.hostname, parts.port, payload)
            statuses[status] = statuses.get(status, 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {"mode": "batch", "size": size, "requests": requests, "seconds": elapsed,
            "decisions_per_s": size * requests / elapsed, "statuses": statuses}


def main(argv: list[str]) -> None:
    mode, url, token, uid_file, *rest = argv
    with open(uid_file) as handle:
        uids = [line.strip() for line in handle if line.strip()]
    if mode == "single":
        found = asyncio.run(single(url, token, uids, float(rest[0]), float(rest[1])))
    elif mode == "batch":
        found = asyncio.run(batch(url, token, uids, int(rest[0]), int(rest[1]), int(rest[2])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(found))


if __name__ == "__main__":
    main(sys.argv[1:])
