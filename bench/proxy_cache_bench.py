#!/usr/bin/env python3
"""A pull-through round through Seawall's proxy cache against CNCF distribution's proxy mode.

    proxy_cache_bench.py [--images 50] [--layers 2] [--parallel 8] [--repeats 1] [--out FILE]

Starts one upstream (Debian's ``docker-registry``, CNCF distribution) and pushes ``--images``
small distinct images to it (``bench/img-<i>:v1``, each a config and ``--layers`` gzip'd tar
layers of a few KiB, as ``tests/clients/layouts.py`` builds them, in a Docker schema 2
manifest), straight to it. Then, per
system, a fresh cache in front of the same upstream, each through a counting proxy of its own
(``tests/support/counting_proxy.py``: what the upstream was asked):

* ``seawall``: a ``seawall serve`` with a ``docker-registry`` endpoint at the proxy and a
  proxy-cache namespace ``up`` bound to it (``up/bench/img-<i>:v1``);
* ``distribution-proxy``: a second ``docker-registry`` with ``proxy.remoteurl`` at the proxy
  (``bench/img-<i>:v1``; distribution's pull-through cache).

Each system gets two rounds: ``cold`` (every image pulled once, ``--parallel`` at a time: the
manifest by tag, then every blob, each checked against its digest, as a client does) and
``warm`` (the same again, everything cached). Reported per round: the upstream requests by
method and kind (``GET manifests``, ``HEAD manifests``, ``GET blobs``…), their total, the
round's wall time and the per-image pull time (p50, p90, max). The figures are comparable only
between the two systems of one run (same machine, same upstream, same client).

Prints a table and appends one JSON line per system and round to ``--out`` (default
``bench/results/proxy-cache-DATE.jsonl``). Smoke run: ``--images 3``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the test worlds live in tests/support

from tests.clients.layouts import BuiltImage, build_image  # noqa: E402
from tests.support.client import ACCEPT, DOCKER_MANIFEST, client, push_blob, sha256  # noqa: E402
from tests.support.counting_proxy import CountingProxy  # noqa: E402
from tests.support.distribution import DistributionProcess  # noqa: E402
from tests.support.server import SeawallProcess  # noqa: E402

NAMESPACE = "up"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def docker_manifest(image: BuiltImage) -> bytes:
    """``image`` as a Docker schema 2 manifest: distribution 2.x's proxy mode asks its upstream
    for Docker types only, and its upstream refuses an OCI manifest to such a request."""

    def descriptor(media_type: str, data: bytes) -> dict[str, Any]:
        return {"mediaType": media_type, "size": len(data), "digest": sha256(data)}

    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, image.config),
        "layers": [descriptor(DOCKER_LAYER, layer) for layer in image.layers],
    }
    return json.dumps(doc, indent=3).encode()


def push_images(upstream: DistributionProcess, work: Path, n: int, layers: int) -> list[str]:
    """Push ``n`` distinct images; their repository names."""
    repos = []
    with httpx.Client(base_url=upstream.url, timeout=60.0) as c:
        for i in range(n):
            repo = f"bench/img-{i}"
            image: BuiltImage = build_image(work / f"layout-{i}", "v1", seed=f"b{i}", layers=layers)
            for blob in image.blobs.values():
                push_blob(c, repo, blob)
            r = c.put(
                f"/v2/{repo}/manifests/v1",
                content=docker_manifest(image),
                headers={"Content-Type": DOCKER_MANIFEST},
            )
            r.raise_for_status()
            repos.append(repo)
    return repos


def pull(c: httpx.Client, repo: str) -> float:
    """One image as a client pulls it (manifest by tag, then each blob, digests checked);
    the seconds it took."""
    started = time.perf_counter()
    r = c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": ACCEPT})
    r.raise_for_status()
    if sha256(r.content) != r.headers.get("Docker-Content-Digest", sha256(r.content)):
        raise AssertionError(f"{repo}: manifest digest mismatch")
    doc = json.loads(r.content)
    for d in [doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]:
        b = c.get(f"/v2/{repo}/blobs/{d}")
        b.raise_for_status()
        if sha256(b.content) != d:
            raise AssertionError(f"{repo}: blob {d} does not match its digest")
    return time.perf_counter() - started


def run_round(
    make_client: Callable[[], httpx.Client], names: list[str], parallel: int
) -> tuple[float, list[float]]:
    clients = [make_client() for _ in range(parallel)]
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(parallel) as pool:
            times = list(
                pool.map(lambda ix: pull(clients[ix[0] % parallel], ix[1]), enumerate(names))
            )
        return time.perf_counter() - started, times
    finally:
        for c in clients:
            c.close()


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def record(
    system: str, rnd: str, proxy: CountingProxy, wall: float, times: list[float]
) -> dict[str, Any]:
    by_kind: Counter[str] = Counter()
    for (method, kind, _ref), n in proxy.counts().items():
        by_kind[f"{method} {kind}"] += n
    return {
        "bench": "proxy-cache",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "system": system,
        "round": rnd,
        "images": len(times),
        "upstream_requests": dict(sorted(by_kind.items())),
        "upstream_total": sum(by_kind.values()),
        "round_seconds": round(wall, 3),
        "pull_p50_seconds": round(statistics.median(times), 4),
        "pull_p90_seconds": round(_quantile(times, 0.9), 4),
        "pull_max_seconds": round(max(times), 4),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def bench_seawall(
    work: Path, upstream: DistributionProcess, repos: list[str], parallel: int
) -> list[dict[str, Any]]:
    proxy = CountingProxy(upstream.url).start()
    seawall = SeawallProcess(work / "seawall").start()
    try:
        with httpx.Client(
            base_url=f"{seawall.url}/api/v2.0", auth=("admin", seawall.admin_password), timeout=60
        ) as api:
            r = api.post(
                "/registries",
                json={
                    "name": "upstream",
                    "type": "docker-registry",
                    "url": proxy.url,
                    "insecure": True,
                },
            )
            r.raise_for_status()
            registry_id = int(r.headers["Location"].rsplit("/", 1)[1])
            r = api.post(
                "/proxy-caches",
                json={"name": NAMESPACE, "registry": {"id": registry_id}, "ttl_seconds": 3600},
            )
            r.raise_for_status()
        names = [f"{NAMESPACE}/{repo}" for repo in repos]

        def make() -> httpx.Client:
            return client(seawall.url, "admin", seawall.admin_password)

        return _rounds("seawall", proxy, make, names, parallel)
    finally:
        seawall.stop()
        proxy.stop()


def bench_distribution(
    work: Path, upstream: DistributionProcess, repos: list[str], parallel: int
) -> list[dict[str, Any]]:
    proxy = CountingProxy(upstream.url).start()
    cache = DistributionProcess(
        work / "dist-proxy", extra_config={"proxy": {"remoteurl": proxy.url}}
    )
    cache.start()
    try:

        def make() -> httpx.Client:
            return httpx.Client(base_url=cache.url, timeout=60.0)

        return _rounds("distribution-proxy", proxy, make, repos, parallel)
    finally:
        cache.stop()
        proxy.stop()


def _rounds(
    system: str,
    proxy: CountingProxy,
    make: Callable[[], httpx.Client],
    names: list[str],
    parallel: int,
) -> list[dict[str, Any]]:
    out = []
    for rnd in ("cold", "warm"):
        proxy.reset()
        wall, times = run_round(make, names, parallel)
        out.append(record(system, rnd, proxy, wall, times))
    return out


def main() -> int:
    day = datetime.now(UTC).date().isoformat()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / f"proxy-cache-{day}.jsonl"
    )
    args = ap.parse_args()
    if not 1 <= args.images <= 1000 or not 1 <= args.parallel <= 64:
        ap.error("--images 1..1000, --parallel 1..64")
    lines: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="proxy-cache-bench-") as tmp:
        work = Path(tmp)
        upstream = DistributionProcess(work / "upstream").start()
        try:
            repos = push_images(upstream, work, args.images, args.layers)
            for i in range(args.repeats):
                rep = work / f"r{i}"
                rep.mkdir()
                lines += bench_seawall(rep, upstream, repos, args.parallel)
                lines += bench_distribution(rep, upstream, repos, args.parallel)
        finally:
            upstream.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    print(
        f"{'system':20} {'round':5} {'upstream':>8}  {'round s':>8} {'p50 s':>7} {'max s':>7}"
        "  requests"
    )
    for x in lines:
        print(
            f"{x['system']:20} {x['round']:5} {x['upstream_total']:8d}  {x['round_seconds']:8.2f} "
            f"{x['pull_p50_seconds']:7.3f} {x['pull_max_seconds']:7.3f}  {x['upstream_requests']}"
        )
    print(f"appended {len(lines)} lines to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
