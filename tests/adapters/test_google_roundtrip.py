"""Push- and pull-based replication through a real ``seawall serve`` to and from ``google-gar``
and ``google-gcr`` endpoints (the fake of Google's parts in front of a real Seawall), with an
index, a signature and an SBOM, digests verified at both ends; the endpoint added through the
management API with a ``_json_key`` credential, as a user would."""

from __future__ import annotations

from collections.abc import Callable

from tests.replication.roundtrip import round_trip
from tests.replication.support import digest_of
from tests.support.client import client
from tests.support.google_world import PROJECT, REPOSITORY, google_world
from tests.support.server import SeawallProcess


def backend_digest(backend: SeawallProcess) -> Callable[[str, str], str | None]:
    """What the provider's data plane (the real registry behind the fake) holds."""

    def lookup(repo: str, reference: str) -> str | None:
        with client(backend.url, "admin", backend.admin_password) as c:
            return digest_of(c, repo, reference)

    return lookup


def test_round_trip_through_artifact_registry(
    local: SeawallProcess, seawall: SeawallProcess
) -> None:
    with google_world(seawall, "gar") as world:
        round_trip(
            local,
            world.endpoint_body("gar"),
            remote_namespace=f"{PROJECT}/{REPOSITORY}",
            remote_digest=backend_digest(seawall),
        )
        counts = world.fake.counts
        assert counts["api_repository"] >= 1  # the repository was checked before the push
        assert counts["api_docker_images"] >= 1  # the pull discovered through the API
        assert counts["tags_list"] <= 2  # the push run's look at its 2 destination repositories


def test_round_trip_through_container_registry(
    local: SeawallProcess, seawall: SeawallProcess
) -> None:
    with google_world(seawall, "gcr") as world:
        # gcr.io is served by Artifact Registry now, with its referrers API (probed). The
        # engine has no referrers tag-schema fallback: without the API the signature and SBOM
        # could not make the round trip (the conformance kit covers GCR without it).
        world.fake.referrers_api = True
        round_trip(
            local,
            world.endpoint_body("gcr", access_key="oauth2accesstoken"),
            remote_namespace=f"{PROJECT}-rt",
            remote_digest=backend_digest(seawall),
        )
        assert world.fake.counts["oauth_token"] >= 1  # access tokens minted from the key
