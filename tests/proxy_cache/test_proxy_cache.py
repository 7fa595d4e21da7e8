"""Proxy-cache namespaces end to end: a real ``seawall serve`` with two namespaces, each bound
to a CNCF distribution behind a counting proxy (what the upstream was asked), pulled with
podman, skopeo and containerd's mirror request shapes.

A herd of pulls costs the upstream one GET per manifest and blob; before the TTL a pull asks
the upstream nothing, after it one HEAD per tag; with the upstream stopped the cache still
serves; nothing can be pushed into a namespace; ``?ns=`` routes to the right upstream. The TTL
passes without sleeping: the tags' validation times are moved back in the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.clients.layouts import BuiltImage
from tests.clients.tools import (
    Podman,
    Registry,
    Skopeo,
    probe_podman_storage_driver,
    require_binary,
)
from tests.proxy_cache.support import (
    Upstream,
    age_tags,
    cli,
    expected_gets,
    pull_all,
    push_index_upstream,
    push_upstream,
)
from tests.replication.support import add_endpoint, api
from tests.support.client import ACCEPT, OCI_MANIFEST, client, push_image, sha256
from tests.support.counting_proxy import CountingProxy
from tests.support.distribution import DistributionProcess
from tests.support.server import SeawallProcess

HERD = 50
TTL_SECONDS = 600  # never waited for: tags are aged in the database instead


@dataclass
class World:
    seawall: SeawallProcess
    hub: Upstream  # namespace "hub"
    quay: Upstream  # namespace "mirror"
    app: BuiltImage  # hub's team/app:v1
    other: BuiltImage  # quay's team/app:v1 (another image under the same name)
    workdir: Path
    storage_driver: str

    @property
    def creds(self) -> str:
        return f"admin:{self.seawall.admin_password}"

    def podmans(self, n: int, tag: str) -> list[Podman]:
        return [
            Podman(self.workdir / f"podman-{tag}-{i}", self.storage_driver, "podman")
            for i in range(n)
        ]

    def client(self) -> httpx.Client:
        return client(self.seawall.url, "admin", self.seawall.admin_password)


def _upstream(workdir: Path) -> Upstream:
    registry = DistributionProcess(workdir).start()
    return Upstream(registry, CountingProxy(registry.url).start())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_binary("docker-registry")
    require_binary("podman")
    base = tmp_path_factory.mktemp("proxy-cache")
    hub, quay = _upstream(base / "hub"), _upstream(base / "quay")
    seawall = SeawallProcess(  # a dead upstream costs one short timeout, then it is passed over
        base / "seawall", extra_env={"SEAWALL_PROXY_CACHE__TIMEOUT_SECONDS": "5"}
    ).start()
    try:
        with api(seawall.url, seawall.admin_password) as a:
            add_endpoint(a, "hub-upstream", hub.proxy.url)
            add_endpoint(a, "quay-upstream", quay.proxy.url)
        for ns, endpoint in (("hub", "hub-upstream"), ("mirror", "quay-upstream")):
            done = cli(seawall, "proxy-cache", "add", ns, "--registry", endpoint, "--ttl", "600")
            assert done.returncode == 0, done.stderr
            assert f"added proxy cache {ns}" in done.stdout
        app = push_upstream(hub, base, "team/app", "v1", "hub-app")
        other = push_upstream(quay, base, "team/app", "v1", "quay-app")
        driver = probe_podman_storage_driver(base / "probe", "podman")
        yield World(seawall, hub, quay, app, other, base, driver)
    finally:
        seawall.stop()
        for up in (hub, quay):
            up.proxy.stop()
            up.registry.stop()


def _pull(world: World, n: int, image: str, tag: str) -> None:
    podmans = world.podmans(n, tag)
    try:
        pull_all(podmans, f"{world.seawall.host}/{image}", world.creds)
    finally:
        for p in podmans:
            p.close()


def test_a_herd_costs_one_get_per_manifest_and_blob_then_nothing_then_heads(
    world: World,
) -> None:
    hub = world.hub.proxy
    hub.reset()
    _pull(world, HERD, "hub/team/app:v1", "herd")
    assert hub.counts("team/app") == expected_gets(world.app, "v1")

    hub.reset()  # a second round within the TTL: the upstream is asked nothing
    _pull(world, 3, "hub/team/app:v1", "warm")
    _pull(world, 1, f"hub/team/app@{world.app.digest}", "by-digest")
    assert hub.counts() == {}

    assert age_tags(world.seawall, TTL_SECONDS + 1) >= 1  # the TTL has passed
    hub.reset()
    _pull(world, 3, "hub/team/app:v1", "stale")
    assert hub.counts() == {("HEAD", "manifests", "v1"): 1}  # one revalidation, no content
    hub.reset()
    _pull(world, 1, "hub/team/app:v1", "fresh-again")  # revalidated: fresh for another TTL
    assert hub.counts() == {}
    with world.client() as c:  # the tags it cached
        assert c.get("/v2/hub/team/app/tags/list").json() == {
            "name": "hub/team/app",
            "tags": ["v1"],
        }


def test_a_moved_tag_is_fetched_after_the_ttl(world: World, tmp_path: Path) -> None:
    first = push_upstream(world.hub, tmp_path, "team/moving", "v1", "moving-1")
    with world.client() as c:
        assert _digest(c, "hub/team/moving", "v1") == first.digest
        moved = push_upstream(world.hub, tmp_path, "team/moving", "v1", "moving-2")
        assert _digest(c, "hub/team/moving", "v1") == first.digest  # within the TTL
        age_tags(world.seawall, TTL_SECONDS + 1)
        world.hub.proxy.reset()
        assert _digest(c, "hub/team/moving", "v1") == moved.digest
    counts = world.hub.proxy.counts("team/moving")
    assert counts == {("HEAD", "manifests", "v1"): 1, ("GET", "manifests", moved.digest): 1}


def test_docker_style_and_oci_clients_see_exact_bytes(world: World, tmp_path: Path) -> None:
    """skopeo copies from the namespace with digests preserved (the bytes as upstream)."""
    skopeo = Skopeo(tmp_path, require_binary("skopeo"))
    dest = tmp_path / "copy"
    skopeo.run(
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        world.creds,
        f"docker://{world.seawall.host}/mirror/team/app:v1",
        f"oci:{dest}",
    )
    index = json.loads((dest / "index.json").read_text())
    assert index["manifests"][0]["digest"] == world.other.digest


def test_an_index_costs_one_get_per_manifest_and_blob(world: World, tmp_path: Path) -> None:
    """Every platform at once (skopeo --all), twice over: the index once by tag, each child
    once by digest, each blob once."""
    index = push_index_upstream(world.hub, tmp_path, "team/multi", "v1")
    skopeo = Skopeo(tmp_path, require_binary("skopeo"))
    world.hub.proxy.reset()
    for i in range(2):
        skopeo.run(
            "copy",
            "--all",
            "--src-tls-verify=false",
            "--src-creds",
            world.creds,
            f"docker://{world.seawall.host}/hub/team/multi:v1",
            f"oci:{tmp_path / f'multi-{i}'}",
        )
    expected = {("GET", "manifests", "v1"): 1}
    for image in index.images:
        expected |= {("GET", "manifests", image.digest): 1}
        expected |= {("GET", "blobs", d): 1 for d in image.blobs}
    assert world.hub.proxy.counts("team/multi") == expected


def test_nothing_can_be_pushed_into_a_namespace(world: World, tmp_path: Path) -> None:
    with world.client() as c:
        r = c.post("/v2/hub/team/app/blobs/uploads/")
        assert r.status_code == 403, r.text
        [error] = r.json()["errors"]
        assert error["code"] == "DENIED"
        assert "hub is a proxy cache of hub-upstream" in error["message"]
        r = c.put(
            "/v2/hub/team/app/manifests/v2",
            content=world.app.manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED"
        r = c.delete(f"/v2/hub/team/app/manifests/{world.app.digest}")
        assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED"
        r = c.post(
            "/v2/hub/team/app/blobs/uploads/",
            params={"mount": next(iter(world.app.blobs)), "from": "elsewhere/app"},
        )
        assert r.status_code == 403
        # reading from a namespace into an ordinary repository is a read: allowed
        r = c.post(
            "/v2/mine/app/blobs/uploads/",
            params={"mount": next(iter(world.app.blobs)), "from": "hub/team/app"},
        )
        assert r.status_code == 201, r.text
    skopeo = Skopeo(tmp_path, require_binary("skopeo"))
    failed = skopeo.run(
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        world.creds,
        "--dest-tls-verify=false",
        "--dest-creds",
        world.creds,
        f"docker://{world.seawall.host}/hub/team/app:v1",
        f"docker://{world.seawall.host}/hub/team/copied:v1",
        check=False,
    )
    assert failed.returncode != 0
    assert b"proxy cache of hub-upstream" in failed.stderr


def test_containerd_mirror_requests_route_by_ns(world: World) -> None:
    """hosts.toml mirror shapes: HEAD by tag, GET by digest, blobs, each with ``?ns=``; the
    name is the upstream's (no namespace), the token scope the namespace's."""
    challenged = httpx.get(f"{world.seawall.url}/v2/team/app/manifests/v1?ns={world.hub.host}")
    assert challenged.status_code == 401  # the scope to ask for is the namespace's
    assert 'scope="repository:hub/team/app:pull"' in challenged.headers["WWW-Authenticate"]
    for up, image in ((world.hub, world.app), (world.quay, world.other)):
        up.proxy.reset()
        with world.client() as c:
            ns = {"ns": up.host}
            r = c.head("/v2/team/app/manifests/v1", params=ns, headers={"Accept": ACCEPT})
            assert r.status_code == 200, r.text
            assert r.headers["Docker-Content-Digest"] == image.digest
            r = c.get(f"/v2/team/app/manifests/{image.digest}", params=ns)
            assert r.status_code == 200 and sha256(r.content) == image.digest
            for digest, data in image.blobs.items():
                r = c.get(f"/v2/team/app/blobs/{digest}", params=ns)
                assert r.status_code == 200 and r.content == data
        assert all(method != "GET" or kind != "blobs" for method, kind, _ in up.proxy.counts())
    with world.client() as c:  # an unknown ns: the request is served as sent (not found here)
        r = c.get("/v2/team/app/manifests/v1", params={"ns": "example.invalid"})
        assert r.status_code == 404


def test_podman_with_a_registries_conf_mirror_pulls_through(world: World, tmp_path: Path) -> None:
    """CRI-O's and podman's way (containers-registries.conf): the mirror location carries the
    namespace; the upstream's own name is pulled."""
    image = push_upstream(world.hub, tmp_path, "team/mirrored", "v1", "mirrored")
    conf = tmp_path / "registries.conf"
    conf.write_text(
        f'[[registry]]\nprefix = "{world.hub.host}"\nlocation = "{world.hub.host}"\n'
        "insecure = true\n"
        f'[[registry.mirror]]\nlocation = "{world.seawall.host}/hub"\ninsecure = true\n'
    )
    world.hub.proxy.reset()
    [podman] = world.podmans(1, "mirror")
    podman.env["CONTAINERS_REGISTRIES_CONF"] = str(conf)
    s = world.seawall
    try:  # the mirror's credentials come from the auth file (--creds is the upstream's)
        podman.login(Registry("seawall", s.url, s.host, "admin", s.admin_password))
        pull_all([podman], f"{world.hub.host}/team/mirrored:v1", None)
    finally:
        podman.close()
    assert world.hub.proxy.counts("team/mirrored") == expected_gets(image, "v1")  # once, by us
    with world.client() as c:
        assert c.get("/v2/hub/team/mirrored/tags/list").json()["tags"] == ["v1"]


