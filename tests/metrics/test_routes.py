"""The ``route`` label: a bounded set read from a path's shape, as the registry routes it."""

from __future__ import annotations

import pytest

from registry.http.metrics import RouteFamily, route_family


@pytest.mark.parametrize(
    ("path", "family"),
    [
        ("/v2", "base"),
        ("/v2/", "base"),
        ("/v2/_catalog", "catalog"),
        ("/v2/team/app/manifests/v1", "manifest"),
        ("/v2/app/manifests/sha256:" + "a" * 64, "manifest"),
        ("/v2/app/blobs/sha256:" + "b" * 64, "blob"),
        ("/v2/app/blobs/uploads/", "upload"),
        ("/v2/app/blobs/uploads/0f1e2d", "upload"),
        ("/v2/app/tags/list", "tags"),
        ("/v2/app/referrers/sha256:" + "c" * 64, "referrers"),
        # a repository named like a route segment decides nothing
        ("/v2/manifests/tags/list", "tags"),
        ("/v2/blobs/uploads/manifests/latest", "manifest"),
        ("/v2/app/tags/other", "other"),
        ("/v2/app/uploads/x", "other"),
        ("/v2/app/nothing/here", "other"),
        ("/service/token", "token"),
        ("/healthz", "health"),
        ("/metrics", "metrics"),
        ("/api/v2.0/replication/policies", "api"),
        ("/", "other"),
        ("/favicon.ico", "other"),
    ],
)
def test_route_family(path: str, family: str) -> None:
    found = route_family(path)
    assert found == family and type(found) is str
    assert found in {f.value for f in RouteFamily}
