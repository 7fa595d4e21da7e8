#!/usr/bin/env python3
"""The request floor of a no-op re-sync: the requests ``seawall sync`` makes when nothing changed
(catalog, tag list and one manifest ``HEAD`` per tag at the source; tag list per repository at
the destination, whose tags the ledger vouches for), sent with bare aiohttp on uvloop, nothing
else. Time it as a whole process to compare with ``seawall sync`` (same start-up for aiohttp):

    /usr/bin/time -f %e bench/noop_floor.py http://127.0.0.1:5101 http://127.0.0.1:5102
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp
import uvloop

ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)


async def main(src: str, dst: str, prefix: str = "bench", dest_ns: str = "mirror") -> int:
    s = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=20))
    d = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=20))
    src_slots, dst_slots = asyncio.Semaphore(16), asyncio.Semaphore(16)  # Seawall's per host
    count = 0

    async def head(repo: str, tag: str) -> None:
        nonlocal count
        async with (
            src_slots,
            s.head(f"{src}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT}) as r,
        ):
            assert r.status == 200 and r.headers["Docker-Content-Digest"]
            count += 1

    async def source(repo: str) -> None:
        nonlocal count
        async with src_slots, s.get(f"{src}/v2/{repo}/tags/list?n=1000") as r:
            tags = (await r.json())["tags"] or []
            count += 1
        await asyncio.gather(*(head(repo, t) for t in tags))

    async def destination(repo: str) -> None:
        nonlocal count
        name = f"{dest_ns}/{repo.removeprefix(prefix + '/')}"
        async with dst_slots, d.get(f"{dst}/v2/{name}/tags/list?n=1000") as r:
            await r.read()
            count += 1

    async with s, d:
        async with s.get(f"{src}/v2/_catalog?n=1000") as r:
            repos = [x for x in (await r.json())["repositories"] if x.startswith(prefix + "/")]
            count += 1
        await asyncio.gather(*(source(r) for r in repos), *(destination(r) for r in repos))
    return count


if __name__ == "__main__":
    t0 = time.perf_counter()
    n = uvloop.run(main(sys.argv[1], sys.argv[2]))
    print(f"{n} requests in {time.perf_counter() - t0:.3f} s", file=sys.stderr)
