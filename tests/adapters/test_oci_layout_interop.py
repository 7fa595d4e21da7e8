"""The ``oci-layout`` adapter against the real tools, both ways, through a real ``seawall serve``.

Seawall → tools: images built as real tarballs are pushed into Seawall by skopeo, a signature
and an SBOM attached, and a push-based replication writes them into a layout root. skopeo
(``inspect``, ``copy --all``), umoci (``ls``, ``stat``, ``unpack``, ``gc``) and oras-py
(``Layout.validate``, ``push_to_registry``) then read that layout, with the same digests.

Tools → Seawall: skopeo (an index with ``--all``, an image, and its two referrers copied by
digest: untagged ``index.json`` entries), umoci (``init``/``new``/``insert``/``tag``) and oras-py
(``NewLayoutFromRegistry``) write layouts under another root; the adapter lists them and a
pull-based replication brings everything into Seawall, digests and referrers preserved.

Which readers see referrers: skopeo 1.9 and oras-py address layouts by tag only, so they never
look at the untagged referrer entries; ``umoci gc`` keeps them (they are roots), and Seawall
pulls them back. No oras Go CLI (``oras copy --from-oci-layout``) is installed here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import oras.provider
import pytest
from oras.layout import Layout as OrasLayout
from oras.layout import NewLayoutFromRegistry

from adapters.base import EndpointConfig
from adapters.oci_layout import OciLayoutAdapter
from tests.clients.layouts import (
    REF_NAME,
    BuiltImage,
    BuiltIndex,
    build_image,
    build_index,
    sha256,
)
from tests.clients.tools import CommandFailed, Registry, Skopeo, require_binary
from tests.replication.roundtrip import COSIGN, SPDX
from tests.replication.support import add_policy, api, digest_of, dumps, run, tags
from tests.support.client import client, push_artifact
from tests.support.server import SeawallProcess

pytestmark = pytest.mark.clients


@dataclass(frozen=True)
class Corpus:
    """What is in the module's Seawall (``src/img:v1`` with two referrers, ``src/multi:1.0``)
    and in the layout root Seawall wrote it to (``usb/img``, ``usb/multi``)."""

    seawall: SeawallProcess
    registry: Registry
    image: BuiltImage
    index: BuiltIndex
    referrers: frozenset[tuple[str, str]]  # (digest, artifact type)
    root: Path
    workdir: Path

    @property
    def skopeo(self) -> Skopeo:
        return Skopeo(self.workdir)

    def http(self) -> httpx.Client:
        return client(self.seawall.url, "admin", self.seawall.admin_password)

    def api(self) -> httpx.Client:
        return api(self.seawall.url, self.seawall.admin_password)


def umoci(*args: str) -> str:
    argv = [require_binary("umoci"), *args]
    result = subprocess.run(argv, capture_output=True, timeout=120, check=False)
    if result.returncode != 0:
        raise CommandFailed(argv, result)
    return result.stdout.decode()


def add_layout_endpoint(a: httpx.Client, name: str, root: Path) -> int:
    body = {"name": name, "type": "oci-layout", "url": "file://" + str(root)}
    r = a.post("/registries", json=body)
    assert r.status_code == 201, r.text
    return int(r.headers["Location"].rsplit("/", 1)[1])


def replicate(a: httpx.Client, name: str, **policy: Any) -> None:
    ex, tasks = run(a, add_policy(a, name, **policy), timeout_s=120)
    assert ex["status"] == "Succeed", dumps([ex, tasks])


def index_json(layout: Path) -> dict[str, Any]:
    return json.loads((layout / "index.json").read_text())


def layout_tags(layout: Path) -> dict[str, str]:
    """Tag → digest, as index.json says."""
    out = {}
    for m in index_json(layout)["manifests"] or []:
        name = (m.get("annotations") or {}).get(REF_NAME)
        if name:
            out[name] = m["digest"]
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    require_binary("skopeo")
    workdir = tmp_path_factory.mktemp("oci-layout-interop")
    seawall = SeawallProcess(workdir / "data").start()
    try:
        registry = Registry("seawall", seawall.url, seawall.host, "admin", seawall.admin_password)
        built = workdir / "built"
        image = build_image(built, "v1", seed="interop", layers=2)
        index = build_index(built, "1.0", seed="interop-multi")
        skopeo = Skopeo(workdir)
        skopeo.copy(
            f"oci:{built}:v1",
            registry.docker("src/img", "v1"),
            "--preserve-digests",
            dest_registry=registry,
        )
        skopeo.copy(
            f"oci:{built}:1.0",
            registry.docker("src/multi", "1.0"),
            "--all",
            "--preserve-digests",
            dest_registry=registry,
        )
        subject = (image.digest, len(image.manifest))
        with client(seawall.url, "admin", seawall.admin_password) as c:
            sig = push_artifact(c, "src/img", COSIGN, b"interop-signature", subject=subject)
            sbom = push_artifact(c, "src/img", SPDX, b'{"spdx": "interop"}', subject=subject)
        root = workdir / "usb"
        root.mkdir()
        with api(seawall.url, seawall.admin_password) as a:
            usb = add_layout_endpoint(a, "usb", root)
            replicate(
                a,
                "to-usb",
                dest=usb,
                filters=[{"type": "name", "value": "src/**"}],
                dest_namespace="usb",
                dest_namespace_replace_count=1,
            )
        refs = frozenset({(sig, COSIGN), (sbom, SPDX)})
        yield Corpus(seawall, registry, image, index, refs, root, workdir)
    finally:
        seawall.stop()


# -- Seawall writes, the tools read -----------------------------------------------------------


def test_seawall_wrote_plain_image_layouts(corpus: Corpus) -> None:
    img, multi = corpus.root / "usb" / "img", corpus.root / "usb" / "multi"
    for layout in (img, multi):
        assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
        for path in (layout / "blobs" / "sha256").iterdir():  # every blob named by its hash
            assert sha256(path.read_bytes()) == f"sha256:{path.name}"
        assert not [p for p in layout.iterdir() if p.name.startswith(".")], "temp files left"
    assert layout_tags(img) == {"v1": corpus.image.digest}
    assert layout_tags(multi) == {"1.0": corpus.index.digest}  # children: through the index
    untagged = {m["digest"] for m in index_json(img)["manifests"] if "annotations" not in m}
    assert untagged == {d for d, _ in corpus.referrers}  # referrers are roots of their own


def test_skopeo_reads_what_seawall_wrote(corpus: Corpus) -> None:
    skopeo, layouts = corpus.skopeo, corpus.root / "usb"
    raw = skopeo.run("inspect", "--raw", f"oci:{layouts}/img:v1").stdout
    assert sha256(raw) == corpus.image.digest
    raw = skopeo.run("inspect", "--raw", f"oci:{layouts}/multi:1.0").stdout
    assert sha256(raw) == corpus.index.digest
    info = json.loads(skopeo.run("inspect", f"oci:{layouts}/img:v1").stdout)
    assert info["Digest"] == corpus.image.digest
    assert info["Layers"] == [sha256(layer) for layer in corpus.image.layers]
    # a full copy reads every blob (skopeo verifies each) and keeps the digests
    skopeo.copy(
        f"oci:{layouts}/multi:1.0",
        corpus.registry.docker("from-skopeo/multi", "1.0"),
        "--all",
        "--preserve-digests",
        dest_registry=corpus.registry,
    )
    with corpus.http() as c:
        assert digest_of(c, "from-skopeo/multi", "1.0") == corpus.index.digest
        for image in corpus.index.images:
            assert digest_of(c, "from-skopeo/multi", image.digest) == image.digest


def test_skopeo_writing_a_seawall_layout_keeps_its_referrers(
    corpus: Corpus, tmp_path: Path
) -> None:
    img = tmp_path / "img"
    shutil.copytree(corpus.root / "usb" / "img", img)
    corpus.skopeo.copy(f"oci:{corpus.workdir}/built:1.0", f"oci:{img}:other", "--all")
    manifests = index_json(img)["manifests"]
    assert {m["digest"] for m in manifests if "annotations" not in m} == {
        d for d, _ in corpus.referrers
    }
    assert layout_tags(img) == {"v1": corpus.image.digest, "other": corpus.index.digest}


def test_umoci_reads_what_seawall_wrote(corpus: Corpus, tmp_path: Path) -> None:
    img = corpus.root / "usb" / "img"
    assert umoci("ls", "--layout", str(img)).split() == ["v1"]
    stat = json.loads(umoci("stat", "--image", f"{img}:v1", "--json"))
    layers = [h["layer"]["digest"] for h in stat["history"] if h.get("layer")]
    assert layers == [sha256(layer) for layer in corpus.image.layers]
    bundle = tmp_path / "bundle"
    umoci("unpack", "--rootless", "--image", f"{img}:v1", str(bundle))
    unpacked = bundle / "rootfs" / "etc" / "seawall" / "interop-1.txt"
    assert unpacked.read_text() == "seawall interop amd64 layer 1\n"


def test_umoci_gc_keeps_the_referrers_seawall_wrote(corpus: Corpus, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(corpus.root, root)
    img = root / "usb" / "img"
    before = sorted(p.name for p in (img / "blobs" / "sha256").iterdir())
    umoci("gc", "--layout", str(img))
    assert sorted(p.name for p in (img / "blobs" / "sha256").iterdir()) == before

    async def referrers() -> set[tuple[str, str | None]]:
        async with OciLayoutAdapter(EndpointConfig(f"file://{root}")) as adapter:
            found = await adapter.client().referrers("usb/img", corpus.image.digest)
        return {(d.digest, d.artifact_type) for d in found or []}

    assert anyio.run(referrers) == set(corpus.referrers)


OrasLogin = Callable[[], oras.provider.Registry]


@pytest.fixture
def oras_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, corpus: Corpus) -> OrasLogin:
    """Fresh oras-py clients logged in to the module's Seawall (config under tmp_path, not ~).
    One per target repository: oras-py keeps the first repository's token for the next one."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)

    def login() -> oras.provider.Registry:
        provider = oras.provider.Registry(hostname=corpus.registry.host, insecure=True)
        provider.login(
            username="admin",
            password=corpus.seawall.admin_password,
            hostname=corpus.registry.host,
            config_path=str(tmp_path / "oras-auth.json"),
        )
        return provider

    return login


