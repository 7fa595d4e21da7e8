"""Run moto's server (one process answers S3, ECR, STS, IAM, ...) for tests, on 127.0.0.1.

    with MotoServer(workdir) as moto:
        env = moto.env()            # point boto3 (and any subprocess) at it
        boto3.client("sts", **moto.client_kwargs()).get_caller_identity()

:meth:`MotoServer.env` is what a process needs to reach moto, and nothing else: the standard
AWS variables (``AWS_ENDPOINT_URL``, the ``testing`` key pair, the region in both
``AWS_REGION`` and ``AWS_DEFAULT_REGION``), instance metadata off, ``AWS_CA_BUNDLE`` removed
(see :meth:`MotoServer.clean_environ`). :meth:`MotoServer.enable_iam_auth` turns moto's IAM
checks on (signatures, known access keys, policies) for a server of the test's own.

Without ``moto_server`` installed :func:`require_moto` skips, except under ``CI=true`` where it
fails (a missing emulator is not a pass).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.server import free_port, stop_group, wait_http

__all__ = [
    "MOTO_ACCOUNT",
    "MOTO_REGION",
    "MotoServer",
    "moto_binary",
    "require_moto",
]

MOTO_ACCOUNT = "123456789012"  # moto's default account (STS GetCallerIdentity answers it)
MOTO_REGION = "us-east-1"
#: variables of the outer environment that would send boto3 elsewhere or change its behaviour
_AWS_LEAKS = (
    "AWS_CA_BUNDLE",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


def moto_binary() -> str | None:
    """``moto_server`` next to this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).with_name("moto_server")
    if beside.exists():
        return str(beside)
    return shutil.which("moto_server")


def require_moto() -> str:
    """The ``moto_server`` path; skip the test without it, fail under ``CI=true``."""
    import pytest

    binary = moto_binary()
    if binary is None:
        reason = "moto_server is not installed (pip install 'moto[server]')"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


@dataclass
class MotoServer:
    """One ``moto_server -H 127.0.0.1 -p PORT`` subprocess in its own process group."""

    workdir: Path
    port: int = field(default_factory=free_port)
    region: str = MOTO_REGION
    access_key: str = "testing"
    secret_key: str = field(default="testing", repr=False)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "moto.log"

    @staticmethod
    def clean_environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default ``os.environ``) without anything that points AWS clients
        elsewhere: ``AWS_*`` endpoint and credential variables, profiles, ``AWS_CA_BUNDLE``."""
        env = dict(os.environ if base is None else base)
        for key in list(env):
            if key.startswith("AWS_ENDPOINT_URL") or key in _AWS_LEAKS:
                del env[key]
        return env

    def env(self, **more: str) -> dict[str, str]:
        """The variables that point boto3 at this server (``more`` added or overriding, e.g.
        ``AWS_ENDPOINT_URL_ECR``). Whole environments: :meth:`subprocess_env` for a child,
        :meth:`apply` for this process. A child started with ``extra_env=env()``
        (``SeawallProcess``) inherits this process' environment: :meth:`apply` first, so
        that ``AWS_CA_BUNDLE`` and the like are gone from it."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        } | more

    def subprocess_env(self, **more: str) -> dict[str, str]:
        """A whole environment for a child process: this one's, cleaned, plus :meth:`env`."""
        return self.clean_environ() | self.env(**more)

    def apply(self, monkeypatch: Any, **more: str) -> None:
        """This process' environment as :meth:`subprocess_env` says, through ``monkeypatch``
        (a ``pytest.MonkeyPatch``: undone after the test)."""
        keep = self.clean_environ()
        for key in list(os.environ):
            if key not in keep:
                monkeypatch.delenv(key)
        for key, value in self.env(**more).items():
            monkeypatch.setenv(key, value)

    def client_kwargs(self) -> dict[str, Any]:
        """``boto3.client(service, **kwargs)`` arguments for this server (no env needed)."""
        return {
            "endpoint_url": self.url,
            "region_name": self.region,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
        }

    def start(self, timeout_s: float = 30.0) -> MotoServer:
        binary = moto_binary()
        if binary is None:
            raise FileNotFoundError("moto_server is not installed (pip install 'moto[server]')")
        if self.proc is not None:
            raise RuntimeError(f"moto on {self.url} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process' life
        self.proc = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(self.port)],
            env=self.clean_environ(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_http(self.url + "/moto-api/", timeout_s, self.proc)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"moto_server did not start: {exc}\n{self.log()}") from exc
        return self

    def reset(self) -> None:
        """Forget every resource (all services, all accounts)."""
        httpx.post(self.url + "/moto-api/reset", timeout=10).raise_for_status()

    def enable_iam_auth(self) -> None:
        """From now on moto checks every request like AWS: a known access key (an IAM user's,
        or an assumed role's), a valid signature, a policy that allows the action. Create the
        users first (nothing is allowed once this is on). Server-wide: use a server of the
        test's own, not a shared one."""
        r = httpx.post(self.url + "/moto-api/reset-auth", content=b"0", timeout=10)
        r.raise_for_status()

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_group(self.proc)
        self.proc = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""
