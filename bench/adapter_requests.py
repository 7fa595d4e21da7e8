#!/usr/bin/env python3
"""Requests per no-op re-sync through each cloud adapter, next to skopeo and a HEAD-per-tag client.

    .venv/bin/python bench/adapter_requests.py [--repos 50] [--tags 8] [--json]
                                               [--providers aws-ecr,azure-acr,google-gar,google-gcr]
                                               [--skopeo-jobs 4] [--keep]

For each provider, all on 127.0.0.1 and started and stopped here (the test worlds of
``tests/support``, each in front of a real Seawall that stores the bytes):

- ``aws-ecr``: moto (ECR and STS control plane) and a Seawall data plane behind
  :class:`~tests.support.ecr.EcrFront`, which records every AWS API call and every data-plane
  request (the data plane's token realm is pointed at the front, so token requests pass it too);
- ``azure-acr``: :class:`~tests.support.fake_acr.FakeAcr`, admin user;
- ``google-gar`` / ``google-gcr``: :class:`~tests.support.fake_google.FakeGoogle`, a ``_json_key``
  service-account key.

Steps, per provider:

1. seeds REPOS x TAGS small images (a config and one layer per repository; a distinct config per
   tag) through the provider's front with the adapter's own client, so the fakes index them (on
   ECR the front's ``PutImage`` records them in moto);
2. starts a local ``seawall serve``, registers the provider through the management API
   (``POST /api/v2.0/registries``), adds a manual pull policy (provider -> local ``pulled/...``)
   and runs it twice through the API; counts every request that reaches the provider during the
   second run (the no-op re-sync), by kind; checks that run succeeded and copied nothing;
3. ``skopeo sync --src docker --dest docker`` of each repository into the local Seawall
   (``mirror/...``), twice; counts the provider's requests during the second pass over the 50
   repositories;
4. a HEAD-per-tag client (one fresh :class:`~adapters.oci.OciClient`, what Harbor-style and
   regsync-style clients do): the repository listing (``/v2/_catalog``; on ECR, which has none,
   ``DescribeRepositories`` and ``GetAuthorizationToken``), ``tags/list`` per repository, one
   manifest ``HEAD`` per tag; counted the same way;
5. restarts the local Seawall and runs the policy a third time, counted from before the
   restart: the no-op re-sync with nothing cached (no registry or provider tokens, no account
   lookups), as after a restart or when re-syncs are further apart than the tokens live.

The second run (2.) is "warm": it reuses the tokens the first run fetched, as a re-sync does
while they are valid (the fakes' tokens live an hour).

Prints one table per provider (``--json``: one JSON line per provider instead). Counts do not
depend on the machine's load; times are printed for information only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the test worlds live in tests/support

import boto3  # noqa: E402
import httpx  # noqa: E402

from adapters.aws_ecr import EcrAdapter  # noqa: E402
from adapters.azure_acr import AcrAdapter  # noqa: E402
from adapters.base import EndpointConfig, RegistryAdapter  # noqa: E402
from adapters.google_gar import GarAdapter, GcrAdapter  # noqa: E402
from adapters.oci import OciClient  # noqa: E402
from registry.oci import mediatypes as mt  # noqa: E402
from tests.support.acr_world import fake_acr  # noqa: E402
from tests.support.ecr import EcrFront  # noqa: E402
from tests.support.google_world import PROJECT, REPOSITORY, google_world  # noqa: E402
from tests.support.moto import MOTO_ACCOUNT, MotoServer, moto_binary  # noqa: E402
from tests.support.server import SeawallProcess, free_port  # noqa: E402

PROVIDERS = ("aws-ecr", "azure-acr", "google-gar", "google-gcr")
FAST: dict[str, Any] = {"backoff_base_seconds": 0.05}
SETTLE_SECONDS = 0.3  # after a measured step, before the counts are read (stragglers)
_V2 = re.compile(r"^/v2/(.+)/(blobs/uploads|manifests|blobs|tags|referrers)(/.*)?$")


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


# --- what reached the provider ----------------------------------------------------------------


def oci_route(method: str, path: str) -> str:
    """A data-plane request as a route key: ``"HEAD /v2/{name}/manifests/{ref}"``."""
    if path in ("/v2", "/v2/"):
        return f"{method} /v2/"
    if path == "/v2/_catalog":
        return f"{method} /v2/_catalog"
    if path.startswith("/service/token"):
        return f"{method} /service/token"
    m = _V2.match(path)
    if m is None:
        return f"{method} other"
    template = {
        "blobs/uploads": "/v2/{name}/blobs/uploads/",
        "manifests": "/v2/{name}/manifests/{ref}",
        "blobs": "/v2/{name}/blobs/{digest}",
        "tags": "/v2/{name}/tags/list",
        "referrers": "/v2/{name}/referrers/{digest}",
    }[m.group(2)]
    return f"{method} {template}"


_LISTING_ROUTES = {"catalog", "tags_list", "api_repositories", "api_docker_images"}


def kind_of(route: str) -> str:
    """``token``, ``listing``, ``manifest``, ``ping``, ``blob``, ``api`` or ``other``."""
    low = route.lower()
    if route == "sts:GetCallerIdentity":  # the account of a non-ECR host (a test data plane)
        return "api"
    if route.startswith("sts:") or "token" in low or "exchange" in low or route == "metadata":
        return "token"
    if (
        route in _LISTING_ROUTES
        or route.startswith("ecr:Describe")
        or any(s in low for s in ("_catalog", "tags/list", "/_tags", "/_manifests"))
    ):
        return "listing"
    if "manifest" in low or route == "ecr:BatchGetImage":
        return "manifest"
    if route in ("ping",) or route.endswith(" /v2/"):
        return "ping"
    if "blob" in low or "upload" in low:
        return "blob"
    if route.startswith(("ecr:", "api_")):
        return "api"
    return "other"


@dataclass
class Count:
    """Requests that reached the provider in one measured step."""

    routes: Counter[str]
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.routes.values())

    def kinds(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for route, n in self.routes.items():
            out[kind_of(route)] += n
        return dict(sorted(out.items()))

    def of(self, kind: str) -> int:
        return self.kinds().get(kind, 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "kinds": self.kinds(),
            "routes": dict(sorted(self.routes.items())),
            "seconds": round(self.seconds, 3),
        }


def diff(after: Counter[str], before: Counter[str]) -> Counter[str]:
    out = Counter(after)
    out.subtract(before)
    return Counter({k: v for k, v in out.items() if v})


# --- a provider, stood up -----------------------------------------------------------------------


@dataclass
class Provider:
    """One provider's front, what the adapter and the other clients need to reach it, and
    how to read what reached it (``counts``: cumulative requests by route)."""

    name: str
    url: str
    repos: list[str]
    endpoint: dict[str, Any]  # POST /api/v2.0/registries body
    config: EndpointConfig  # the adapter's, for seeding
    adapter_type: type[RegistryAdapter]
    login: Callable[[], tuple[str, str]]  # skopeo's / the HEAD client's registry login
    counts: Callable[[], Counter[str]]
    local_env: dict[str, str] = field(default_factory=dict)
    depth: int = 1  # path components the pull policy replaces with "pulled"
    #: the HEAD client's repository listing: ``/v2/_catalog``, or (ECR, which has none)
    #: ``DescribeRepositories`` with these boto3 client arguments
    describe_repositories: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://").removeprefix("https://")

    def measure(self, step: Callable[[], None]) -> Count:
        before = self.counts()
        t0 = time.monotonic()
        step()
        seconds = time.monotonic() - t0
        time.sleep(SETTLE_SECONDS)
        return Count(diff(self.counts(), before), seconds)


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """This process' environment with ``values`` set, restored afterwards."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def start_seawall(data_dir: Path, **env: str) -> SeawallProcess:
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    return SeawallProcess(data_dir, extra_env=dict(env)).start(timeout_s=90.0)


