"""Authentication and authorization from the outside: the token endpoint (Docker token flow),
HTTP Basic on /v2/ routes, bad and tampered bearer tokens, and users and robots made with the CLI
getting exactly their grants.

A right that is missing is refused as ``403 DENIED`` or, for a bearer token lacking the scope,
``401 UNAUTHORIZED`` with an ``error="insufficient_scope"`` challenge (RFC 6750 and the Docker
token spec, what CNCF distribution answers); the OCI spec defines the codes, not the choice.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import jwt
import pytest

from tests.protocol.helpers import (
    HEADERS,
    Target,
    assert_error,
    blob_data,
    hooks,
    push_blob,
    push_image,
    sha256,
)
from tests.support.client import ACCEPT, client

pytestmark = pytest.mark.seawall_only


def seawall_cli(data_dir: Path, *commands: list[str]) -> list[str]:
    """Run ``seawall <command> --data-dir DIR`` for each command, concurrently; their stdouts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "seawall", *args, "--data-dir", str(data_dir)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    outs = []
    for args, proc in zip(commands, procs, strict=True):
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"seawall {args[:2]} failed:\n{stdout}\n{stderr[-1500:]}"
        outs.append(stdout)
    return outs


@dataclass
class Accounts:
    token: str
    user: str
    user_password: str
    robot: str  # the robot's username: robot$<name>
    robot_secret: str

    @property
    def team(self) -> str:  # the user may pull here
        return f"team-{self.token}/app"

    @property
    def other(self) -> str:  # nobody but admin
        return f"other-{self.token}/app"

    @property
    def robots(self) -> str:  # the robot may pull and push under robots-<token>/
        return f"robots-{self.token}"


@pytest.fixture(scope="module")
def accounts(target: Target) -> Accounts:
    if target.external:
        pytest.skip("needs Seawall")
    t = uuid.uuid4().hex[:8]
    user, password = f"reader-{t}", f"pw-{uuid.uuid4().hex}"
    _, robot_out = seawall_cli(
        target.data_dir,
        ["user", "add", user, "--password", password, "--allow", f"team-{t}/*=pull"],
        ["robot", "add", f"ci-{t}", "--allow", f"robots-{t}/*=pull,push"],
    )
    secret = robot_out.strip().splitlines()[-1].strip()
    assert secret and " " not in secret, robot_out
    acc = Accounts(t, user, password, f"robot$ci-{t}", secret)
    with client(target.url, target.username, target.password) as admin:
        for repo in (acc.team, acc.other, f"{acc.robots}/base"):
            push_image(admin, repo, "v1")
    return acc


def as_user(target: Target, username: str, password: str, flow: str) -> httpx.Client:
    if flow == "token":
        return client(target.url, username, password, event_hooks=hooks(), headers=HEADERS)
    return httpx.Client(
        base_url=target.url,
        auth=httpx.BasicAuth(username, password),
        timeout=60,
        event_hooks=hooks(),
        headers=HEADERS,
    )


def assert_denied(r: httpx.Response) -> None:
    if r.status_code == 401:
        assert_error(r, 401, "UNAUTHORIZED")
        challenge = r.headers.get("WWW-Authenticate", "")
        assert challenge.lower().startswith("bearer "), challenge
        assert 'error="insufficient_scope"' in challenge, challenge
    else:
        assert_error(r, 403, "DENIED")


def challenge_params(c: httpx.Client, path: str = "/v2/") -> dict[str, str]:
    r = c.get(path)
    assert r.status_code == 401
    return dict(re.findall(r'(\w+)="([^"]*)"', r.headers["WWW-Authenticate"]))


# --------------------------------------------------------------------------- token endpoint


def get_token(
    target: Target, scope: str | None, username: str | None, password: str | None
) -> httpx.Response:
    with httpx.Client(base_url=target.url, timeout=30, event_hooks=hooks()) as anon:
        params = challenge_params(anon)
        realm = params.pop("realm")
        query = {"service": params["service"]}
        if scope:
            query["scope"] = scope
        auth = httpx.BasicAuth(username, password or "") if username else None
        return anon.get(realm, params=query, auth=auth)


