"""TLS: verification on by default, a private CA via ``ca_file``, or ``insecure``."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.oci import OciClient, TlsError
from tests.adapters.fakes import FakeRegistry, serve

pytestmark = pytest.mark.anyio


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def https_url(certificate: tuple[Path, Path]) -> AsyncIterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    async with serve(FakeRegistry().app(), ssl_context=context) as url:
        yield url


async def test_unknown_ca_is_refused(https_url: str) -> None:
    async with OciClient(https_url, retries=3, backoff_base_seconds=0.01) as oci:
        with pytest.raises(TlsError) as caught:
            await oci.ping()
    assert "ca_file" in str(caught.value)  # says what to do
    assert oci.stats().retries == 0  # a certificate problem is not retried


async def test_private_ca_file(https_url: str, certificate: tuple[Path, Path]) -> None:
    async with OciClient(https_url, ca_file=str(certificate[0])) as oci:
        assert (await oci.ping()).status == 200


async def test_insecure_skips_verification(https_url: str) -> None:
    async with OciClient(https_url, insecure=True) as oci:
        assert (await oci.ping()).status == 200


def test_missing_ca_file_is_a_tls_error(tmp_path: Path) -> None:
    with pytest.raises(TlsError):
        OciClient("https://127.0.0.1:1", ca_file=str(tmp_path / "absent.pem"))