def test_oras_py_reads_what_seawall_wrote(corpus: Corpus, oras_login: OrasLogin) -> None:
    host = corpus.registry.host
    for repo, tag, digest in (
        ("img", "v1", corpus.image.digest),
        ("multi", "1.0", corpus.index.digest),
    ):
        layout = OrasLayout(str(corpus.root / "usb" / repo))  # validates the layout
        assert layout.get_ordered_blobs(tag)[-1] == digest
        layout.push_to_registry(oras_login(), f"{host}/from-oras/{repo}:{tag}", tag=tag)
        with corpus.http() as c:
            assert digest_of(c, f"from-oras/{repo}", tag) == digest


# -- the tools write, Seawall reads ------------------------------------------------------------


@pytest.fixture
def tool_layouts(corpus: Corpus, oras_login: OrasLogin, tmp_path: Path) -> Path:
    """A root with layouts written by skopeo (``sk/multi``, ``sk/img`` with its referrers),
    umoci (``um/base``) and oras-py (``oras/img``)."""
    root = tmp_path / "tools"
    (root / "sk").mkdir(parents=True)  # skopeo creates the layout, not its parents
    skopeo, registry = corpus.skopeo, corpus.registry
    skopeo.copy(
        registry.docker("src/multi", "1.0"),
        f"oci:{root}/sk/multi:1.0",
        "--all",
        "--preserve-digests",
        src_registry=registry,
    )
    skopeo.copy(
        registry.docker("src/img", "v1"),
        f"oci:{root}/sk/img:v1",
        "--preserve-digests",
        src_registry=registry,
    )
    for digest, _ in sorted(corpus.referrers):  # by digest, untagged: as oras-go keeps them
        skopeo.copy(
            registry.docker("src/img", digest),
            f"oci:{root}/sk/img",
            "--preserve-digests",
            src_registry=registry,
        )
    base = root / "um" / "base"
    umoci("init", "--layout", str(base))
    umoci("new", "--image", f"{base}:new")
    hello = tmp_path / "hello.txt"
    hello.write_text("hello from umoci\n")
    umoci("insert", "--image", f"{base}:new", str(hello), "/etc/hello.txt")
    umoci("tag", "--image", f"{base}:new", "v2")
    host = registry.host
    NewLayoutFromRegistry(str(root / "oras" / "img"), oras_login(), f"{host}/src/img:v1", "v1")
    return root