def test_token_endpoint(target: Target, accounts: Accounts) -> None:
    scope = f"repository:{accounts.team}:pull,push"
    r = get_token(target, scope, target.username, target.password)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token"] and body["access_token"] == body["token"]
    assert isinstance(body["expires_in"], int) and body["expires_in"] >= 60
    issued = datetime.fromisoformat(body["issued_at"].replace("Z", "+00:00"))
    assert issued.tzinfo is not None
    bearer = {"Authorization": f"Bearer {body['token']}"}
    with httpx.Client(base_url=target.url, timeout=30, event_hooks=hooks()) as c:
        assert c.get("/v2/", headers=bearer).status_code == 200
        r = c.get(f"/v2/{accounts.team}/manifests/v1", headers={**bearer, "Accept": ACCEPT})
        assert r.status_code == 200, r.text
        r = c.post(f"/v2/{accounts.team}/blobs/uploads/", headers=bearer)
        assert r.status_code == 202, r.text


def test_token_endpoint_oauth2_post(target: Target, accounts: Accounts) -> None:
    """The OAuth2 password grant (what containerd tries first) gives a token too."""
    with httpx.Client(base_url=target.url, timeout=30) as anon:
        params = challenge_params(anon)
        r = anon.post(
            params["realm"],
            data={
                "grant_type": "password",
                "username": target.username,
                "password": target.password,
                "service": params["service"],
                "scope": f"repository:{accounts.team}:pull",
                "client_id": "protocol-tests",
            },
        )
    assert r.status_code == 200, r.text
    assert r.json()["access_token"]


@pytest.mark.parametrize("who", ["wrong-password", "unknown-user", "empty-password"])
def test_token_endpoint_bad_credentials(target: Target, accounts: Accounts, who: str) -> None:
    username, password = {
        "wrong-password": (target.username, "not-the-password"),
        "unknown-user": (f"nobody-{accounts.token}", "whatever"),
        "empty-password": (target.username, ""),
    }[who]
    r = get_token(target, f"repository:{accounts.team}:pull", username, password)
    assert r.status_code == 401, r.text


def test_anonymous_token_grants_nothing(target: Target, accounts: Accounts) -> None:
    """Without credentials the realm may hand out a token, but not one that pulls."""
    r = get_token(target, f"repository:{accounts.team}:pull", None, None)
    if r.status_code != 200:
        assert r.status_code == 401
        return
    bearer = {"Authorization": f"Bearer {r.json()['token']}"}
    with httpx.Client(base_url=target.url, timeout=30, event_hooks=hooks()) as c:
        r = c.get(f"/v2/{accounts.team}/manifests/v1", headers=bearer)
        assert r.status_code in (401, 403), r.text


def test_basic_on_v2_routes(target: Target, accounts: Accounts) -> None:
    with as_user(target, target.username or "", target.password or "", "basic") as c:
        assert c.get("/v2/").status_code == 200
        r = c.get(f"/v2/{accounts.team}/tags/list")
        assert r.status_code == 200 and r.json()["tags"] == ["v1"]
        digest = push_blob(c, accounts.team, blob_data(50))
        assert c.head(f"/v2/{accounts.team}/blobs/{digest}").status_code == 200


# --------------------------------------------------------------------------- bad tokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _bad_token(kind: str, good: str) -> str:
    header, payload, signature = good.split(".")
    claims = json.loads(_unb64(payload))
    if kind == "garbage":
        return "not-a-token"
    if kind == "empty":
        return ""
    if kind == "flipped-signature":
        mid = len(signature) // 2
        flipped = "A" if signature[mid] != "A" else "B"
        return f"{header}.{payload}.{signature[:mid]}{flipped}{signature[mid + 1 :]}"
    if kind == "tampered-payload":
        claims["sub"] = "admin-" + claims.get("sub", "x")
        return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    if kind == "alg-none":
        none = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        return f"{none}.{payload}."
    if kind == "wrong-key":
        return jwt.encode(claims, "not-the-registry-key-" + "x" * 32, algorithm="HS256")
    if kind == "expired":
        claims["exp"] = 1_000_000_000
        return jwt.encode(claims, "not-the-registry-key-" + "x" * 32, algorithm="HS256")
    raise AssertionError(kind)


BAD_TOKENS = [
    "garbage",
    "empty",
    "flipped-signature",
    "tampered-payload",
    "alg-none",
    "wrong-key",
    "expired",
]


