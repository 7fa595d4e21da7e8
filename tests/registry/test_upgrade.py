"""A data directory from a version before versioned migrations, even one older than the
baseline revision (tables without columns added since), keeps working: the first revisions add
the missing columns at start, with their defaults."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.migrations.support import unpack
from tests.replication.support import add_policy, api, start, wait
from tests.support.server import SeawallProcess


def test_columns_added_since_are_added_at_start(
    fresh_seawall: SeawallProcess, tmp_path: Path
) -> None:
    assert unpack(tmp_path) == fresh_seawall.data_dir  # written by 9420392, before migrations
    db = sqlite3.connect(fresh_seawall.data_dir / "seawall.db")
    db.execute("ALTER TABLE execution DROP COLUMN scope_json")  # as before event triggers
    db.execute("ALTER TABLE registry_endpoint DROP COLUMN webhook_secret_encrypted")
    db.commit()
    db.close()
    local = fresh_seawall.start()
    with api(local.url, local.admin_password) as a:
        r = a.post(
            "/registries",
            json={
                "name": "far-after-upgrade",
                "type": "docker-registry",
                "url": "http://127.0.0.1:9",
                "webhook_secret": "0123456789abcdef-secret",
            },
        )
        assert r.status_code == 201, r.text
        rid = int(r.headers["Location"].rsplit("/", 1)[1])
        assert a.get(f"/registries/{rid}").json()["webhook_secret"] == "*****"
        pid = add_policy(a, "after-upgrade", src=rid)
        ex = wait(a, start(a, pid, dry_run=True), 60)
        assert ex["status"] in ("Succeed", "Failed"), ex  # it ran (the far side is down)
