"""Tags list (end-8a/8b) and the catalog: lexical order, ``n``/``last`` pagination with
``Link: <…>; rel="next"``, ``n=0``, unknown repositories."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.protocol.helpers import (
    OCI_MANIFEST,
    all_pages,
    assert_error,
    next_link,
    push_image,
    put_manifest,
)

# All lowercase so that byte order, case-insensitive order and Go's sort.Strings agree.
TAGS = ["latest", "1.0", "alpha", "rc-1", "b", "1.1", "beta", "zeta", "0", "a"]
SORTED = sorted(TAGS)


def tagged(c: httpx.Client, repo: str, tags: list[str] = TAGS) -> None:
    _, body = push_image(c, repo, tags[0])
    for tag in tags[1:]:
        assert put_manifest(c, repo, tag, body, OCI_MANIFEST).status_code == 201


def test_tags_list_sorted(admin: httpx.Client, repo: str) -> None:
    tagged(admin, repo)
    r = admin.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].split(";")[0] == "application/json"
    assert r.json() == {"name": repo, "tags": SORTED}
    assert "Link" not in r.headers


@pytest.mark.parametrize("n", [1, 3, 4, 9])
def test_tags_list_pagination(admin: httpx.Client, repo: str, n: int) -> None:
    """Follow the Link headers from ``?n=`` to the end: every tag once, in order, pages of n."""
    tagged(admin, repo)
    url: str | None = f"/v2/{repo}/tags/list?n={n}"
    seen: list[str] = []
    pages = 0
    while url is not None:
        r = admin.get(url)
        assert r.status_code == 200, r.text
        page = r.json()["tags"]
        pages += 1
        assert pages <= len(TAGS) + 1, "pagination does not end"
        url = next_link(r)
        if url is not None:
            assert len(page) == n, (url, page)  # fewer than n only on the last page
            q = parse_qs(urlsplit(url).query)
            assert urlsplit(url).path == f"/v2/{repo}/tags/list", url
            assert q["n"] == [str(n)] and q["last"] == [page[-1]], url
        else:
            assert len(page) <= n
        seen += page
    assert seen == SORTED


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("last=beta", [t for t in SORTED if t > "beta"]),
        ("n=2&last=beta", [t for t in SORTED if t > "beta"][:2]),
        ("n=3&last=bb", [t for t in SORTED if t > "bb"][:3]),  # last need not be a tag
        ("n=2&last=zeta", []),
        ("last=0", SORTED[1:]),
        ("n=100", SORTED),
    ],
)
def test_tags_list_last(admin: httpx.Client, repo: str, query: str, expected: list[str]) -> None:
    tagged(admin, repo)
    r = admin.get(f"/v2/{repo}/tags/list?{query}")
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == expected


def test_tags_list_n_zero(admin: httpx.Client, repo: str) -> None:
    tagged(admin, repo)
    r = admin.get(f"/v2/{repo}/tags/list?n=0")
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == []
    assert "Link" not in r.headers


@pytest.mark.parametrize("n", ["-1", "abc", "1.5"])
def test_tags_list_invalid_n(admin: httpx.Client, repo: str, n: str) -> None:
    tagged(admin, repo, ["a"])
    assert_error(admin.get(f"/v2/{repo}/tags/list?n={n}"), 400)


def test_tags_list_unknown_repository(admin: httpx.Client, repo: str) -> None:
    assert_error(admin.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN")
    assert_error(admin.get(f"/v2/{repo}/tags/list?n=0"), 404, "NAME_UNKNOWN")


def test_tags_list_without_tags(admin: httpx.Client, repo: str) -> None:
    """A repository holding only an untagged manifest lists no tags (200, not 404)."""
    push_image(admin, repo)
    r = admin.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 200, r.text
    assert r.json()["tags"] in ([], None)


def test_tags_list_after_tag_delete(admin: httpx.Client, repo: str) -> None:
    tagged(admin, repo, ["a", "b", "c"])
    assert admin.delete(f"/v2/{repo}/manifests/b").status_code == 202
    assert admin.get(f"/v2/{repo}/tags/list").json()["tags"] == ["a", "c"]


# --------------------------------------------------------------------------- catalog


@pytest.fixture
def catalog_repos(admin: httpx.Client) -> tuple[str, list[str]]:
    """Five repositories under a fresh prefix; returns (prefix, their names sorted)."""
    prefix = f"protocat-{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}/{s}" for s in ("e", "a", "c/d", "b", "c")]
    for name in names:
        push_image(admin, name, "v1")
    return prefix, sorted(names)


SEAWALL_TAG_LIST = "application/vnd.seawall.tag-list.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def without_origins(body: dict[str, Any]) -> dict[str, Any]:
    """A tag list (or catalog listing) without its tags' origins and its tombstones (times:
    tests/regions/test_bidirectional.py and the unit tests check them)."""
    manifests = {
        tag: {k: v for k, v in m.items() if k != "origin"}
        for tag, m in body.get("manifests", {}).items()
    }
    return {**{k: v for k, v in body.items() if k != "tombstones"}, "manifests": manifests}


def test_tags_list_with_digests(admin: httpx.Client, repo: str) -> None:
    """Asked for by ``Accept``, Seawall's tag list also names each tag's manifest (a replicator
    lists a repository in one request instead of a ``HEAD`` per tag); it pages like the plain
    one, and a plain request is untouched."""
    d1, b1 = push_image(admin, repo, "v1")
    d2, b2 = push_image(admin, repo, "v2", media_type=DOCKER_MANIFEST, layers=2)
    assert put_manifest(admin, repo, "latest", b2, DOCKER_MANIFEST).status_code == 201
    accept = {"Accept": f"{SEAWALL_TAG_LIST}, application/json"}
    r = admin.get(f"/v2/{repo}/tags/list", headers=accept)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].split(";")[0] == SEAWALL_TAG_LIST
    assert r.headers["Vary"] == "Accept"  # one URL, two answers: caches keep them apart
    second = {"digest": d2, "mediaType": DOCKER_MANIFEST, "size": len(b2)}
    expected = {
        "latest": second,
        "v1": {"digest": d1, "mediaType": OCI_MANIFEST, "size": len(b1)},
        "v2": second,
    }
    assert without_origins(r.json()) == {
        "name": repo,
        "tags": ["latest", "v1", "v2"],
        "manifests": expected,
    }
    assert r.json()["manifests"]["v1"]["origin"]["region"] == "local"
    # the same pages as the plain list, each with its own tags' manifests
    r = admin.get(f"/v2/{repo}/tags/list?n=2", headers=accept)
    assert without_origins(r.json())["manifests"] == {t: expected[t] for t in ("latest", "v1")}
    url = next_link(r)
    assert url is not None
    r = admin.get(url, headers=accept)
    assert without_origins(r.json()) == {"name": repo, "tags": ["v2"], "manifests": {"v2": second}}
    assert next_link(r) is None
    plain = admin.get(f"/v2/{repo}/tags/list")
    assert plain.headers["Content-Type"].split(";")[0] == "application/json"
    assert plain.json() == {"name": repo, "tags": ["latest", "v1", "v2"]}
    assert plain.headers["Vary"] == "Accept"
    assert_error(admin.get(f"/v2/{repo}-x/tags/list", headers=accept), 404, "NAME_UNKNOWN")
    # a deleted tag leaves both lists at once
    assert admin.delete(f"/v2/{repo}/manifests/v1").status_code == 202
    r = admin.get(f"/v2/{repo}/tags/list", headers=accept)
    assert without_origins(r.json())["manifests"] == {"latest": second, "v2": second}, r.text
    assert r.json()["tombstones"]["v1"]["digest"] == d1  # it leaves a tombstone


SEAWALL_CATALOG = "application/vnd.seawall.catalog.v1+json"


def test_catalog_with_tags(admin: httpx.Client, catalog_repos: tuple[str, list[str]]) -> None:
    """Asked for by ``Accept``, Seawall's catalog carries each repository's tag list with
    digests (as the tag list gives it), takes ``prefix=`` and pages like the plain one."""
    prefix, names = catalog_repos
    accept = {"Accept": f"{SEAWALL_CATALOG}, application/json"}
    tag_lists = {}
    for name in names:
        r = admin.get(f"/v2/{name}/tags/list", headers={"Accept": SEAWALL_TAG_LIST})
        tag_lists[name] = without_origins({k: r.json()[k] for k in ("tags", "manifests")})
    assert admin.put(  # a second tag on one of them, a repository outside the prefix
        f"/v2/{names[0]}/manifests/v2",
        content=admin.get(f"/v2/{names[0]}/manifests/v1", headers={"Accept": OCI_MANIFEST}).content,
        headers={"Content-Type": OCI_MANIFEST},
    ).is_success
    push_image(admin, f"{prefix}-other/x", "v1")
    tag_lists[names[0]]["tags"].append("v2")
    tag_lists[names[0]]["manifests"]["v2"] = tag_lists[names[0]]["manifests"]["v1"]
    r = admin.get(f"/v2/_catalog?prefix={prefix}/", headers=accept)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].split(";")[0] == SEAWALL_CATALOG
    listings = {n: without_origins(one) for n, one in r.json()["listings"].items()}
    assert {**r.json(), "listings": listings} == {"repositories": names, "listings": tag_lists}
    # pages of n, the prefix carried by Link
    seen: dict[str, object] = {}
    url: str | None = f"/v2/_catalog?n=2&prefix={prefix}/"
    while url is not None:
        r = admin.get(url, headers=accept)
        page = r.json()
        assert list(page["listings"]) == page["repositories"], r.text
        seen.update({n: without_origins(one) for n, one in page["listings"].items()})
        url = next_link(r)
        if url is not None:
            assert len(page["repositories"]) == 2
            assert parse_qs(urlsplit(url).query)["prefix"] == [f"{prefix}/"], url
    assert seen == tag_lists
    # without the Accept: the spec's catalog, the prefix ignored
    plain = admin.get(f"/v2/_catalog?prefix={prefix}/")
    assert plain.headers["Content-Type"].split(";")[0] == "application/json"
    assert f"{prefix}-other/x" in plain.json()["repositories"]
    assert "listings" not in plain.json()


def test_catalog_lists_sorted(admin: httpx.Client, catalog_repos: tuple[str, list[str]]) -> None:
    prefix, names = catalog_repos
    repos = all_pages(admin, "/v2/_catalog", "repositories")
    assert repos == sorted(repos)
    assert [x for x in repos if x.startswith(prefix + "/")] == names


@pytest.mark.parametrize("n", [1, 2, 5])
def test_catalog_pagination(
    admin: httpx.Client, catalog_repos: tuple[str, list[str]], n: int
) -> None:
    """Start just before the prefix (``last=<prefix>`` sorts before ``<prefix>/…``) and follow
    Link headers through the five repositories."""
    prefix, names = catalog_repos
    url: str | None = f"/v2/_catalog?n={n}&last={prefix}"
    seen: list[str] = []
    while url is not None and len(seen) < len(names):
        r = admin.get(url)
        assert r.status_code == 200, r.text
        page = r.json()["repositories"]
        assert len(page) == n or next_link(r) is None, page
        url = next_link(r)
        if url is not None:
            q = parse_qs(urlsplit(url).query)
            assert urlsplit(url).path == "/v2/_catalog", url
            assert q["n"] == [str(n)] and q["last"] == [page[-1]], url
        seen += page
    assert seen[: len(names)] == names


def test_catalog_last(admin: httpx.Client, catalog_repos: tuple[str, list[str]]) -> None:
    _, names = catalog_repos
    r = admin.get("/v2/_catalog", params={"n": 2, "last": names[1]})
    assert r.status_code == 200, r.text
    assert r.json()["repositories"] == names[2:4]


def test_catalog_n_zero(admin: httpx.Client, catalog_repos: tuple[str, list[str]]) -> None:
    r = admin.get("/v2/_catalog?n=0")
    assert r.status_code == 200, r.text
    assert r.json()["repositories"] == []
    assert "Link" not in r.headers


def test_catalog_invalid_n(admin: httpx.Client) -> None:
    assert_error(admin.get("/v2/_catalog?n=abc"), 400)
