"""Set up a replication policy on a running Seawall for the sync benchmark; print its id.

    policy_setup.py SRC_URL DST_URL --prefix bench --dest-ns mirror --password PW

On SRC (a ``seawall serve``) it makes sure of a ``seawall`` registry endpoint for DST and a
push-based manual policy ``SRC/PREFIX/** -> DST/DEST_NS/...`` (created once, reused after).
``run_policy.sh`` then runs it, once per timed step: the way a deployment replicates (a policy
on a server), with no process start-up in the engine's time.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.request
from typing import Any

POLICY = "bench-sync"


def call(base: str, auth: str, method: str, path: str, body: Any = None) -> tuple[Any, Any]:
    """(JSON body, headers) of one management API call."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}/api/v2.0{path}", data=data, method=method)
    req.add_header("Authorization", auth)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        raw = r.read()
        return (json.loads(raw) if raw else None), r.headers


def ensure_policy(base: str, auth: str, dst: str, user: str, password: str, a: Any) -> int:
    found, _ = call(base, auth, "GET", f"/replication/policies?q=name%3D{POLICY}")
    if found:
        return int(found[0]["id"])
    endpoint = {
        "name": "bench-dst",
        "type": "seawall",
        "url": dst,
        "insecure": True,
        "credential": {"type": "basic", "access_key": user, "access_secret": password},
    }
    found, _ = call(base, auth, "GET", "/registries?q=name%3Dbench-dst")
    if found:
        registry_id = int(found[0]["id"])
    else:
        _, h = call(base, auth, "POST", "/registries", endpoint)
        registry_id = created_id(h)
    policy = {
        "name": POLICY,
        "src_registry": None,
        "dest_registry": {"id": registry_id},
        "dest_namespace": a.dest_ns,
        "dest_namespace_replace_count": 1,
        "filters": [{"type": "name", "value": f"{a.prefix}/**"}],
        "trigger": {"type": "manual"},
        "override": True,
        "enabled": True,
    }
    _, h = call(base, auth, "POST", "/replication/policies", policy)
    return created_id(h)


def created_id(headers: Any) -> int:
    return int(headers["Location"].rstrip("/").rsplit("/", 1)[1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--prefix", default="bench")
    p.add_argument("--dest-ns", default="mirror")
    p.add_argument("--user", default="admin")
    p.add_argument("--password", required=True)
    a = p.parse_args()
    base = a.src.rstrip("/")
    auth = "Basic " + base64.b64encode(f"{a.user}:{a.password}".encode()).decode()
    print(ensure_policy(base, auth, a.dst.rstrip("/"), a.user, a.password, a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