@pytest.mark.parametrize("kind", BAD_TOKENS)
@pytest.mark.parametrize("path", ["/v2/", "team"])
def test_bad_bearer_token(target: Target, accounts: Accounts, kind: str, path: str) -> None:
    r = get_token(target, f"repository:{accounts.team}:pull", target.username, target.password)
    token = _bad_token(kind, r.json()["token"])
    url = f"/v2/{accounts.team}/manifests/v1" if path == "team" else path
    with httpx.Client(base_url=target.url, timeout=30, event_hooks=hooks()) as c:
        r = c.get(url, headers={"Authorization": f"Bearer {token}".strip()})
    assert_error(r, 401, "UNAUTHORIZED")
    assert r.headers.get("WWW-Authenticate", "").lower().startswith("bearer "), r.headers


def test_token_for_one_repository_not_valid_for_another(target: Target, accounts: Accounts) -> None:
    r = get_token(target, f"repository:{accounts.team}:pull", accounts.user, accounts.user_password)
    bearer = {"Authorization": f"Bearer {r.json()['token']}"}
    with httpx.Client(base_url=target.url, timeout=30, event_hooks=hooks()) as c:
        assert c.get(f"/v2/{accounts.team}/tags/list", headers=bearer).status_code == 200
        assert_denied(c.get(f"/v2/{accounts.other}/tags/list", headers=bearer))
        assert_denied(c.post(f"/v2/{accounts.team}/blobs/uploads/", headers=bearer))


def test_repository_token_carries_push_the_account_has(target: Target, accounts: Accounts) -> None:
    """A pull-scoped token also grants push when the account may push there (so clients that
    keep one token, like oras-py, can push after their first HEAD); never delete unasked."""
    name = f"{accounts.robots}/widen"
    r = get_token(target, f"repository:{name}:pull", accounts.robot, accounts.robot_secret)
    bearer = {"Authorization": f"Bearer {r.json()['token']}"}
    with httpx.Client(base_url=target.url, timeout=30, event_hooks=hooks()) as c:
        assert c.post(f"/v2/{name}/blobs/uploads/", headers=bearer).status_code == 202
        assert_denied(c.delete(f"/v2/{name}/manifests/latest", headers=bearer))


# --------------------------------------------------------------------------- user and robot


@pytest.fixture(params=["token", "basic"])
def reader(
    request: pytest.FixtureRequest, target: Target, accounts: Accounts
) -> Iterator[httpx.Client]:
    with as_user(target, accounts.user, accounts.user_password, request.param) as c:
        yield c


@pytest.fixture(params=["token", "basic"])
def robot(
    request: pytest.FixtureRequest, target: Target, accounts: Accounts
) -> Iterator[httpx.Client]:
    with as_user(target, accounts.robot, accounts.robot_secret, request.param) as c:
        yield c


def test_user_can_pull(reader: httpx.Client, accounts: Accounts) -> None:
    r = reader.get(f"/v2/{accounts.team}/manifests/v1", headers={"Accept": ACCEPT})
    assert r.status_code == 200, r.text
    layer = json.loads(r.content)["layers"][0]["digest"]
    assert reader.get(f"/v2/{accounts.team}/blobs/{layer}").status_code == 200
    assert reader.get(f"/v2/{accounts.team}/tags/list").json()["tags"] == ["v1"]
    assert reader.get("/v2/").status_code == 200


def test_user_cannot_push_or_delete(reader: httpx.Client, accounts: Accounts) -> None:
    data = blob_data(20)
    assert_denied(reader.post(f"/v2/{accounts.team}/blobs/uploads/"))
    assert_denied(
        reader.post(
            f"/v2/{accounts.team}/blobs/uploads/", params={"digest": sha256(data)}, content=data
        )
    )
    r = reader.get(f"/v2/{accounts.team}/manifests/v1", headers={"Accept": ACCEPT})
    digest = r.headers["Docker-Content-Digest"]
    assert_denied(
        reader.put(
            f"/v2/{accounts.team}/manifests/v2",
            content=r.content,
            headers={"Content-Type": r.headers["Content-Type"]},
        )
    )
    assert_denied(reader.delete(f"/v2/{accounts.team}/manifests/{digest}"))
    assert_denied(reader.delete(f"/v2/{accounts.team}/manifests/v1"))
    assert reader.get(f"/v2/{accounts.team}/manifests/v1").status_code == 200  # untouched


