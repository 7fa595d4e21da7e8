"""Referrers cross a registry without the OCI 1.1 referrers API (CNCF distribution 2.8) through
the distribution spec's referrers tag schema, both ways: pushed there, the signature and SBOM
are listed in the subject's ``sha256-<hex>`` index; pulled back, they are found through it and
arrive as referrers again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.replication.roundtrip import COSIGN, SPDX, push_corpus
from tests.replication.support import add_endpoint, add_policy, api, digest_of, dumps, run
from tests.support.client import OCI_INDEX, client
from tests.support.distribution import DistributionProcess, distribution_available
from tests.support.server import SeawallProcess

pytestmark = pytest.mark.skipif(not distribution_available(), reason="needs docker-registry")


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[DistributionProcess]:
    proc = DistributionProcess(tmp_path / "plain").start()
    yield proc
    proc.stop()


def test_referrers_travel_through_the_tag_schema(
    local: SeawallProcess, plain: DistributionProcess
) -> None:
    with (
        client(local.url, "admin", local.admin_password) as c,
        api(local.url, local.admin_password) as a,
        client(plain.url, None) as d,
    ):
        pushed = push_corpus(c)
        remote = add_endpoint(a, "plain", plain.url)
        out = add_policy(
            a, "to-plain", dest=remote, filters=[{"type": "name", "value": "src/signed"}]
        )
        ex, tasks = run(a, out)
        assert ex["status"] == "Succeed", dumps([ex, tasks])
        assert d.get(f"/v2/src/signed/referrers/{pushed.image}").status_code == 404  # no API
        fallback = "sha256-" + pushed.image.removeprefix("sha256:")
        r = d.get(f"/v2/src/signed/manifests/{fallback}", headers={"Accept": OCI_INDEX})
        assert r.status_code == 200, r.text
        listed = {(m["digest"], m["artifactType"]) for m in r.json()["manifests"]}
        assert listed == pushed.referrers

        back = add_policy(
            a,
            "from-plain",
            src=remote,
            filters=[{"type": "name", "value": "src/signed"}, {"type": "tag", "value": "v1"}],
            dest_namespace="back",
            dest_namespace_replace_count=1,
        )
        ex, tasks = run(a, back)
        assert ex["status"] == "Succeed", dumps([ex, tasks])
        assert digest_of(c, "back/signed", "v1") == pushed.image
        found = c.get(f"/v2/back/signed/referrers/{pushed.image}").json()["manifests"]
        assert {(m["digest"], m["artifactType"]) for m in found} == pushed.referrers
        assert {COSIGN, SPDX} == {m["artifactType"] for m in found}
