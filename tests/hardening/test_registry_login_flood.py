"""A flood of wrong passwords does not slow a legitimate manifest GET (the issue's target: p99
under 50 ms while it runs).

How it is measured: a server of the test's own (the flood leaves its address throttled); a
manifest pushed and a pull token fetched first; GETs on one kept-alive connection for 2 s
before and 2 s after give the baseline (the machine's own noise over a like span). In between,
a separate process (so the flood's client work does not share this process's GIL with the
measuring client) sends 60 wrong passwords a second (twice the issue's 29/s) from 8 threads for
4 s — Basic at the token endpoint, the OAuth2 form, and Basic on ``/v2/`` — while GETs are
timed for those 4 s.

Asserted: p99 under 50 ms and the median under 10 ms — or, where a loaded machine makes even
the baseline slow, 4x the baseline's p99 and 3x its median (all printed). Before the fix every
wrong password ran scrypt (~50 ms) on the event loop: at 60/s the loop was saturated, GETs
queued behind the checks (median 138 ms, p99 636 ms measured here).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from tests.hardening.registry_support import get_token, percentile, timed_gets
from tests.support.client import client, push_image
from tests.support.server import SeawallProcess

FLOOD = r"""
import base64, collections, json, sys, threading, time, uuid
import httpx
url, seconds, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
THREADS = 8
counts, lock = collections.Counter(), threading.Lock()
def basic(user, pw):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}
def flood(i, start):
    with httpx.Client(base_url=url, timeout=30) as c:
        n = 0
        while (due := start + (n * THREADS + i) / rate) < start + seconds:
            time.sleep(max(0.0, due - time.monotonic()))  # paced: `rate` logins/s in all
            user = ("admin", f"user-{uuid.uuid4().hex[:6]}")[n % 2]
            pw = uuid.uuid4().hex
            kind = n % 3
            if kind == 0:
                r = c.get("/service/token", params={"service": "seawall"}, headers=basic(user, pw))
            elif kind == 1:
                r = c.post("/service/token", data={"grant_type": "password",
                           "username": user, "password": pw, "service": "seawall"})
            else:
                r = c.get("/v2/_catalog", headers=basic(user, pw))
            with lock:
                counts[r.status_code] += 1
            n += 1
start = time.monotonic()
threads = [threading.Thread(target=flood, args=(i, start)) for i in range(THREADS)]
print("ready", flush=True)
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(counts))
"""


def test_manifest_gets_stay_fast_during_a_bad_login_flood(fresh_seawall: SeawallProcess) -> None:
    server = fresh_seawall.start()
    repo = f"flood/{uuid.uuid4().hex[:8]}"
    with client(server.url, "admin", server.admin_password) as admin:
        push_image(admin, repo, "v1")
    token = get_token(server.url, f"repository:{repo}:pull", ("admin", server.admin_password))
    path = f"/v2/{repo}/manifests/v1"
    before = timed_gets(server.url, path, token, 5000, for_seconds=2.0)
    flood = subprocess.Popen(
        [sys.executable, "-c", FLOOD, server.url, "4", "60"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert flood.stdout is not None and flood.stdout.readline().strip() == "ready"
        during = timed_gets(server.url, path, token, 5000, for_seconds=4.0)
        out, _ = flood.communicate(timeout=60)
    finally:
        flood.kill()
    after = timed_gets(server.url, path, token, 5000, for_seconds=2.0)
    counts = {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}
    ms = {
        name: (round(percentile(v, 50) * 1000, 1), round(percentile(v, 99) * 1000, 1))
        for name, v in (("before", before), ("during", during), ("after", after))
    }
    print(f"flood answers {counts}; manifest GET (p50, p99) ms: {ms}, {len(during)} during")
    base_p50, base_p99 = max(ms["before"][0], ms["after"][0]), max(ms["before"][1], ms["after"][1])
    p50, p99 = ms["during"]
    assert p99 < max(50, 4 * base_p99), f"p99 {p99:.0f} ms during the flood ({ms})"
    assert p50 < max(10, 3 * base_p50), f"median {p50:.1f} ms during the flood ({ms})"
    assert set(counts) <= {401, 429}, counts  # wrong passwords, then throttled: never a 5xx
    assert sum(counts.values()) >= 120, f"the flood hardly ran: {counts}"
    assert server.proc is not None and server.proc.poll() is None
