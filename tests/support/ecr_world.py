"""Everything an ``aws-ecr`` test talks to, started for real: :class:`EcrWorld`.

- a Seawall as the registry data plane, with the login ECR's ``GetAuthorizationToken`` hands
  out on moto (user ``AWS``, password ``123456789012-auth-token``), made with ``seawall user
  add`` (:func:`start_data_plane`);
- a moto server (the session's, or one with IAM checks on: :func:`start_iam_moto`, whose user
  ``seawall`` has exactly the actions of ``docs/adapters/aws-ecr.md``'s policy);
- an :class:`~tests.support.ecr.EcrFront` joining the two into one "ECR" behind one URL.

The adapter reaches them through boto3's standard settings only (:meth:`EcrWorld.apply`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from adapters.base import EndpointConfig
from tests.support.ecr import EcrFront
from tests.support.moto import MOTO_ACCOUNT, MotoServer
from tests.support.server import SeawallProcess

__all__ = [
    "ECR_ACTIONS",
    "LOCKED_ROLE",
    "ROLE",
    "ROLE_EXTERNAL_ID",
    "EcrWorld",
    "start_data_plane",
    "start_iam_moto",
]

#: the least-privilege policy's actions (docs/adapters/aws-ecr.md), ``sts:AssumeRole`` aside
ECR_ACTIONS = (
    "ecr:GetAuthorizationToken",
    "ecr:DescribeRepositories",
    "ecr:CreateRepository",
    "ecr:DescribeImages",
    "ecr:BatchGetImage",
    "ecr:BatchDeleteImage",
    "ecr:BatchCheckLayerAvailability",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
)
ROLE = f"arn:aws:iam::{MOTO_ACCOUNT}:role/seawall-replication"
ROLE_EXTERNAL_ID = "seawall-ext-7f3a"
LOCKED_ROLE = f"arn:aws:iam::{MOTO_ACCOUNT}:role/not-for-seawall"


def start_data_plane(workdir: Path) -> SeawallProcess:
    """A Seawall whose user ``AWS`` has moto's ECR password, started."""
    data = workdir / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    cmd = [sys.executable, "-m", "seawall", "user", "add", "AWS"]
    cmd += ["--password", f"{MOTO_ACCOUNT}-auth-token", "--allow", "*=*"]
    subprocess.run([*cmd, "--data-dir", str(data)], env=env, check=True, capture_output=True)
    return SeawallProcess(data).start()


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def start_iam_moto(workdir: Path) -> tuple[MotoServer, tuple[str, str], tuple[str, str]]:
    """A moto server of its own with IAM checks on: ``(server, seawall keys, admin keys)``.
    User ``seawall`` may do :data:`ECR_ACTIONS` and assume :data:`ROLE` (whose trust policy
    wants :data:`ROLE_EXTERNAL_ID`), not :data:`LOCKED_ROLE`; user ``ops`` may do anything."""
    moto = MotoServer(workdir).start()
    iam = boto3.client("iam", **moto.client_kwargs())
    keys = {}
    for user, statement in (
        ("ops", {"Effect": "Allow", "Action": "*", "Resource": "*"}),
        ("seawall", {"Effect": "Allow", "Action": list(ECR_ACTIONS), "Resource": "*"}),
    ):
        iam.create_user(UserName=user)
        assume = {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": ROLE}
        iam.put_user_policy(
            UserName=user, PolicyName="p", PolicyDocument=_policy(statement, assume)
        )
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
    for arn, trusted in ((ROLE, "seawall"), (LOCKED_ROLE, "ops")):
        trust = {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{MOTO_ACCOUNT}:user/{trusted}"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": ROLE_EXTERNAL_ID}},
        }
        name = arn.rsplit("/", 1)[1]
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=_policy(trust))
        allow = {"Effect": "Allow", "Action": list(ECR_ACTIONS), "Resource": "*"}
        iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=_policy(allow))
    moto.enable_iam_auth()
    return moto, keys["seawall"], keys["ops"]


@dataclass
class EcrWorld:
    """moto + front + data plane, and the keys the adapter (``keys``) and the test's own
    look at moto (``admin``) use."""

    moto: MotoServer
    front: EcrFront
    data_plane: SeawallProcess
    keys: tuple[str, str]
    admin: tuple[str, str]

    @classmethod
    def open(
        cls,
        moto: MotoServer,
        data_plane: SeawallProcess,
        keys: tuple[str, str] = ("testing", "testing"),
        admin: tuple[str, str] = ("testing", "testing"),
    ) -> EcrWorld:
        aws = moto.client_kwargs() | {"aws_access_key_id": admin[0]}
        aws["aws_secret_access_key"] = admin[1]
        login = ("admin", data_plane.admin_password)
        front = EcrFront(moto.url, data_plane.url, login, aws).start()
        return cls(moto, front, data_plane, keys, admin)

    def close(self) -> None:
        self.front.stop()

    @property
    def url(self) -> str:
        """The endpoint URL: the front (a test data plane, not an ECR host)."""
        return self.front.url

    def _more(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_ECR": self.url,
            "AWS_ENDPOINT_URL_STS": self.url,
            "AWS_ACCESS_KEY_ID": self.keys[0],
            "AWS_SECRET_ACCESS_KEY": self.keys[1],
        }

    def env(self) -> dict[str, str]:
        """boto3's standard settings: ECR and STS through the front, the rest to moto; the
        adapter's key pair as the default chain's."""
        return self.moto.env(**self._more())

    def apply(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """This process' environment as :meth:`env` says, nothing else of AWS left in it."""
        self.moto.apply(monkeypatch, **self._more())

    def config(self, *, keys: bool = True, **options: str) -> EndpointConfig:
        """The adapter's endpoint: the front's URL, the key pair (or the chain), options."""
        username, password = self.keys if keys else (None, None)
        return EndpointConfig(
            self.url, username=username, password=password, insecure=True, options=options
        )

    def aws(self, service: str, **kw: Any) -> Any:
        """A boto3 client straight to moto with the admin keys (the test's own view)."""
        args = self.moto.client_kwargs() | {"aws_access_key_id": self.admin[0]}
        args["aws_secret_access_key"] = self.admin[1]
        return boto3.client(service, **(args | kw))

    def registry(self, repo: str) -> dict[str, Any] | None:
        """What ``DescribeRepositories`` says of ``repo`` in moto's account, or None."""
        try:
            found = self.aws("ecr").describe_repositories(
                registryId=MOTO_ACCOUNT, repositoryNames=[repo]
            )
        except self.aws("ecr").exceptions.RepositoryNotFoundException:
            return None
        return dict(found["repositories"][0])

    def digest(self, repo: str, reference: str) -> str | None:
        """The digest ECR (moto) lists for ``repo`` at a tag or digest, or None."""
        key = "imageDigest" if reference.startswith("sha256:") else "imageTag"
        ecr = self.aws("ecr")
        try:
            found = ecr.describe_images(
                registryId=MOTO_ACCOUNT, repositoryName=repo, imageIds=[{key: reference}]
            )["imageDetails"]
        except (ecr.exceptions.ImageNotFoundException, ecr.exceptions.RepositoryNotFoundException):
            return None
        return str(found[0]["imageDigest"]) if found else None
