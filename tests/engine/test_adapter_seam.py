"""The engine works through the adapter (issue 8, item 1), seen from outside through
``seawall sync`` between two real Seawall registries, the destination of a test type:

- each destination repository is checked (``check_name``) and prepared once per run, however
  many artifacts go to it;
- a name the destination type cannot hold fails that task with the adapter's reason, and the
  rest of the run is copied;
- deletion follows the declared capability: a type without tag deletes is deleted by digest,
  without a failed tag ``DELETE`` first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import anyio
import httpx
import pytest

from adapters import registry
from adapters.base import Capabilities
from adapters.seawall import SeawallAdapter
from engine.oneshot import SyncSide, sync_once
from tests.support.client import client, push_image
from tests.support.server import SeawallProcess

PREPARED: list[str] = []


class NarrowAdapter(SeawallAdapter):
    """A Seawall seen as a type that holds two path components at most, prepares (counts)
    each repository before a push, and cannot delete tags."""

    type: ClassVar[str] = "test-narrow"
    capabilities: ClassVar[Capabilities] = Capabilities(
        catalog=True,
        referrers_api=True,
        blob_mount=True,
        chunked_upload=True,
        delete_tag=False,
        delete_manifest=True,
        create_namespace=True,
        max_path_components=2,
    )

    async def prepare_repository(self, name: str) -> None:
        await super().prepare_repository(name)
        PREPARED.append(name)


@pytest.fixture(scope="module", autouse=True)
def narrow_type() -> None:
    registry.register(NarrowAdapter)


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[SeawallProcess]:
    proc = SeawallProcess(tmp_path / "remote").start()
    yield proc
    proc.kill()


def sync(src: SeawallProcess, dst: SeawallProcess, state: Path, **kw: Any) -> Any:
    a = SyncSide(f"{src.url}/seam", "admin", src.admin_password)
    b = SyncSide(f"{dst.url}/m", "admin", dst.admin_password, type="test-narrow")
    return anyio.run(lambda: sync_once(a, b, state, **kw))


def status(c: httpx.Client, repo: str, ref: str) -> int:
    accept = "application/vnd.oci.image.manifest.v1+json"
    return c.head(f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept}).status_code


def test_names_preparation_and_deletes_go_through_the_adapter(
    seawall: SeawallProcess, remote: SeawallProcess, tmp_path: Path
) -> None:
    PREPARED.clear()
    state = tmp_path / "state"
    state.mkdir()
    with client(seawall.url, "admin", seawall.admin_password) as c:
        digests = {
            tag: push_image(c, "seam/app", tag, seed=f"seam{tag}")[0]
            for tag in ("1", "2", "3", "4", "5", "6")
        }
        push_image(c, "seam/deep/app", "1", seed="deep")  # -> m/deep/app: 3 components
    result = sync(seawall, remote, state)
    assert result.status == "Failed", result.tasks
    failed = [t for t in result.tasks if t["status"] == "Failed"]
    assert [t["dst_repository"] for t in failed] == ["m/deep/app"]
    assert "3 path component(s)" in failed[0]["reason"]
    assert "test-narrow registries need 1 to 2" in failed[0]["reason"]
    assert PREPARED == ["m/app"]  # six artifacts, one preparation; none for the refused name
    with client(remote.url, "admin", remote.admin_password) as r:
        for tag, digest in digests.items():
            assert r.head(f"/v2/m/app/manifests/{tag}").headers["Docker-Content-Digest"] == digest
        assert status(r, "m/deep/app", "1") == 404

    with client(seawall.url, "admin", seawall.admin_password) as c:
        assert c.delete(f"/v2/seam/app/manifests/{digests['6']}").status_code == 202
    result = sync(seawall, remote, state, deletion=True)
    deleted = [t for t in result.tasks if t["operation"] == "deletion"]
    assert [t["outcome"] for t in deleted] == ["deleted"], result.tasks
    with client(remote.url, "admin", remote.admin_password) as r:
        # by digest, as the type declares: the manifest is gone, not just the tag
        assert status(r, "m/app", "6") == 404
        assert status(r, "m/app", digests["6"]) == 404
        assert status(r, "m/app", "5") == 200
