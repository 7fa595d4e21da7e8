"""What the proxy-cache tests share: upstreams (CNCF distribution behind a counting proxy), a
Seawall with proxy-cache namespaces, real images pushed upstream, podman pulls in parallel."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.clients.layouts import (
    OCI_INDEX,
    OCI_MANIFEST,
    BuiltImage,
    BuiltIndex,
    build_image,
    build_index,
)
from tests.clients.tools import Podman
from tests.support.client import push_blob
from tests.support.counting_proxy import CountingProxy
from tests.support.distribution import DistributionProcess
from tests.support.server import SeawallProcess

__all__ = ["Upstream", "age_tags", "cli", "expected_gets", "pull_all", "push_upstream"]


@dataclass
class Upstream:
    """A distribution registry and the counting proxy Seawall's endpoint points at."""

    registry: DistributionProcess
    proxy: CountingProxy

    @property
    def host(self) -> str:  # what Seawall's endpoint (and containerd's ?ns=) names
        return self.proxy.url.removeprefix("http://")


def push_upstream(upstream: Upstream, workdir: Path, repo: str, tag: str, seed: str) -> BuiltImage:
    """A real (podman-pullable) image built as an OCI layout, pushed straight to the
    distribution (not through the counting proxy), tagged ``tag``."""
    image = build_image(workdir / f"layout-{seed}", tag, seed=seed, layers=2)
    with httpx.Client(base_url=upstream.registry.url, timeout=30.0) as c:
        for blob in image.blobs.values():
            push_blob(c, repo, blob)
        r = c.put(
            f"/v2/{repo}/manifests/{tag}",
            content=image.manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert r.status_code == 201, r.text
    return image


def push_index_upstream(upstream: Upstream, workdir: Path, repo: str, tag: str) -> BuiltIndex:
    """A two-platform image index (amd64, arm64) pushed straight to the distribution."""
    index = build_index(workdir / f"layout-index-{tag}", tag, seed=f"index-{tag}")
    with httpx.Client(base_url=upstream.registry.url, timeout=30.0) as c:
        for image in index.images:
            for blob in image.blobs.values():
                push_blob(c, repo, blob)
            r = c.put(
                f"/v2/{repo}/manifests/{image.digest}",
                content=image.manifest,
                headers={"Content-Type": OCI_MANIFEST},
            )
            assert r.status_code == 201, r.text
        r = c.put(
            f"/v2/{repo}/manifests/{tag}", content=index.index, headers={"Content-Type": OCI_INDEX}
        )
        assert r.status_code == 201, r.text
    return index


def expected_gets(image: BuiltImage, tag: str) -> dict[tuple[str, str, str], int]:
    """One manifest GET (by tag) and one GET per blob: what a cold pull-through costs."""
    return {("GET", "manifests", tag): 1} | {("GET", "blobs", d): 1 for d in image.blobs}


def cli(seawall: SeawallProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    env |= {"SEAWALL_URL": seawall.url, "SEAWALL_PASSWORD": seawall.admin_password}
    return subprocess.run(
        [sys.executable, "-m", "seawall", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def pull_all(podmans: Sequence[Podman], image: str, creds: str | None) -> None:
    """``podman pull`` of ``image`` in every one of ``podmans`` (each its own store) at once
    (``creds`` None: those of each one's auth file)."""
    procs = []
    for p in podmans:
        argv = [
            p.binary,
            "--root",
            str(p.workdir / "root"),
            "--runroot",
            str(p.runroot),
            "--storage-driver",
            p.storage_driver,
            "--events-backend",
            "file",
            "pull",
            "--quiet",
            "--tls-verify=false",
            *(["--creds", creds] if creds else ["--authfile", str(p.authfile)]),
            image,
        ]
        procs.append(
            subprocess.Popen(argv, env=p.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        )
    failures = []
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            failures.append(err.decode(errors="replace")[-500:])
    assert not failures, f"{len(failures)} pulls failed; first: {failures[0]}"


def age_tags(seawall: SeawallProcess, seconds: float) -> int:
    """Make every cached tag ``seconds`` older, as if that much time had passed (no sleeping:
    the tags' ``validated_at`` is in the database). How many tags were aged."""
    with sqlite3.connect(seawall.data_dir / "seawall.db", timeout=30) as db:
        return db.execute(
            "UPDATE proxy_tag SET validated_at = validated_at - ?", (seconds,)
        ).rowcount