@contextlib.contextmanager
def ecr_provider(work: Path, repos: list[str]) -> Iterator[Provider]:
    """moto + a Seawall data plane + the front: one "ECR" at the front's URL."""
    moto = MotoServer(work / "moto").start()
    (work / "ecr-data-plane").mkdir(parents=True, exist_ok=True)
    data_plane = SeawallProcess(work / "ecr-data-plane" / "data", port=free_port())
    admin = ("admin", data_plane.admin_password)
    aws = moto.client_kwargs()
    front = EcrFront(moto.url, data_plane.url, admin, aws).start()
    try:
        # the data plane's login is what GetAuthorizationToken answers on moto (user AWS);
        # its token realm is the front, so that token requests are seen (and counted) there
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
        cmd = [sys.executable, "-m", "seawall", "user", "add", "AWS", "--password"]
        cmd += [f"{MOTO_ACCOUNT}-auth-token", "--allow", "*=*", "--data-dir"]
        cmd.append(str(data_plane.data_dir))
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
        data_plane.extra_env = {"SEAWALL_AUTH__REALM": f"{front.url}/service/token"}
        data_plane.start(timeout_s=90.0)
        world_env = moto.env(
            AWS_ENDPOINT_URL_ECR=front.url,
            AWS_ENDPOINT_URL_STS=front.url,
        )
        boto_front = aws | {"endpoint_url": front.url}

        def login() -> tuple[str, str]:
            ecr = boto3.client("ecr", **boto_front)
            data = ecr.get_authorization_token()["authorizationData"][0]
            user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
            return user, password

        def counts() -> Counter[str]:
            calls, data = front.since((0, 0))
            out: Counter[str] = Counter(c.action for c in calls)
            out.update(oci_route(method, path) for method, path in data)
            return out

        yield Provider(
            name="aws-ecr",
            url=front.url,
            repos=repos,
            endpoint={
                "name": "ecr",
                "type": "aws-ecr",
                "url": front.url,
                "insecure": True,
                "credential": {
                    "type": "basic",
                    "access_key": "testing",
                    "access_secret": "testing",
                },
            },
            config=EndpointConfig(front.url, username="testing", password="testing", insecure=True),
            adapter_type=EcrAdapter,
            login=login,
            counts=counts,
            local_env=world_env,
            depth=1,
            describe_repositories=boto_front,
            notes=[
                "the data plane is a Seawall (bearer tokens from /service/token, through the "
                "front); real ECR takes the GetAuthorizationToken login as Basic on every request "
                "(no token requests)"
            ],
        )
    finally:
        front.stop()
        data_plane.stop()
        moto.stop()


