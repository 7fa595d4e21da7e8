"""A second ``seawall serve`` on a port already in use refuses to start, with one line saying
so (granian listens with SO_REUSEPORT: the second server used to start, and the kernel split
the connections between the two registries)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.server import SeawallProcess


def _serve(data_dir: Path, port: int) -> subprocess.CompletedProcess[str] | None:
    """Run a second server; its result if it exits within 20 s, else None (it kept serving)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    cmd = [sys.executable, "-m", "seawall", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--data-dir", str(data_dir)],
        env={**env, "SEAWALL_ADMIN_PASSWORD": "second-server-password"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        return None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_second_server_on_a_port_in_use_refuses_to_start(
    fresh_seawall: SeawallProcess, tmp_path: Path
) -> None:
    first = fresh_seawall.start()
    done = _serve(tmp_path / "second", first.port)
    assert done is not None, "the second server started on a port already in use"
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [
        f"seawall: 127.0.0.1:{first.port} is already in use (another seawall "
        "serve?); stop that server or choose another port with --port"
    ], done.stderr
    for _ in range(10):  # every connection still reaches the first server
        r = httpx.get(f"{first.url}/v2/", auth=("admin", first.admin_password), timeout=10)
        assert r.status_code == 200
