#!/usr/bin/env python3
"""Peak RSS of `seawall sync` copying one image with a large layer between two registries.

    engine_rss.py SRC_URL DST_URL [--size-mib 2048]

Pushes an image whose one layer is SIZE MiB (a 64 MiB random block repeated, streamed) to
SRC_URL/bench/big, runs `seawall sync SRC_URL/bench DST_URL/mirror` under /usr/bin/time, checks
the digest at DST and prints one JSON line with the engine's peak RSS and the copy rate.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import aiohttp

MiB = 1 << 20


async def push(url: str, size_mib: int) -> str:
    block = hashlib.sha256(b"seed").digest() * (64 * MiB // 32)
    n = size_mib // 64
    h = hashlib.sha256()
    for _ in range(n):
        h.update(block)
    layer = "sha256:" + h.hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    cdigest = "sha256:" + hashlib.sha256(config).hexdigest()
    repo = f"{url}/v2/bench/big"
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout) as s:

        async def upload(digest: str, body: object, size: int) -> None:
            async with s.post(f"{repo}/blobs/uploads/") as r:
                loc = r.headers["Location"]
            loc = loc if loc.startswith("http") else url + loc
            sep = "&" if "?" in loc else "?"
            async with s.put(
                f"{loc}{sep}digest={digest}", data=body, headers={"Content-Length": str(size)}
            ) as r:
                assert r.status == 201, (r.status, await r.text())

        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(n):
                for off in range(0, len(block), MiB):
                    yield block[off : off + MiB]

        await upload(cdigest, config, len(config))
        await upload(layer, chunks(), n * len(block))
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": cdigest,
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer,
                        "size": n * len(block),
                    }
                ],
            }
        ).encode()
        async with s.put(
            f"{repo}/manifests/v1",
            data=manifest,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        ) as r:
            assert r.status == 201, await r.text()
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--size-mib", type=int, default=2048)
    p.add_argument("--seawall", default=os.path.join(os.path.dirname(sys.executable), "seawall"))
    a = p.parse_args()
    digest = asyncio.run(push(a.src.rstrip("/"), a.size_mib))
    with tempfile.TemporaryDirectory() as state:
        t = time.perf_counter()
        out = subprocess.run(
            [
                "/usr/bin/time",
                "-v",
                a.seawall,
                "sync",
                f"{a.src}/bench",
                f"{a.dst}/mirror",
                "--state-dir",
                state,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds = time.perf_counter() - t
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
    import urllib.request

    req = urllib.request.Request(
        f"{a.dst}/v2/mirror/big/manifests/v1",
        method="HEAD",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(req) as r:
        assert r.headers["Docker-Content-Digest"] == digest, "digest differs at destination"
    print(
        json.dumps(
            {
                "size_mib": a.size_mib,
                "engine_peak_rss_mib": round(rss_kib / 1024, 1),
                "seconds": round(seconds, 1),
                "mib_s": round(a.size_mib / seconds, 1),
                "load1": os.getloadavg()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