@contextlib.contextmanager
def acr_provider(work: Path, repos: list[str]) -> Iterator[Provider]:
    backend = start_seawall(work / "acr-backend" / "data")
    acr = fake_acr(backend).start()
    try:

        def counts() -> Counter[str]:
            return Counter(acr.counts())

        yield Provider(
            name="azure-acr",
            url=acr.url,
            repos=repos,
            endpoint={
                "name": "acr",
                "type": "azure-acr",
                "url": acr.url,
                "insecure": True,
                "credential": {
                    "type": "basic",
                    "access_key": acr.admin_username,
                    "access_secret": acr.admin_password,
                },
                "options": {"auth": "admin"},
            },
            config=EndpointConfig(
                acr.url,
                username=acr.admin_username,
                password=acr.admin_password,
                insecure=True,
                options={"auth": "admin"},
            ),
            adapter_type=AcrAdapter,
            login=lambda: (acr.admin_username, acr.admin_password),
            counts=counts,
            depth=1,
        )
    finally:
        acr.stop()
        backend.stop()


@contextlib.contextmanager
def google_provider(work: Path, repos: list[str], flavor: str) -> Iterator[Provider]:
    backend = start_seawall(work / f"{flavor}-backend" / "data")
    try:
        with google_world(backend, flavor) as world:
            key = world.key_json
            endpoint = world.endpoint_body(flavor)
            config = world.config(username="_json_key", password=key)
            yield Provider(
                name=f"google-{flavor}",
                url=world.fake.url,
                repos=repos,
                endpoint=endpoint,
                config=config,
                adapter_type=GarAdapter if flavor == "gar" else GcrAdapter,
                login=lambda: ("_json_key", key),
                counts=lambda: Counter(world.fake.counts),
                depth=len(repos[0].split("/")) - 1,
            )
    finally:
        backend.stop()


def repo_names(provider: str, count: int) -> list[str]:
    prefix = {
        "aws-ecr": "bench",
        "azure-acr": "bench",
        "google-gar": f"{PROJECT}/{REPOSITORY}",
        "google-gcr": PROJECT,
    }[provider]
    return [f"{prefix}/r{i:02d}" for i in range(count)]


@contextlib.contextmanager
def stand_up(name: str, work: Path, repos: list[str]) -> Iterator[Provider]:
    if name == "aws-ecr":
        with ecr_provider(work, repos) as p:
            yield p
    elif name == "azure-acr":
        with acr_provider(work, repos) as p:
            yield p
    else:
        with google_provider(work, repos, name.removeprefix("google-")) as p:
            yield p


# --- 1. seeding through the adapter's own client ------------------------------------------------


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _source(data: bytes) -> Callable[[int], AsyncIterator[bytes]]:
    async def pieces(offset: int) -> AsyncIterator[bytes]:
        yield data[offset:]

    return pieces


