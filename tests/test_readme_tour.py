"""README's five-minute tour, run as written on a fresh data directory in a temporary working
directory. Substituted only what cannot run here: ports 5000/5001 → free ports (and
``SEAWALL_URL`` for the CLI, whose default is port 5000), ``scripts/serve`` (it changes to the
repository root) → ``python -m seawall serve``, ``.venv/bin/seawall`` → this venv's, ``app.tar``
made by skopeo from a small image the test pushes, and podman's storage/auth files in the
temporary directory. Each command must succeed and its outcome is checked."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from tests.support.client import client, push_blob
from tests.support.server import free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

pytestmark = pytest.mark.skipif(
    not (shutil.which("skopeo") and shutil.which("podman")), reason="needs skopeo and podman"
)


def tour_commands() -> list[str]:
    """The tour's ``sh`` blocks, one command per entry (continuation lines joined)."""
    text = (ROOT / "README.md").read_text()
    tour = text.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", tour, re.S):
        for cmd in re.sub(r"\\\n\s*", "", block).splitlines():
            if cmd.strip():
                commands.append(cmd.strip())
    return commands


def _small_image(url: str, repo: str, ref: str) -> None:
    """A real (unpackable) one-layer image."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = b"hello from the tour\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    layer = gzip.compress(raw.getvalue(), mtime=0)
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    with client(url, "admin", "change-me") as c:
        cd, ld = push_blob(c, repo, config), push_blob(c, repo, layer)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": cd,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": ld,
                    "size": len(layer),
                }
            ],
        }
        r = c.put(
            f"/v2/{repo}/manifests/{ref}",
            content=json.dumps(manifest).encode(),
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert r.status_code == 201, r.text


def _has_tag(url: str, password: str, repo: str, tag: str) -> bool:
    with client(url, "admin", password) as c:
        r = c.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        return r.status_code == 200


def test_the_readme_tour_works_as_written(tmp_path: Path) -> None:
    p1, p2 = free_port(), free_port()
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["SEAWALL_URL"] = f"http://127.0.0.1:{p1}"  # the CLI's default is port 5000
    env["REGISTRY_AUTH_FILE"] = str(tmp_path / "auth.json")
    storage = tmp_path / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "vfs"\nrunroot = "{tmp_path / "run"}"\n'
        f'graphroot = "{tmp_path / "containers"}"\n'
    )
    env["CONTAINERS_STORAGE_CONF"] = str(storage)
    work = tmp_path / "work"
    work.mkdir()
    servers: list[subprocess.Popen[bytes]] = []
    primary, replica = f"http://127.0.0.1:{p1}", f"http://127.0.0.1:{p2}"

    def substitute(cmd: str) -> str:
        cmd = cmd.replace("127.0.0.1:5000", f"127.0.0.1:{p1}")
        cmd = cmd.replace("127.0.0.1:5001", f"127.0.0.1:{p2}")
        cmd = cmd.replace("--port 5000", f"--port {p1}").replace("--port 5001", f"--port {p2}")
        cmd = cmd.replace("scripts/serve", f"{shlex.quote(sys.executable)} -m seawall serve")
        return cmd.replace(".venv/bin/seawall", shlex.quote(str(venv_bin / "seawall")))

    def run(cmd: str) -> str:
        done = subprocess.run(
            ["bash", "-c", cmd], cwd=work, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (cmd, done.stdout, done.stderr)
        return done.stdout

    outputs: dict[str, str] = {}
    try:
        for original in tour_commands():
            cmd = substitute(original)
            if " -m seawall serve" in cmd:  # a server: in the background, until it answers
                log = open(tmp_path / f"server{len(servers)}.log", "wb")  # noqa: SIM115
                proc = subprocess.Popen(
                    ["bash", "-c", cmd.removesuffix("&").strip()],
                    cwd=work,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                servers.append(proc)
                wait_http(f"{replica if len(servers) == 2 else primary}/v2/", 30, proc)
                if len(servers) == 1:  # the image the tour pushes: app.tar, made by skopeo
                    _small_image(primary, "seed/app", "1.0")
                    subprocess.run(
                        [
                            "skopeo",
                            "copy",
                            "--src-tls-verify=false",
                            "--src-creds=admin:change-me",
                            f"docker://127.0.0.1:{p1}/seed/app:1.0",
                            "docker-archive:app.tar:team/app:1.0",
                        ],
                        cwd=work,
                        env=env,
                        check=True,
                        capture_output=True,
                        timeout=60,
                    )
                continue
            if cmd.startswith("export "):
                name, _, value = cmd.removeprefix("export ").split("#")[0].strip().partition("=")
                env[name] = value
                continue
            outputs[original] = run(cmd)
            if "policy add on-push" in original:  # a push is replicated as it happens
                run(
                    "skopeo copy --dest-tls-verify=false --dest-creds admin:change-me "
                    f"docker-archive:app.tar docker://127.0.0.1:{p1}/team/app:1.1"
                )
                deadline = time.monotonic() + 20
                while not _has_tag(replica, "other", "team/app", "1.1"):
                    assert time.monotonic() < deadline, "the push was not replicated"
                    time.sleep(0.3)

        def out(fragment: str) -> str:
            return next(v for k, v in outputs.items() if fragment in k)

        assert (work / "seawall-data").is_dir() and (work / "replica-data").is_dir()
        assert "robot$ci" in out("robot add ci")
        with httpx.Client(base_url=primary, auth=("admin", "change-me"), timeout=30) as c:
            names = [r["name"] for r in c.get("/api/v2.0/registries").json()]
        assert "replica" in names
        assert "team/app" in out("--dry-run")
        assert _has_tag(replica, "other", "team/app", "1.0")  # replicate --wait
        assert "team/app" in out("execution tasks 2")
        assert _has_tag(replica, "other", "backup/app", "1.0")  # seawall sync
    finally:
        for proc in servers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
