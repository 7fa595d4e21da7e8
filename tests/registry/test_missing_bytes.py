"""A linked blob whose bytes the store no longer holds (removed under it) is answered
``BLOB_UNKNOWN``, not a ``200`` whose connection drops after the headers."""

from __future__ import annotations

import hashlib

from tests.support.client import client, push_blob
from tests.support.server import SeawallProcess


def test_a_blob_whose_bytes_are_gone_is_unknown(fresh_seawall: SeawallProcess) -> None:
    server = fresh_seawall.start()
    data = b"bytes that will go missing" * 100
    with client(server.url, "admin", server.admin_password) as c:
        digest = push_blob(c, "gone/app", data)
        hexdigest = hashlib.sha256(data).hexdigest()
        files = list((server.data_dir / "storage").rglob(f"{hexdigest}/data"))
        assert len(files) == 1
        files[0].unlink()
        r = c.get(f"/v2/gone/app/blobs/{digest}", headers={"Range": "bytes=0-9"})
        assert r.status_code == 404, r.status_code
        assert r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
        assert c.get("/v2/").status_code == 200  # the server is fine
