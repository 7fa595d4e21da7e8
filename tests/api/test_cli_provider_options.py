"""``seawall registry add`` with provider settings, against a real server (whose adapters check
every endpoint before it is stored): flags become ``options``, bad ones get one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from seawall import cli
from tests.support.server import SeawallProcess

ECR = "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"


def seawall_cli(server: SeawallProcess, *argv: str) -> int:
    return cli.main([*argv, "--url", server.url, "--password", server.admin_password])


def test_provider_settings_are_flags_checked_before_anything_is_stored(
    seawall: SeawallProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, add = seawall, ["registry", "add"]
    code = seawall_cli(server, *add, "e1", "--type", "aws-ecr", "--registry-url", ECR,
                       "--role-arn", "not-an-arn", "--no-ping")  # fmt: skip
    out = capsys.readouterr()
    assert code == 1
    assert "role" in out.err and out.err.count("\n") == 1 and "Traceback" not in out.err

    code = seawall_cli(server, *add, "e2", "--type", "aws-ecr", "--registry-url", ECR,
                       "--regoin", "eu-west-1", "--no-ping")  # fmt: skip
    out = capsys.readouterr()
    assert code == 1 and "regoin" in out.err and "region" in out.err

    code = seawall_cli(server, *add, "e3", "--type", "docker-registry", "--registry-url",
                       f"file://{tmp_path}", "--no-ping")  # fmt: skip
    assert code == 1 and "http" in capsys.readouterr().err

    code = seawall_cli(server, *add, "usb", "--type", "oci-layout", "--registry-url",
                       f"file://{tmp_path}", "--no-ping")  # fmt: skip
    assert code == 0, capsys.readouterr()
    code = seawall_cli(server, *add, "ecr", "--type", "aws-ecr", "--registry-url", ECR,
                       "--role-arn", "arn:aws:iam::123456789012:role/seawall",
                       "--option", "scan_on_push=true", "--no-ping")  # fmt: skip
    assert code == 0, capsys.readouterr()
    capsys.readouterr()
    assert seawall_cli(server, "registry", "list") == 0
    listed = capsys.readouterr().out
    assert "usb" in listed and f"file://{tmp_path}" in listed and "ecr" in listed
    assert "e1" not in listed.split() and "e2" not in listed.split()

    assert seawall_cli(server, "registry", "types") == 0
    types = capsys.readouterr().out
    for name in ("aws-ecr", "azure-acr", "google-gar", "google-gcr", "oci-layout"):
        assert name in types
    assert "--role-arn" in types and "--tenant-id" in types and "--project" in types


def test_unknown_flags_elsewhere_are_still_refused(
    seawall: SeawallProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        seawall_cli(seawall, "registry", "list", "--region", "x")
    assert e.value.code == 2
    assert "unrecognized arguments: --region x" in capsys.readouterr().err


ACR = {
    "name": "acr-bound",
    "type": "azure-acr",
    "url": "https://seawalltest.azurecr.io",
    "credential": {
        "type": "basic",
        "access_key": "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
        "access_secret": "sp-secret",
    },
    "options": {
        "auth": "aad-secret",
        "tenant_id": "0b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8",
        "authority_host": "https://login.example.com",
    },
}


def test_settings_naming_where_secrets_go_are_bound_like_the_url(seawall: SeawallProcess) -> None:
    """Review finding: a PUT of ``authority_host`` (or GAR's ``api_endpoint``) sent the stored
    secret to a new host; file settings read any file of the server."""
    from tests.replication.support import api

    with api(seawall.url, seawall.admin_password) as a:
        r = a.post("/registries", json=ACR)
        assert r.status_code == 201, r.text
        rid = int(r.headers["Location"].rsplit("/", 1)[1])
        moved = {**ACR["options"], "authority_host": "https://attacker.example"}
        r = a.put(f"/registries/{rid}", json={"options": moved})
        assert r.status_code == 400 and "access_secret again" in r.text, r.text
        assert a.get(f"/registries/{rid}").json()["options"]["authority_host"] == (
            "https://login.example.com"
        )
        r = a.put(f"/registries/{rid}", json={"options": moved, "access_secret": "new"})
        assert r.status_code == 200, r.text
        metadata = {**ACR["options"], "authority_host": "https://169.254.169.254"}
        r = a.post("/registries", json={**ACR, "name": "acr-md", "options": metadata})
        assert r.status_code == 400 and "link-local" in r.text.lower(), r.text
        gar = {
            "name": "gar-file",
            "type": "google-gar",
            "url": "https://us-central1-docker.pkg.dev",
            "options": {"project": "p", "key_file": f"{seawall.data_dir}/secrets.key"},
        }
        r = a.post("/registries", json=gar)
        assert r.status_code == 400 and "SEAWALL_CREDENTIALS_DIR" in r.text, r.text
