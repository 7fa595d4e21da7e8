"""``aws-ecr``: Amazon Elastic Container Registry (private registries).

The endpoint's URL is the registry host, ``https://<account>.dkr.ecr.<region>.amazonaws.com``;
its credential is an AWS access key id and secret, or nothing for the default AWS credential
chain; options add a role to assume (cross-account) and how repositories created on push are
set up. See ``docs/adapters/aws-ecr.md``.

How the pieces fit::

    EcrAdapter ── check_config/check_name: no I/O (adapters.aws_ecr_config)
      ├── EcrApi (adapters.aws_ecr_api): boto3 in worker threads; STS AssumeRole,
      │   GetCallerIdentity, ECR GetAuthorizationToken, Describe*/Create*/Batch* calls
      └── EcrClient (adapters.aws_ecr_client): the OCI client; bytes over the registry API
          with the authorization token (credential_provider), listings and deletes via EcrApi

Capabilities, conservatively: listing through the API (no ``/v2/_catalog`` on ECR), the OCI
referrers API (ECR has had it since 2024), tag and digest deletes (``BatchDeleteImage``),
repositories created on push; no multi-chunk uploads (ECR answers chunked ``PATCH`` outside
the spec); blob mounts only where the registry turned ECR blob mounting on (option
``blob_mount``, measured as the ``blob_mount`` probe).
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any, ClassVar

import anyio
import botocore.session

from adapters.aws_ecr_api import EcrApi
from adapters.aws_ecr_client import EcrClient, RepositoryCache
from adapters.aws_ecr_config import ECR_OPTIONS, parse_settings, partition_of
from adapters.base import (
    AdapterOption,
    Capabilities,
    EndpointConfig,
    InvalidEndpoint,
    InvalidRepositoryName,
    RegistryAdapter,
)
from adapters.oci.auth import Credentials
from adapters.oci.credentials import CredentialProvider, IssuedCredentials
from adapters.oci.errors import OciError, RequestRejected

__all__ = ["EcrAdapter"]

#: ECR's repository name rule (CreateRepository's ``repositoryName`` pattern)
_ECR_NAME = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
ECR_NAME_MIN, ECR_NAME_MAX = 2, 256
#: one request carries a whole blob: large blobs stream in a single PATCH
_ONE_CHUNK_BYTES = 1 << 40


_lock = threading.Lock()
#: partition -> regions with ECR, from botocore's endpoint data: computed once per process
_regions: dict[str, frozenset[str]] | None = None
#: the botocore session that reads the profile's region, and what it was made for (the
#: variables that pick the config file and profile, the file's identity and mtime)
_profile: tuple[tuple[object, ...], botocore.session.Session] | None = None


def _known_regions(partition: str) -> frozenset[str]:
    """Regions with ECR that this botocore knows (its endpoint data, no I/O); loaded once
    per process, for every partition, by the first caller (the others wait)."""
    global _regions
    if _regions is None:
        with _lock:
            if _regions is None:
                session = botocore.session.get_session()
                _regions = {
                    p: frozenset(session.get_available_regions("ecr", p))
                    for p in session.get_available_partitions()
                }
    return _regions.get(partition, frozenset())


def _profile_key() -> tuple[object, ...]:
    names = ("AWS_CONFIG_FILE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "HOME")
    env = tuple(os.environ.get(n) for n in names)
    path = os.path.expanduser(os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config")
    try:
        found = os.stat(path)
    except OSError:
        return (*env, None)
    return (*env, found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)


def _profile_region() -> str | None:
    """The AWS profile's region as boto3 would read it; one botocore session per process,
    made again only when the config file or the variables naming it change."""
    global _profile
    key = _profile_key()
    with _lock:
        if _profile is None or _profile[0] != key:
            _profile = (key, botocore.session.get_session())
        session = _profile[1]
        region = session.get_config_variable("region")
    return str(region) if region else None


def _check_region(region: str | None) -> None:
    if region is None:
        configured = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not configured:
            configured = _profile_region()
        if not configured:
            raise InvalidEndpoint(
                "aws-ecr: the URL is not an ECR host, so the region must come from --region, "
                "AWS_REGION/AWS_DEFAULT_REGION or the AWS profile, and none is set"
            )
        region = str(configured)
    known = _known_regions(partition_of(region))
    if known and region not in known:
        raise InvalidEndpoint(
            f"aws-ecr: {region!r} is not an AWS region with ECR (known: "
            f"{', '.join(sorted(known))}); if it is new, upgrade boto3/botocore"
        )


class EcrAdapter(RegistryAdapter):
    type: ClassVar[str] = "aws-ecr"
    description: ClassVar[str] = (
        "Amazon ECR private registry (ECR and STS APIs via boto3; assume-role, create on push)"
    )
    capabilities: ClassVar[Capabilities] = Capabilities(
        catalog=True,  # DescribeRepositories
        referrers_api=True,
        blob_mount=False,  # off unless the registry turned BLOB_MOUNTING on (option)
        chunked_upload=False,
        delete_tag=True,  # BatchDeleteImage by tag
        delete_manifest=True,
        create_namespace=True,  # CreateRepository
    )
    probed: ClassVar[frozenset[str]] = frozenset({"blob_mount"})
    options_spec: ClassVar[tuple[AdapterOption, ...]] = ECR_OPTIONS

    def __init__(self, config: EndpointConfig, **client_options: Any) -> None:
        super().__init__(config, **client_options)
        self.settings = parse_settings(config)
        self.api = EcrApi(self.settings)
        self.repositories = RepositoryCache(self.api)

    @classmethod
    def check_config(cls, config: EndpointConfig) -> None:
        """The base rules, then ECR's: the URL's form, the region (given, in the URL or
        configured for boto3, and one botocore knows), the role and its external id, the
        credentials, the repository settings. No network I/O."""
        super().check_config(config)
        settings = parse_settings(config)
        _check_region(settings.region)

    # -- the client ------------------------------------------------------------------------

    def client_kwargs(self) -> dict[str, Any]:
        """The registry login is ECR's authorization token (the credential provider), never
        the AWS key pair of the config."""
        kwargs = super().client_kwargs()
        kwargs.update(username=None, password=None, token=None)
        if "chunk_bytes" not in self._client_options:
            kwargs["chunk_bytes"] = _ONE_CHUNK_BYTES
        return kwargs

    def client(self) -> EcrClient:
        if self._client is None:
            self._client = EcrClient(
                self.registry_url(),
                repositories=self.repositories,
                blob_mount=self.settings.blob_mount,
                **self.client_kwargs(),
            )
        assert isinstance(self._client, EcrClient)
        return self._client

    def credential_provider(self) -> CredentialProvider:
        """``GetAuthorizationToken`` for the registry's account: Basic ``AWS``/token until
        ``expiresAt`` (a token already past it is still used, then fetched again after a 401
        or the client's least reuse time)."""
        return self._issue

    async def close(self) -> None:
        """Close the OCI client, then the boto3 clients (their connection pools)."""
        try:
            await super().close()
        finally:
            await self.api.aclose()

    async def _issue(self) -> IssuedCredentials:
        user, password, expires_at = await self.api.authorization()
        return IssuedCredentials(Credentials(user, password), expires_at)

    # -- names and repositories ------------------------------------------------------------

    def check_name(self, name: str) -> None:
        """The OCI grammar, then ECR's: 2 to 256 characters, components of ``[a-z0-9]``
        joined by single ``.``, ``_`` or ``-``."""
        super().check_name(name)
        if not ECR_NAME_MIN <= len(name) <= ECR_NAME_MAX or not _ECR_NAME.match(name):
            raise InvalidRepositoryName(
                f"repository name {name[:300]!r} cannot be an ECR repository: ECR takes "
                f"{ECR_NAME_MIN} to {ECR_NAME_MAX} characters, lowercase components joined by "
                "a single '.', '_' or '-' (no '__' or '--'): change the policy's destination "
                "namespace"
            )

    async def prepare_repository(self, name: str) -> None:
        """Create ``name`` with ``CreateRepository`` (the endpoint's tag mutability, scan on
        push and encryption) unless it exists; once per repository and adapter. An existing
        repository is left as it is."""
        self.check_name(name)
        if self.repositories.cached(name) is not None:
            return
        if await self.repositories.get(name) is not None:
            return
        info = await self.api.create_repository(name, self.settings.repository)
        if info is None:  # created meanwhile by someone else
            info = await self.api.repository(name)
        if info is None:
            raise RequestRejected(f"ECR repository {name} was created but cannot be found")
        self.repositories.remember(info)

    # -- health and probes -----------------------------------------------------------------

    async def health(self) -> tuple[bool, str]:
        """Healthy when the credentials work (the role is assumed), the registry's account
        lists its repositories, and the registry answers ``GET /v2/`` with ECR's token.
        Never raises; the detail says what failed and what to fix."""
        try:
            with anyio.fail_after(self.health_timeout_seconds):
                _, arn = await self.api.caller()
                registry = await self.api.account()
                await self.api.check_listing()
                ok, detail = await super().health()
        except TimeoutError:
            return False, f"no answer from AWS within {self.health_timeout_seconds}s"
        except OciError as e:
            return False, str(e)[:500]
        if not ok:
            return False, f"ECR registry {registry} ({self.config.url}) as {arn}: {detail}"
        return True, f"ECR registry {registry} in {self.api.region_name} as {arn}; {detail}"

    async def probe_blob_mount(self, repository: str | None = None) -> bool:
        """Whether cross-repository mounts are on: the endpoint's ``blob_mount`` option (ECR
        blob mounting is a registry setting; no request)."""
        return self.settings.blob_mount