def test_tool_written_layouts_are_read_and_replicated_into_seawall(
    corpus: Corpus, tool_layouts: Path
) -> None:
    root = tool_layouts
    umoci_tags = layout_tags(root / "um" / "base")
    assert sorted(umoci_tags) == ["new", "v2"]

    async def listed() -> tuple[list[str], dict[str, str], set[str]]:
        async with OciLayoutAdapter(EndpointConfig(f"file://{root}")) as adapter:
            names, listings = await adapter.catalog_listings()
            assert listings is not None
            refs = {f"{r}:{t}": m.digest for r, (_, ms) in listings.items() for t, m in ms.items()}
            found = await adapter.client().referrers("sk/img", corpus.image.digest)
        return names, refs, {d.digest for d in found or []}

    names, refs, referrers = anyio.run(listed)
    assert names == ["oras/img", "sk/img", "sk/multi", "um/base"]
    assert refs == {
        "oras/img:v1": corpus.image.digest,
        "sk/img:v1": corpus.image.digest,
        "sk/multi:1.0": corpus.index.digest,
        "um/base:new": umoci_tags["new"],
        "um/base:v2": umoci_tags["v2"],
    }
    assert referrers == {d for d, _ in corpus.referrers}

    with corpus.api() as a, corpus.http() as c:
        tools = add_layout_endpoint(a, "tools", root)
        replicate(
            a,
            "from-tools",
            src=tools,
            filters=[{"type": "name", "value": "**"}],
            dest_namespace="back",
            dest_namespace_replace_count=0,
        )
        for name, digest in refs.items():
            repo, tag = name.split(":")
            assert digest_of(c, f"back/{repo}", tag) == digest, name
        for image in corpus.index.images:
            assert digest_of(c, "back/sk/multi", image.digest) == image.digest
        assert tags(c, "back/um/base") == ["new", "v2"]
        listed_refs = c.get(f"/v2/back/sk/img/referrers/{corpus.image.digest}").json()
        got = {(m["digest"], m["artifactType"]) for m in listed_refs["manifests"]}
        assert got == set(corpus.referrers)