async def _seed(p: Provider, tags: int) -> None:
    async with p.adapter_type(p.config, **FAST) as adapter:
        oci = adapter.client()
        limit = asyncio.Semaphore(8)

        async def one(repo: str) -> None:
            async with limit:
                await adapter.prepare_repository(repo)
                layer = f"seawall adapter bench layer of {repo}\n".encode() * 64
                await oci.upload_blob(repo, sha256(layer), len(layer), _source(layer))
                for t in range(tags):
                    config = json.dumps(
                        {"architecture": "amd64", "os": "linux", "repo": repo, "tag": t}
                    ).encode()
                    await oci.upload_blob(repo, sha256(config), len(config), _source(config))
                    doc = {
                        "schemaVersion": 2,
                        "mediaType": mt.OCI_MANIFEST,
                        "config": {
                            "mediaType": mt.OCI_CONFIG,
                            "digest": sha256(config),
                            "size": len(config),
                        },
                        "layers": [
                            {
                                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                                "digest": sha256(layer),
                                "size": len(layer),
                            }
                        ],
                    }
                    data = json.dumps(doc).encode()
                    await oci.put_manifest(repo, f"v{t}", data, mt.OCI_MANIFEST)

        await asyncio.gather(*(one(r) for r in p.repos))


def seed(p: Provider, tags: int) -> None:
    with environ(p.local_env):  # ECR: boto3's settings point at moto and the front
        asyncio.run(_seed(p, tags))


# --- 2. and 5. Seawall: a pull policy run through the management API -------------------------


class Api:
    def __init__(self, local: SeawallProcess) -> None:
        self.c = httpx.Client(
            base_url=f"{local.url}/api/v2.0", auth=("admin", local.admin_password), timeout=120.0
        )

    def close(self) -> None:
        self.c.close()

    def post(self, path: str, body: dict[str, Any]) -> int:
        r = self.c.post(path, json=body)
        if r.status_code != 201:
            raise RuntimeError(f"POST {path}: {r.status_code} {r.text[:2000]}")
        return int(r.headers["Location"].rsplit("/", 1)[1])

    def run(self, policy: int, timeout_s: float = 600.0) -> dict[str, Any]:
        eid = self.post("/replication/executions", {"policy_id": policy, "dry_run": False})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ex: dict[str, Any] = self.c.get(
                f"/replication/executions/{eid}", params={"wait": 30}
            ).json()
            if ex["status"] not in ("Pending", "InProgress"):
                return ex
        raise RuntimeError(f"execution {eid} did not end within {timeout_s} s")

    def failed_tasks(self, eid: int) -> list[dict[str, Any]]:
        r = self.c.get(f"/replication/executions/{eid}/tasks", params={"page_size": 100})
        return [t for t in r.json() if t["status"] == "Failed"]


def add_policy(p: Provider, api: Api) -> int:
    endpoint = api.post("/registries", p.endpoint)
    prefix = p.repos[0].rsplit("/", 1)[0]
    return api.post(
        "/replication/policies",
        {
            "name": f"{p.name}-pull",
            "src_registry": {"id": endpoint},
            "dest_registry": None,
            "trigger": {"type": "manual"},
            "enabled": True,
            "override": True,
            "filters": [{"type": "name", "value": f"{prefix}/**"}],
            "dest_namespace": "pulled",
            "dest_namespace_replace_count": p.depth,
        },
    )


def full_run(
    p: Provider, api: Api, local: SeawallProcess, policy: int, tags: int
) -> dict[str, Any]:
    """The first run: every image copied (tasks, and the tags of two pulled repositories)."""
    first = api.run(policy)
    if first["status"] != "Succeed" or first["total"] - first["skipped"] != len(p.repos) * tags:
        failed = api.failed_tasks(first["id"])[:3]
        raise RuntimeError(f"{p.name}: the first run did not copy everything: {first} {failed}")
    check_tags(local, [f"pulled/{r.rsplit('/', 1)[1]}" for r in (p.repos[0], p.repos[-1])], tags)
    return first


def noop_run(p: Provider, api: Api, policy: int, before: Callable[[], None] | None = None) -> Count:
    """A run (after ``before``, in the same count) that must succeed and copy nothing."""
    ended: dict[str, Any] = {}

    def step() -> None:
        if before is not None:
            before()
        ended.update(api.run(policy))

    count = p.measure(step)
    copied = ended["total"] - ended["skipped"]
    if ended["status"] != "Succeed" or copied or ended["bytes_copied"] or ended["failed"]:
        raise RuntimeError(f"{p.name}: the re-sync was not a successful no-op: {ended}")
    return count


