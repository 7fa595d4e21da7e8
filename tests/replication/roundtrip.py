"""The engine round trip every adapter proves: push-based and pull-based replication through a
running Seawall, with an index, a signature and an SBOM, digests verified at both ends.

    round_trip(local, {"name": "ecr", "type": "aws-ecr", "url": ..., "credential": ...},
               remote_namespace="rt")

1. pushes ``src/multi:1.0`` (an index of two images) and ``src/signed:v1`` (an image with a
   cosign-style signature and an SPDX SBOM referring to it) to ``local``;
2. registers the endpoint through the management API (checked as a user would add it);
3. a push policy copies ``src/**`` to ``<remote_namespace>/multi`` and ``…/signed`` there;
4. a pull policy copies them back from the endpoint into ``back/multi`` and ``back/signed``;
5. checks, on ``local``, that what came back has the digests that were pushed: the index, each
   child, the image, and the referrers (by digest and artifact type).

``remote_digest(repo, reference)``, when given, is asked for the digests at the remote after
step 3 (the test's own view of the provider's data plane).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from tests.replication.support import add_policy, api, digest_of, dumps, run, tags
from tests.support.client import OCI_INDEX, OCI_MANIFEST, client, push_artifact, push_image, sha256
from tests.support.server import SeawallProcess

__all__ = ["COSIGN", "SPDX", "Pushed", "push_corpus", "round_trip"]

COSIGN = "application/vnd.dev.cosign.artifact.sig.v1+json"
SPDX = "application/spdx+json"


class Pushed:
    """What :func:`push_corpus` put in the source: digests to check against."""

    def __init__(self) -> None:
        self.index = ""
        self.children: list[str] = []
        self.image = ""
        self.referrers: set[tuple[str, str]] = set()


def push_corpus(c: httpx.Client, prefix: str = "src") -> Pushed:
    out = Pushed()
    children = []
    for arch in ("amd64", "arm64"):
        digest, data = push_image(c, f"{prefix}/multi", f"1.0-{arch}", seed=f"rt{arch}")
        children.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(data),
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode()
    r = c.put(
        f"/v2/{prefix}/multi/manifests/1.0", content=index, headers={"Content-Type": OCI_INDEX}
    )
    assert r.status_code == 201, r.text
    out.index, out.children = sha256(index), [ch["digest"] for ch in children]
    out.image, data = push_image(c, f"{prefix}/signed", "v1", seed="rtsigned")
    subject = (out.image, len(data))
    sig = push_artifact(c, f"{prefix}/signed", COSIGN, b"rt-signature", subject=subject)
    sbom = push_artifact(c, f"{prefix}/signed", SPDX, b'{"spdx": "rt"}', subject=subject)
    out.referrers = {(sig, COSIGN), (sbom, SPDX)}
    return out


def round_trip(
    local: SeawallProcess,
    endpoint: dict[str, Any],
    *,
    remote_namespace: str = "rt",
    remote_digest: Callable[[str, str], str | None] | None = None,
    timeout_s: float = 180.0,
) -> None:
    with (
        client(local.url, "admin", local.admin_password) as c,
        api(local.url, local.admin_password) as a,
    ):
        pushed = push_corpus(c)
        r = a.post("/registries", json=endpoint)
        assert r.status_code == 201, r.text
        remote_id = int(r.headers["Location"].rsplit("/", 1)[1])
        name = endpoint["name"]
        out = add_policy(
            a,
            f"{name}-push",
            dest=remote_id,
            filters=[{"type": "name", "value": "src/**"}, {"type": "tag", "value": "{1.0,v1}"}],
            dest_namespace=remote_namespace,
            dest_namespace_replace_count=1,
        )
        ex, tasks = run(a, out, timeout_s=timeout_s)
        assert ex["status"] == "Succeed", dumps([ex, tasks])
        if remote_digest is not None:
            ns = remote_namespace
            assert remote_digest(f"{ns}/multi", "1.0") == pushed.index
            assert remote_digest(f"{ns}/signed", "v1") == pushed.image
            for child in pushed.children:
                assert remote_digest(f"{ns}/multi", child) == child
        depth = len(remote_namespace.split("/"))
        back = add_policy(
            a,
            f"{name}-pull",
            src=remote_id,
            filters=[{"type": "name", "value": f"{remote_namespace}/**"}],
            dest_namespace="back",
            dest_namespace_replace_count=depth,
        )
        ex, tasks = run(a, back, timeout_s=timeout_s)
        assert ex["status"] == "Succeed", dumps([ex, tasks])
        assert digest_of(c, "back/multi", "1.0") == pushed.index
        for child in pushed.children:  # children arrive with the index, by digest
            assert digest_of(c, "back/multi", child) == child
        assert tags(c, "back/multi") == ["1.0"]
        assert digest_of(c, "back/signed", "v1") == pushed.image
        listed = c.get(f"/v2/back/signed/referrers/{pushed.image}").json()["manifests"]
        assert {(m["digest"], m["artifactType"]) for m in listed} == pushed.referrers
