"""What a ``gitlab`` test talks to: :class:`~tests.support.fake_gitlab.FakeGitLab` in front of a
CNCF distribution (GitLab's registry is a fork of it), with one project, one access token
and one deploy token; and the endpoint configs a user would give."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from adapters.base import EndpointConfig
from tests.support.distribution import DistributionProcess
from tests.support.fake_gitlab import FakeGitLab

__all__ = [
    "DEPLOY_SECRET",
    "DEPLOY_USER",
    "FAST",
    "GROUP",
    "PROJECT",
    "TOKEN",
    "USER",
    "config",
    "fake_gitlab",
    "fresh_project",
]

GROUP = "seawall-ci"
PROJECT = f"{GROUP}/app"
USER = "seawall-bot"  # any username works with an access token
TOKEN = "glpat-seawall-test-token"  # api, read_registry, write_registry
DEPLOY_USER = "gitlab+deploy-token-7"
DEPLOY_SECRET = "gldt-seawall-deploy-token"  # read_registry, write_registry
FAST: dict[str, Any] = {"backoff_base_seconds": 0.01}  # client options: no slow retries


@contextmanager
def fake_gitlab(registry: DistributionProcess, **kwargs: Any) -> Iterator[FakeGitLab]:
    """A started fake with :data:`PROJECT`, :data:`TOKEN` and the deploy token."""
    with FakeGitLab(registry.url, **kwargs) as fake:
        fake.add_project(PROJECT)
        fake.add_token(TOKEN, "api", "read_registry", "write_registry", name="seawall-ci")
        fake.add_deploy_token(DEPLOY_USER, DEPLOY_SECRET, "read_registry", "write_registry")
        yield fake


def config(
    fake: FakeGitLab,
    username: str | None = USER,
    password: str | None = TOKEN,
    **options: str,
) -> EndpointConfig:
    """The endpoint as a user gives it: the registry URL, the instance, a login."""
    return EndpointConfig(
        fake.registry_url,
        username=username,
        password=password,
        options=tuple(sorted({"gitlab_url": fake.gitlab_url, **options}.items())),
    )


def fresh_project(fake: FakeGitLab, group: str = "") -> str:
    """A new project of the test's own (in a new group unless ``group`` is given)."""
    group = group or f"g{uuid.uuid4().hex[:8]}"
    path = f"{group}/p{uuid.uuid4().hex[:8]}"
    fake.add_project(path)
    return path