def test_seawall_sync_carries_a_layout_both_ways(corpus: Corpus, tmp_path: Path) -> None:
    """The air-gap flow of the docs: ``seawall sync`` from Seawall into a layout root on one
    side, from the layout root into (another) Seawall on the other."""
    usb, seawall = tmp_path / "usb", corpus.seawall
    usb.mkdir()
    creds = f"admin:{seawall.admin_password}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    for i, args in enumerate(
        (
            [f"{seawall.url}/src", f"file://{usb}", "--src-creds", creds],
            [f"file://{usb}", f"{seawall.url}/synced", "--dest-creds", creds],
        )
    ):
        state = tmp_path / f"state{i}"
        state.mkdir()
        argv = [sys.executable, "-m", "seawall", "sync", *args, "--state-dir", str(state)]
        result = subprocess.run(argv, capture_output=True, timeout=120, env=env, check=False)
        if result.returncode != 0:
            raise CommandFailed(argv, result)
    assert layout_tags(usb / "src" / "img") == {"v1": corpus.image.digest}
    with corpus.http() as c:
        assert digest_of(c, "synced/src/img", "v1") == corpus.image.digest
        assert digest_of(c, "synced/src/multi", "1.0") == corpus.index.digest
        listed = c.get(f"/v2/synced/src/img/referrers/{corpus.image.digest}").json()
        assert {(m["digest"], m["artifactType"]) for m in listed["manifests"]} == set(
            corpus.referrers
        )
