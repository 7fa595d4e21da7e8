"""What an ``aws-ecr`` endpoint says, checked before anything is sent: :func:`parse_settings`.

The URL is the registry host users push to, ``https://<account>.dkr.ecr.<region>.amazonaws.com``
(also ``.amazonaws.com.cn``, the FIPS host ``dkr.ecr-fips`` and the dual-stack host
``<account>.dkr-ecr.<region>.on.aws``): account and region come from it. Any other URL is a test
data plane: the region then comes from the ``region`` option or boto3's own settings
(``AWS_REGION``/``AWS_DEFAULT_REGION``, the profile), the account from STS at first use.

A URL that looks like ECR but is not one of those forms, a region that is not an AWS region, a
role ARN that is not ``arn:<partition>:iam::<12 digits>:role/<name>``, an external id without a
role, a KMS key without KMS encryption: each is an :class:`~adapters.base.InvalidEndpoint` whose
message says what to give instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from adapters.base import AdapterOption, EndpointConfig, InvalidEndpoint

__all__ = [
    "ECR_OPTIONS",
    "EcrSettings",
    "RepositorySettings",
    "parse_settings",
    "partition_of",
]

_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}"
_ROLE_ARN = r"arn:aws(?:-cn|-us-gov)?:iam::\d{12}:role/[\w+=,.@/-]{1,512}"
_KMS_KEY = r"[\w:/+=,.@-]{1,2048}"
#: ``<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]``;
#: dual stack: ``<account>.dkr-ecr[-fips].<region>.on.aws``
_ECR_HOST = re.compile(
    rf"^(?P<account>\d{{12}})\.(?:dkr\.ecr(?:-fips)?\.(?P<region>{_REGION})\.amazonaws\.com"
    rf"(?P<cn>\.cn)?|dkr-ecr(?:-fips)?\.(?P<region2>{_REGION})\.on\.aws)$"
)
#: hosts that are meant to be ECR (a typo in one must not fall back to "test data plane")
_ECR_LIKE = re.compile(r"(^|\.)(dkr\.ecr|dkr-ecr)[.-]|\.amazonaws\.com(\.cn)?$|\.on\.aws$")

ECR_OPTIONS: tuple[AdapterOption, ...] = (
    AdapterOption(
        name="region",
        help="AWS region of the ECR and STS APIs; taken from the URL for an ECR host, else "
        "from AWS_REGION/AWS_DEFAULT_REGION or the profile when not given",
        pattern=_REGION,
        example="eu-west-1",
    ),
    AdapterOption(
        name="role_arn",
        help="IAM role to assume through STS (cross-account) before calling ECR",
        pattern=_ROLE_ARN,
        example="arn:aws:iam::210987654321:role/seawall-replication",
    ),
    AdapterOption(
        name="external_id",
        help="external id the role's trust policy requires (needs --role-arn)",
        pattern=r"[\w+=,.@:/-]{2,1224}",
        example="seawall-7f3a",
    ),
    AdapterOption(
        name="role_session_name",
        help="session name of the assumed role, seen in CloudTrail (default: seawall)",
        pattern=r"[\w+=,.@-]{2,64}",
        example="seawall-dr-sync",
    ),
    AdapterOption(
        name="tag_mutability",
        help="tag mutability of repositories created on push (default: MUTABLE)",
        choices=("MUTABLE", "IMMUTABLE"),
    ),
    AdapterOption(
        name="scan_on_push",
        help="basic scan-on-push for repositories created on push (default: false)",
        choices=("true", "false"),
    ),
    AdapterOption(
        name="encryption",
        help="encryption of repositories created on push (default: AES256)",
        choices=("AES256", "KMS"),
    ),
    AdapterOption(
        name="kms_key",
        help="KMS key (ARN, id or alias) for --encryption KMS (default: the AWS managed key)",
        pattern=_KMS_KEY,
        example="arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    ),
    AdapterOption(
        name="blob_mount",
        help="the registry has ECR blob mounting turned on (put-account-setting "
        "BLOB_MOUNTING): cross-repository mounts are tried (default: disabled)",
        choices=("enabled", "disabled"),
    ),
)


@dataclass(frozen=True, slots=True)
class RepositorySettings:
    """How a repository created on push is set up (``CreateRepository``)."""

    tag_mutability: str = "MUTABLE"
    scan_on_push: bool = False
    encryption: str = "AES256"
    kms_key: str | None = None


@dataclass(frozen=True, slots=True)
class EcrSettings:
    """An ``aws-ecr`` endpoint, checked. ``account``/``region`` are None when they are to be
    found at first use (a test data plane: STS, boto3's configuration)."""

    account: str | None
    region: str | None
    partition: str
    role_arn: str | None
    external_id: str | None
    role_session_name: str
    repository: RepositorySettings
    blob_mount: bool
    access_key: str | None
    secret_key: str | None = field(repr=False)  # never in reprs, tracebacks or logs


def partition_of(region: str) -> str:
    """The AWS partition a region belongs to (``aws``, ``aws-cn``, ``aws-us-gov``)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _fail(message: str) -> InvalidEndpoint:
    return InvalidEndpoint(f"aws-ecr: {message}")


def _from_url(url: str) -> tuple[str | None, str | None, str]:
    """``(account, region, partition)`` from an ECR host; ``(None, None, "")`` otherwise."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    match = _ECR_HOST.match(host)
    if match is None:
        if _ECR_LIKE.search(host):
            raise _fail(
                f"{url[:200]!r} looks like an ECR registry but is not one: use "
                "https://<12-digit account>.dkr.ecr.<region>.amazonaws.com (or .amazonaws.com.cn)"
            )
        return None, None, ""
    if parts.scheme != "https" or parts.port not in (None, 443):
        raise _fail(f"{url[:200]!r}: ECR registries are reached over https on port 443")
    if parts.path.strip("/") or parts.query or parts.username:
        raise _fail(f"{url[:200]!r}: give the registry host only, without a path or login")
    region = match.group("region") or match.group("region2")
    partition = partition_of(region)
    if (partition == "aws-cn") != bool(match.group("cn")):
        want = ".amazonaws.com.cn" if partition == "aws-cn" else ".amazonaws.com"
        raise _fail(f"{host}: region {region} is served under {want}")
    return match.group("account"), region, partition


def _repository(config: EndpointConfig) -> RepositorySettings:
    encryption = config.option("encryption", "AES256")
    kms_key = config.option("kms_key") or None
    if kms_key and encryption != "KMS":
        raise _fail("--kms-key needs --encryption KMS")
    return RepositorySettings(
        tag_mutability=config.option("tag_mutability", "MUTABLE"),
        scan_on_push=config.option("scan_on_push", "false") == "true",
        encryption=encryption,
        kms_key=kms_key,
    )


def _credentials(config: EndpointConfig) -> tuple[str | None, str | None]:
    if config.token:
        raise _fail("a bearer token cannot log in to AWS: give an access key id and secret")
    key, secret = config.username or None, config.password or None
    if (key is None) != (secret is None):
        raise _fail(
            "give both the access key id and its secret, or neither (the default AWS "
            "credential chain: environment, profile, web identity, instance role)"
        )
    if key is not None and not re.fullmatch(r"[\w]{3,128}", key):
        raise _fail("the access key id has characters AWS key ids never have")
    return key, secret


def parse_settings(config: EndpointConfig) -> EcrSettings:
    """The endpoint as :class:`EcrSettings` (no I/O; options already checked one by one).

    :raises InvalidEndpoint: the URL, the options or the credentials cannot work together.
    """
    account, region, partition = _from_url(config.url)
    option_region = config.option("region") or None
    if option_region is not None and region is not None and option_region != region:
        raise _fail(f"--region {option_region} contradicts the URL's region {region}")
    region = region or option_region
    if region is not None:
        partition = partition_of(region)
    role_arn = config.option("role_arn") or None
    if role_arn is not None and partition and role_arn.split(":")[1] != partition:
        raise _fail(f"role {role_arn} is in partition {role_arn.split(':')[1]}, not {partition}")
    external_id = config.option("external_id") or None
    session_name = config.option("role_session_name") or None
    if role_arn is None and (external_id or session_name):
        raise _fail("--external-id and --role-session-name need --role-arn")
    key, secret = _credentials(config)
    return EcrSettings(
        account=account,
        region=region,
        partition=partition or "aws",
        role_arn=role_arn,
        external_id=external_id,
        role_session_name=session_name or "seawall",
        repository=_repository(config),
        blob_mount=config.option("blob_mount", "disabled") == "enabled",
        access_key=key,
        secret_key=secret,
    )