def check_tags(local: SeawallProcess, repos: list[str], tags: int) -> None:
    with httpx.Client(base_url=local.url, auth=("admin", local.admin_password)) as c:
        for repo in repos:
            got = c.get(f"/v2/{repo}/tags/list").json().get("tags") or []
            if len(got) != tags:
                raise RuntimeError(f"{repo} has {len(got)} tags, not {tags}")


def restart(local: SeawallProcess) -> None:
    local.stop()
    local.start(timeout_s=90.0)


# --- 3. skopeo sync, one repository at a time ----------------------------------------------------


def skopeo_pass(p: Provider, local: SeawallProcess, login: tuple[str, str], jobs: int) -> None:
    def one(repo: str) -> None:
        cmd = ["skopeo", "sync", "--src", "docker", "--dest", "docker"]
        cmd += ["--src-tls-verify=false", "--dest-tls-verify=false"]
        cmd += ["--src-creds", f"{login[0]}:{login[1]}"]
        cmd += ["--dest-creds", f"admin:{local.admin_password}"]
        cmd += [f"{p.host}/{repo}", f"{local.host}/mirror"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"skopeo sync {repo}: {r.returncode}\n{r.stderr[-3000:]}")

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, p.repos))


def skopeo_runs(p: Provider, local: SeawallProcess, tags: int, jobs: int) -> Count:
    login = p.login()
    skopeo_pass(p, local, login, jobs)
    check_tags(local, [f"mirror/{r.rsplit('/', 1)[1]}" for r in (p.repos[0], p.repos[-1])], tags)
    return p.measure(lambda: skopeo_pass(p, local, login, jobs))


# --- 4. a HEAD-per-tag client -----------------------------------------------------------------


def _describe_repositories(client_kwargs: dict[str, Any]) -> list[str]:
    pages = boto3.client("ecr", **client_kwargs).get_paginator("describe_repositories")
    return [r["repositoryName"] for page in pages.paginate() for r in page["repositories"]]


async def _head_per_tag(p: Provider) -> int:
    user, password = await asyncio.to_thread(p.login)  # ECR: GetAuthorizationToken
    async with OciClient(p.url, username=user, password=password, insecure=True, **FAST) as oci:
        prefix = p.repos[0].rsplit("/", 1)[0] + "/"
        if p.describe_repositories is not None:
            names = await asyncio.to_thread(_describe_repositories, p.describe_repositories)
        else:
            names = await oci.catalog()
        repos = sorted(n for n in names if n.startswith(prefix))
        limit = asyncio.Semaphore(8)
        heads = 0

        async def one(repo: str) -> None:
            nonlocal heads
            async with limit:
                for tag in await oci.list_tags(repo):
                    ref = await oci.head_manifest(repo, tag)
                    assert ref is not None, (repo, tag)
                    heads += 1

        await asyncio.gather(*(one(r) for r in repos))
        return heads


def head_per_tag(p: Provider, tags: int) -> Count:
    found: list[int] = []
    count = p.measure(lambda: found.append(asyncio.run(_head_per_tag(p))))
    if found != [len(p.repos) * tags]:
        raise RuntimeError(f"{p.name}: the HEAD-per-tag client saw {found} tags")
    return count


# --- the report ----------------------------------------------------------------------------------


def ratio(a: int, b: int) -> float | None:
    return round(a / b, 2) if b else None


def provider_result(
    p: Provider,
    tags: int,
    seawall: Count,
    cold: Count,
    skopeo: Count,
    head: Count,
    first: dict[str, Any],
) -> dict[str, Any]:
    n = len(p.repos)

    def block(c: Count) -> dict[str, Any]:
        listing = c.of("listing")
        return c.as_json() | {
            "listing": listing,
            "per_repository": round(c.total / n, 3),
            "listing_per_repository": round(listing / n, 3),
        }

    return {
        "provider": p.name,
        "repos": n,
        "tags": tags,
        "seawall": block(seawall),
        "seawall_cold": block(cold),
        "skopeo": block(skopeo),
        "head_per_tag": block(head),
        "skopeo_over_seawall": ratio(skopeo.total, seawall.total),
        "head_per_tag_over_seawall": ratio(head.total, seawall.total),
        "skopeo_over_seawall_cold": ratio(skopeo.total, cold.total),
        "head_per_tag_over_seawall_cold": ratio(head.total, cold.total),
        "first_run": {k: first[k] for k in ("total", "succeed", "skipped", "bytes_copied")},
        "notes": p.notes,
    }


