"""``/service/token`` and bearer tokens, from the outside: the number of scopes and the size of
a token are bounded for everyone (anonymous callers too); a flood of huge tokens does not grow
the server's memory; a deleted account's tokens stop working at once, not at expiry."""

from __future__ import annotations

import secrets
import time
import uuid

import httpx
import jwt
import pytest

from tests.hardening.registry_support import (
    assert_oci_error,
    get_token,
    seawall_cli,
    server_rss_kib,
)
from tests.support.client import client, push_image
from tests.support.server import SeawallProcess

MiB = 1024
MAX_SCOPES = 32  # docs/registry-api.md


def _token_response(url: str, scopes: list[str], auth: tuple[str, str] | None) -> httpx.Response:
    params = [("service", "seawall"), *(("scope", s) for s in scopes)]
    return httpx.get(f"{url}/service/token", params=params, auth=auth, timeout=30)


@pytest.mark.parametrize("who", ["anonymous", "admin"])
def test_scope_count_is_bounded_for_everyone(seawall: SeawallProcess, who: str) -> None:
    auth = ("admin", seawall.admin_password) if who == "admin" else None
    many = [f"repository:r{i}:pull" for i in range(2000)]  # ~50 KB of query
    for scopes in (many, [" ".join(many)], many[: MAX_SCOPES + 1]):
        r = _token_response(seawall.url, scopes, auth)
        codes = assert_oci_error(r.status_code, r.headers["content-type"], r.content, who)
        assert r.status_code == 400 and codes == ["UNAUTHORIZED"], r.text[:300]
        assert str(MAX_SCOPES) in r.text or "characters" in r.text, r.text[:300]


@pytest.mark.parametrize("who", ["anonymous", "admin"])
def test_largest_token_anyone_can_get_is_small(seawall: SeawallProcess, who: str) -> None:
    auth = ("admin", seawall.admin_password) if who == "admin" else None
    name = "a" * 90  # 32 scopes x 122 characters: just under the 4 KiB of scope text
    scopes = [f"repository:t{i:02d}/{name}:pull,push,delete" for i in range(MAX_SCOPES)]
    r = _token_response(seawall.url, scopes, auth)
    assert r.status_code == 200, r.text[:300]
    assert len(r.json()["token"]) < 12 * 1024


def _forged_token(key: bytes, scopes: int) -> str:
    """A token signed with the server's own key, shaped as the old endpoint issued for
    ``scopes`` scopes (it could mint 2,000): what a client may still present."""
    now = int(time.time())
    claims = {
        "iss": "seawall",
        "aud": "seawall",
        "sub": "admin",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(16),
        "access": [
            {"type": "repository", "name": f"flood/r{i:05d}", "actions": ["pull", "push"]}
            for i in range(scopes)
        ],
    }
    return jwt.encode(claims, key, algorithm="HS256")


def test_flood_of_huge_tokens_does_not_grow_memory(fresh_seawall: SeawallProcess) -> None:
    server = fresh_seawall.start()
    key = (server.data_dir / "token.key").read_bytes().strip()
    tokens = [_forged_token(key, 2000) for _ in range(300)]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get("/v2/", headers={"Authorization": f"Bearer {tokens[0]}"}).status_code
        before = server_rss_kib(server)
        answers = [c.get("/v2/", headers={"Authorization": f"Bearer {t}"}) for t in tokens]
        after = server_rss_kib(server)
        assert c.get("/healthz").status_code == 200
    assert after - before < 50 * MiB, f"RSS grew {(after - before) // MiB} MiB on 300 tokens"
    for r in answers:  # longer than any token the server issues: refused unread
        assert r.status_code == 401, (r.status_code, r.text[:200])
        assert 'error="invalid_token"' in r.headers["www-authenticate"]


def _pull(url: str, repo: str, token: str) -> int:
    r = httpx.get(
        f"{url}/v2/{repo}/tags/list", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    return r.status_code


def _refused_within(url: str, repo: str, token: str, seconds: float) -> float | None:
    """Seconds until the token is refused (401), or None if it still works after ``seconds``."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        status = _pull(url, repo, token)
        if status == 401:
            return time.monotonic() - started
        assert status == 200, status
        time.sleep(0.1)
    return None


@pytest.mark.parametrize("kind", ["robot", "user"])
def test_deleted_accounts_token_stops_working_at_once(seawall: SeawallProcess, kind: str) -> None:
    t = uuid.uuid4().hex[:8]
    repo = f"revoke-{t}/app"
    with client(seawall.url, "admin", seawall.admin_password) as admin:
        push_image(admin, repo, "v1")
    if kind == "robot":
        out = seawall_cli(seawall.data_dir, "robot", "add", f"ci-{t}", "--allow", f"{repo}=pull")
        name, password = f"robot$ci-{t}", out.strip().splitlines()[-1].strip()
    else:
        name, password = f"u-{t}", f"pw-{uuid.uuid4().hex}"
        seawall_cli(
            seawall.data_dir, "user", "add", name, "--password", password, "--allow", f"{repo}=pull"
        )
    token = get_token(seawall.url, f"repository:{repo}:pull", (name, password))
    assert _pull(seawall.url, repo, token) == 200
    seawall_cli(seawall.data_dir, kind, "delete", name)
    # another process deleted it: seen within the account cache's TTL (2 s), not at expiry (5 min)
    took = _refused_within(seawall.url, repo, token, seconds=4.0)
    assert took is not None, f"the deleted {kind}'s token still works"


def test_recreated_account_does_not_revive_old_tokens(seawall: SeawallProcess) -> None:
    t = uuid.uuid4().hex[:8]
    repo, name, password = f"revive-{t}/app", f"r-{t}", f"pw-{t}-{uuid.uuid4().hex}"
    with client(seawall.url, "admin", seawall.admin_password) as admin:
        push_image(admin, repo, "v1")
    grant = f"{repo}=pull"
    seawall_cli(seawall.data_dir, "user", "add", name, "--password", password, "--allow", grant)
    old = get_token(seawall.url, f"repository:{repo}:pull", (name, password))
    seawall_cli(seawall.data_dir, "user", "delete", name)
    seawall_cli(seawall.data_dir, "user", "add", name, "--password", password, "--allow", grant)
    assert _refused_within(seawall.url, repo, old, seconds=4.0) is not None
    new = get_token(seawall.url, f"repository:{repo}:pull", (name, password))
    assert _pull(seawall.url, repo, new) == 200
