#!/usr/bin/env python3
"""Peak server RSS while a registry receives and then serves one large blob.

    big_blob.py URL --server-pid PID [--size-mib 2048] [--user U --password P]

The blob is a 64 MiB random block repeated (cheap to make, incompressible enough), pushed as one
streamed monolithic PUT and then pulled back (sha256-checked), never held in memory by this
client. Prints one JSON line: MiB/s both ways and the server's peak RSS in each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import threading
import time

import aiohttp

MiB = 1 << 20


def block() -> bytes:
    return hashlib.sha256(b"seed").digest() * (64 * MiB // 32)


class Peak:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kib, self._stop = pid, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in [self.pid, *_children(self.pid)]:
                try:
                    with open(f"/proc/{pid}/status") as f:
                        kib = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))  # type: ignore[union-attr]
                    self.peak_kib = max(self.peak_kib, kib)
                except (OSError, AttributeError):
                    pass
            time.sleep(0.05)

    def __enter__(self) -> Peak:
        self._t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._t.join()


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


async def auth_headers(
    s: aiohttp.ClientSession, url: str, repo: str, user: str | None, password: str | None
) -> dict[str, str]:
    async with s.get(f"{url}/v2/") as r:
        challenge = r.headers.get("WWW-Authenticate", "")
    if not challenge.lower().startswith("bearer"):
        return {}
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm")
    params["scope"] = f"repository:{repo}:pull,push"
    basic = base64.b64encode(f"{user or ''}:{password or ''}".encode()).decode()
    async with s.get(realm, params=params, headers={"Authorization": f"Basic {basic}"}) as r:
        token = (await r.json())["token"]
    return {"Authorization": f"Bearer {token}"}


async def main(a: argparse.Namespace) -> None:
    data, n = block(), a.size_mib // 64
    h = hashlib.sha256()
    for _ in range(n):
        h.update(data)
    digest = "sha256:" + h.hexdigest()
    size, repo, url = n * len(data), "bench/bigblob", a.url.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        hdr = await auth_headers(s, url, repo, a.user, a.password)

        async def body():  # type: ignore[no-untyped-def]
            for _ in range(n):
                for off in range(0, len(data), MiB):
                    yield data[off : off + MiB]

        with Peak(a.server_pid) as push_peak:
            t = time.perf_counter()
            async with s.post(f"{url}/v2/{repo}/blobs/uploads/", headers=hdr) as r:
                loc = r.headers["Location"]
            loc = loc if loc.startswith("http") else url + loc
            sep = "&" if "?" in loc else "?"
            async with s.put(
                f"{loc}{sep}digest={digest}",
                data=body(),
                headers={
                    **hdr,
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(size),
                },
            ) as r:
                assert r.status == 201, (r.status, await r.text())
            push_s = time.perf_counter() - t
        with Peak(a.server_pid) as pull_peak:
            t = time.perf_counter()
            got, hh = 0, hashlib.sha256()
            async with s.get(f"{url}/v2/{repo}/blobs/{digest}", headers=hdr) as r:
                assert r.status == 200, r.status
                async for chunk in r.content.iter_chunked(MiB):
                    hh.update(chunk)
                    got += len(chunk)
            pull_s = time.perf_counter() - t
        assert got == size and "sha256:" + hh.hexdigest() == digest, "pulled blob differs"
    print(
        json.dumps(
            {
                "url": a.url,
                "label": a.label,
                "size_mib": size // MiB,
                "push_mib_s": round(size / MiB / push_s, 1),
                "pull_mib_s": round(size / MiB / pull_s, 1),
                "push_peak_rss_mib": round(push_peak.peak_kib / 1024, 1),
                "pull_peak_rss_mib": round(pull_peak.peak_kib / 1024, 1),
                "load1": os.getloadavg()[0],
            }
        )
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--size-mib", type=int, default=2048)
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--label", default="")
    asyncio.run(main(p.parse_args()))