def print_table(r: dict[str, Any]) -> None:
    kinds = ("listing", "token", "manifest", "ping", "blob", "api", "other")
    print(
        f"\n{r['provider']}: {r['repos']} repositories x {r['tags']} tags, requests reaching the "
        "provider during a no-op re-sync"
    )
    head = ["client", "total", *kinds, "per repo", "listing per repo", "÷ Seawall warm", "s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    seawall_total = r["seawall"]["total"]
    for label, key in (
        ("Seawall pull policy (warm)", "seawall"),
        ("Seawall pull policy (cold)", "seawall_cold"),
        ("skopeo sync", "skopeo"),
        ("HEAD-per-tag client", "head_per_tag"),
    ):
        b = r[key]
        cells = [label, str(b["total"]), *(str(b["kinds"].get(k, 0)) for k in kinds)]
        cells += [f"{b['per_repository']:g}", f"{b['listing_per_repository']:g}"]
        x = ratio(b["total"], seawall_total)
        cells += ["—" if x is None else f"{x:g}×", f"{b['seconds']:.2f}"]
        print("| " + " | ".join(cells) + " |")
    cold = r["seawall_cold"]["total"]
    print(
        f"  against the cold run: skopeo {ratio(r['skopeo']['total'], cold)}×, "
        f"HEAD-per-tag {ratio(r['head_per_tag']['total'], cold)}×"
    )
    for key in ("seawall", "seawall_cold", "skopeo", "head_per_tag"):
        routes = ", ".join(f"{k} {v}" for k, v in r[key]["routes"].items())
        print(f"  {key}: {routes}")
    for note in r["notes"]:
        print(f"  note: {note}")


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def bench_provider(name: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    repos = repo_names(name, args.repos)
    started = time.monotonic()
    with stand_up(name, work, repos) as p:
        log(f"{name}: seeding {len(repos)} x {args.tags} images through {p.url}")
        seed(p, args.tags)
        local = start_seawall(work / f"{name}-local" / "data", **p.local_env)
        api = Api(local)
        try:
            log(f"{name}: Seawall pull policy: full run, then a no-op re-sync")
            policy = add_policy(p, api)
            first = full_run(p, api, local, policy, args.tags)
            seawall = noop_run(p, api, policy)
            log(f"{name}: skopeo sync per repository, twice")
            skopeo = skopeo_runs(p, local, args.tags, args.skopeo_jobs)
            log(f"{name}: HEAD-per-tag client")
            head = head_per_tag(p, args.tags)
            log(f"{name}: Seawall restarted, then the no-op re-sync again (nothing cached)")
            cold = noop_run(p, api, policy, before=lambda: restart(local))
        finally:
            api.close()
            local.stop()
    result = provider_result(p, args.tags, seawall, cold, skopeo, head, first)
    result["seconds"] = round(time.monotonic() - started, 1)
    result["commit"] = git_commit()
    result["load1"] = round(os.getloadavg()[0], 2)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repos", type=int, default=50)
    ap.add_argument("--tags", type=int, default=8)
    ap.add_argument("--providers", default=",".join(PROVIDERS))
    ap.add_argument("--skopeo-jobs", type=int, default=4, help="skopeo processes at once")
    ap.add_argument("--json", action="store_true", help="one JSON line per provider")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    names = [n.strip() for n in args.providers.split(",") if n.strip()]
    unknown = set(names) - set(PROVIDERS)
    if unknown or not names:
        ap.error(f"--providers: from {', '.join(PROVIDERS)}")
    if not 1 <= args.repos <= 100 or not 1 <= args.tags <= 100:
        ap.error("--repos and --tags: 1 to 100 (one listing page each)")
    if shutil.which("skopeo") is None:
        ap.error("skopeo is not installed (apt-get install skopeo)")
    if "aws-ecr" in names and moto_binary() is None:
        ap.error("moto_server is not installed (pip install 'moto[server]')")
    # nothing of the outer environment may point boto3 (here or in a child) elsewhere
    clean = MotoServer.clean_environ()
    os.environ.clear()
    os.environ.update(clean)
    work = Path(tempfile.mkdtemp(prefix="seawall-adapter-requests-"))
    try:
        for name in names:
            result = bench_provider(name, work / name, args)
            if args.json:
                print(json.dumps(result), flush=True)
            else:
                print_table(result)
                sys.stdout.flush()
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