@pytest.mark.parametrize("where", ["other", "unknown"])
def test_user_cannot_read_other_repositories(
    reader: httpx.Client, accounts: Accounts, where: str
) -> None:
    name = accounts.other if where == "other" else f"other-{accounts.token}/nothing-here"
    assert_denied(reader.get(f"/v2/{name}/manifests/v1"))
    assert_denied(reader.get(f"/v2/{name}/tags/list"))


def test_user_cannot_list_catalog(reader: httpx.Client) -> None:
    assert_denied(reader.get("/v2/_catalog"))


def test_robot_can_push_and_pull(robot: httpx.Client, accounts: Accounts) -> None:
    name = f"{accounts.robots}/app-{uuid.uuid4().hex[:6]}"
    _, body = push_image(robot, name, "v1")
    r = robot.get(f"/v2/{name}/manifests/v1", headers={"Accept": ACCEPT})
    assert r.status_code == 200 and r.content == body


def test_robot_cannot_delete_or_leave_its_repositories(
    robot: httpx.Client, accounts: Accounts
) -> None:
    base = f"{accounts.robots}/base"
    r = robot.get(f"/v2/{base}/manifests/v1", headers={"Accept": ACCEPT})
    assert r.status_code == 200
    assert_denied(robot.delete(f"/v2/{base}/manifests/{r.headers['Docker-Content-Digest']}"))
    assert_denied(robot.post(f"/v2/{accounts.team}/blobs/uploads/"))
    assert_denied(robot.get(f"/v2/{accounts.other}/manifests/v1"))
    assert_denied(robot.get("/v2/_catalog"))


def test_robot_mount_needs_pull_on_source(
    target: Target, robot: httpx.Client, accounts: Accounts
) -> None:
    """A mount from a repository the robot cannot read is not a mount (202 upload session or
    a denial), and the blob does not appear in the robot's repository."""
    with client(target.url, target.username, target.password) as admin:
        secret = push_blob(admin, accounts.other, blob_data(64))
        own = push_blob(admin, f"{accounts.robots}/base", blob_data(64))
    name = f"{accounts.robots}/mount-{uuid.uuid4().hex[:6]}"
    r = robot.post(f"/v2/{name}/blobs/uploads/", params={"mount": secret, "from": accounts.other})
    assert r.status_code in (202, 401, 403), (r.status_code, r.text)
    assert_error(robot.head(f"/v2/{name}/blobs/{secret}"), 404)
    r = robot.post(
        f"/v2/{name}/blobs/uploads/", params={"mount": own, "from": f"{accounts.robots}/base"}
    )
    assert r.status_code == 201, (r.status_code, r.text)
    assert robot.head(f"/v2/{name}/blobs/{own}").status_code == 200


def test_robot_mount_without_from_cannot_take_unreadable_blob(
    target: Target, robot: httpx.Client, accounts: Accounts
) -> None:
    """``from`` is optional, but a mount without it must not hand out a blob that only
    repositories the caller cannot read hold (knowing a digest is not a right to its bytes)."""
    with client(target.url, target.username, target.password) as admin:
        secret = push_blob(admin, accounts.other, blob_data(64))
    name = f"{accounts.robots}/steal-{uuid.uuid4().hex[:6]}"
    r = robot.post(f"/v2/{name}/blobs/uploads/", params={"mount": secret})
    assert r.status_code in (202, 401, 403), (r.status_code, r.text)
    assert_error(robot.head(f"/v2/{name}/blobs/{secret}"), 404)
    assert_error(robot.get(f"/v2/{name}/blobs/{secret}"), 404, "BLOB_UNKNOWN", "NAME_UNKNOWN")


@pytest.mark.parametrize(
    "who", ["robot-wrong-secret", "user-wrong-password", "robot-without-prefix"]
)
def test_account_bad_credentials(target: Target, accounts: Accounts, who: str) -> None:
    username, password = {
        "robot-wrong-secret": (accounts.robot, accounts.robot_secret + "x"),
        "user-wrong-password": (accounts.user, "nope"),
        "robot-without-prefix": (accounts.robot.removeprefix("robot$"), accounts.robot_secret),
    }[who]
    with as_user(target, username, password, "basic") as c:
        assert_error(c.get(f"/v2/{accounts.team}/tags/list"), 401, "UNAUTHORIZED")
    assert get_token(target, None, username, password).status_code == 401
