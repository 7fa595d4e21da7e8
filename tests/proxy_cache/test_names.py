"""How a namespace's repository names the upstream's (Docker Hub's ``library/``), how hosts
compare for containerd's ``?ns=`` (Docker Hub's aliases), and the namespace rule."""

from __future__ import annotations

import pytest

from engine.proxy_cache.store import check_namespace
from seawall.proxy_cache import host_of, upstream_name


def test_docker_hub_official_images_are_under_library() -> None:
    assert upstream_name("docker-hub", "alpine") == "library/alpine"
    assert upstream_name("docker-hub", "library/alpine") == "library/alpine"
    assert upstream_name("docker-hub", "bitnami/redis") == "bitnami/redis"
    assert upstream_name("docker-registry", "alpine") == "alpine"  # only Docker Hub
    assert upstream_name("harbor", "proj/app") == "proj/app"


def test_hosts_compare_without_scheme_default_ports_and_hub_aliases() -> None:
    hub = {host_of(u) for u in ("https://registry-1.docker.io", "index.docker.io", "docker.io")}
    assert hub == {"docker.io"}
    assert host_of("https://Quay.IO:443/") == host_of("quay.io") == "quay.io"
    assert host_of("http://127.0.0.1:5000") == host_of("127.0.0.1:5000") == "127.0.0.1:5000"
    assert host_of("https://ghcr.io:8443") != host_of("ghcr.io")
    assert host_of("bad:port:x") == "bad"  # never an exception: it matches nothing


@pytest.mark.parametrize(
    "name", ["hub", "docker.io-cache", "a_b", "a__b", "x1", "quay-io", "a" * 63]
)
def test_valid_namespaces(name: str) -> None:
    assert check_namespace(name) == name


@pytest.mark.parametrize(
    "name", ["", "a/b", "Hub", "-a", "a-", "_a", "a..b", "123", "a" * 64, "hub:1", "é"]
)
def test_invalid_namespaces(name: str) -> None:
    with pytest.raises(ValueError):
        check_namespace(name)