def test_bad_input_gets_one_clear_line(world: World) -> None:
    s = world.seawall
    cases = {
        ("bad/ns", "hub-upstream", "60"): "not one repository path component",
        ("fine", "no-such-endpoint", "60"): "no registry named 'no-such-endpoint'",
        ("fine", "hub-upstream", "99999999"): "ttl_seconds must be between",
        ("hub", "hub-upstream", "60"): "already exists",
    }
    for (ns, endpoint, ttl), expected in cases.items():
        done = cli(s, "proxy-cache", "add", ns, "--registry", endpoint, "--ttl", ttl)
        assert done.returncode == 1, (ns, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (ns, done.stderr)
    with world.client() as c:  # a namespace holding pushed content is in use
        push_image(c, "used/app", "v1")
    done = cli(s, "proxy-cache", "add", "used", "--registry", "hub-upstream")
    assert done.returncode == 1 and "is in use" in done.stderr, done.stderr
    with api(s.url, s.admin_password) as a:
        r = a.post("/proxy-caches", json={"name": "x", "registry": {"id": 1}, "ttl_seconds": -1})
        assert r.status_code == 400
        for name in ("x" * 64, "UPPER", "123", "-x", ""):
            r = a.post("/proxy-caches", json={"name": name, "registry": {"id": 1}})
            assert r.status_code == 400, (name, r.text)
        r = a.post("/proxy-caches", json={"name": "x", "registry": {"id": 1}, "ttl_seconds": 0})
        assert r.status_code == 400 and "ttl_seconds" in r.text
        r = a.post("/proxy-caches", json={"name": "x", "registry": {"id": 999}})
        assert r.status_code == 400 and "does not exist" in r.text
    listed = cli(s, "proxy-cache", "list")
    assert listed.returncode == 0 and "hub-upstream" in listed.stdout, listed.stderr


def test_add_list_remove(world: World) -> None:
    s = world.seawall
    done = cli(s, "proxy-cache", "add", "extra", "--registry", "hub-upstream")
    assert done.returncode == 0, done.stderr
    listed = json.loads(cli(s, "proxy-cache", "list", "--json").stdout)
    extra = next(c for c in listed if c["name"] == "extra")
    assert extra["ttl_seconds"] == 3600 and extra["registry"]["name"] == "hub-upstream"
    with api(s.url, s.admin_password) as a:  # an upstream in use is not deleted under it
        r = a.delete(f"/registries/{extra['registry']['id']}")
        assert r.status_code == 412 and "proxy-cache remove" in r.text, r.text
    done = cli(s, "proxy-cache", "remove", "extra")
    assert done.returncode == 0, done.stderr
    assert "extra" not in cli(s, "proxy-cache", "list").stdout
    gone = cli(s, "proxy-cache", "remove", "extra")
    assert gone.returncode == 1 and "does not exist" in gone.stderr


def test_pulls_need_pull_permission_unless_anonymous_pull(world: World, tmp_path: Path) -> None:
    """A namespace is authorized like any repository: without credentials a ``401`` whose
    challenge names the pull scope; on a Seawall with ``auth.anonymous_pull`` an anonymous
    client pulls through (and still cannot push)."""
    image = push_upstream(world.hub, tmp_path, "team/anon", "v1", "anon")
    r = httpx.get(f"{world.seawall.url}/v2/hub/team/anon/manifests/v1", headers={"Accept": ACCEPT})
    assert r.status_code == 401, r.text
    assert 'scope="repository:hub/team/anon:pull"' in r.headers["WWW-Authenticate"]
    anon = SeawallProcess(tmp_path / "anon", extra_env={"SEAWALL_AUTH__ANONYMOUS_PULL": "true"})
    anon.start()
    try:
        with api(anon.url, anon.admin_password) as a:
            add_endpoint(a, "hub-upstream", world.hub.proxy.url)
        done = cli(anon, "proxy-cache", "add", "hub", "--registry", "hub-upstream")
        assert done.returncode == 0, done.stderr
        with client(anon.url, None) as c:  # no account: an anonymous token
            r = c.get("/v2/hub/team/anon/manifests/v1", headers={"Accept": ACCEPT})
            assert r.status_code == 200, r.text
            assert r.content == image.manifest
            r = c.put(
                "/v2/hub/team/anon/manifests/v2",
                content=image.manifest,
                headers={"Content-Type": OCI_MANIFEST},
            )
            assert r.status_code in (401, 403), r.text
    finally:
        anon.stop()


def test_cached_images_still_pull_with_the_upstream_stopped(world: World) -> None:
    """Last: it stops the hub upstream. Stale-if-error: a tag past its TTL is served from the
    cache when the revalidation cannot be answered."""
    world.hub.registry.stop()  # the counting proxy now answers 502
    age_tags(world.seawall, TTL_SECONDS + 1)
    _pull(world, 2, "hub/team/app:v1", "down")
    _pull(world, 1, f"hub/team/app@{world.app.digest}", "down-digest")
    with world.client() as c:  # never cached: nothing to serve
        r = c.get("/v2/hub/team/never/manifests/v1", headers={"Accept": ACCEPT})
        assert r.status_code == 503, r.text
    assert "serving hub/team/app:v1" in world.seawall.log()
    s = world.seawall
    scraped = httpx.get(f"{s.url}/metrics", auth=("admin", s.admin_password)).text
    families = {f.name: f for f in text_string_to_metric_families(scraped)}
    stale = families["seawall_proxy_cache_stale_served"].samples
    assert sum(x.value for x in stale) >= 1
    asked = families["seawall_proxy_cache_upstream_requests"].samples
    assert {x.labels["kind"] for x in asked} == {"manifest", "blob", "revalidation"}


def _digest(c: httpx.Client, repo: str, ref: str) -> str:
    r = c.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})
    assert r.status_code == 200, (r.status_code, r.text)
    return str(r.headers["Docker-Content-Digest"])
