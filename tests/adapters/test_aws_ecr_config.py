"""``aws-ecr`` refuses bad input before anything is sent: URLs, regions, roles, options,
credentials and repository names; and botocore's errors become ours with messages that say
what to fix. No server is needed here."""

from __future__ import annotations

import base64
import pathlib
import re
from concurrent.futures import ThreadPoolExecutor

import botocore.session
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from adapters import aws_ecr
from adapters.aws_ecr import EcrAdapter
from adapters.aws_ecr_api import EcrApi, RepositoryInfo
from adapters.aws_ecr_client import immutable
from adapters.aws_ecr_config import parse_settings
from adapters.aws_ecr_errors import translate
from adapters.base import EndpointConfig, InvalidEndpoint, InvalidRepositoryName
from adapters.oci.credentials import CredentialsUnavailable
from adapters.oci.errors import (
    ConnectionFailed,
    Denied,
    NotFound,
    ProtocolError,
    RateLimited,
    RequestRejected,
    ServerError,
)

ECR = "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"


@pytest.fixture(autouse=True)
def no_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")


def check(url: str = ECR, **options: str) -> None:
    EcrAdapter.check_config(EndpointConfig(url, options=options))


@pytest.mark.parametrize(
    ("url", "account", "region"),
    [
        (ECR, "123456789012", "eu-west-1"),
        ("https://210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn", "210987654321", "cn-north-1"),
        (
            "https://123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
            "123456789012",
            "us-gov-west-1",
        ),
        ("https://123456789012.dkr-ecr.ap-southeast-2.on.aws/", "123456789012", "ap-southeast-2"),
    ],
)
def test_account_and_region_come_from_an_ecr_host(url: str, account: str, region: str) -> None:
    check(url)
    settings = parse_settings(EndpointConfig(url))
    assert (settings.account, settings.region) == (account, region)


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("https://12345.dkr.ecr.eu-west-1.amazonaws.com", {}, "looks like an ECR registry"),
        ("https://123456789012.dkr.ecr.amazonaws.com", {}, "looks like an ECR registry"),
        ("https://api.ecr.eu-west-1.amazonaws.com", {}, "looks like an ECR registry"),
        ("http://123456789012.dkr.ecr.eu-west-1.amazonaws.com", {}, "over https"),
        (ECR + "/team", {}, "without a path"),
        ("https://123456789012.dkr.ecr.cn-north-1.amazonaws.com", {}, "amazonaws.com.cn"),
        ("https://123456789012.dkr.ecr.eu-west-9.amazonaws.com", {}, "not an AWS region"),
        (ECR, {"region": "us-east-1"}, "contradicts the URL's region eu-west-1"),
        (ECR, {"region": "Europe"}, "--region 'Europe' is not valid"),
        ("http://127.0.0.1:5000", {}, "none is set"),
        ("http://127.0.0.1:5000", {"region": "xx-north-1"}, "not an AWS region"),
        (ECR, {"role_arn": "arn:aws:iam::123:role/x"}, "--role-arn"),
        (ECR, {"role_arn": "arn:aws:iam::123456789012:user/x"}, "--role-arn"),
        (ECR, {"role_arn": "arn:aws-cn:iam::123456789012:role/x"}, "partition aws-cn"),
        (ECR, {"external_id": "abc"}, "need --role-arn"),
        (ECR, {"kms_key": "alias/x"}, "--kms-key needs --encryption KMS"),
        (ECR, {"tag_mutability": "FROZEN"}, "MUTABLE, IMMUTABLE"),
        (ECR, {"endpoint_url": "http://x"}, "no option 'endpoint_url'"),
        ("ftp://registry.example", {}, "use http:// or https://"),
    ],
)
def test_bad_endpoints_are_refused_with_what_to_give(
    url: str, options: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidEndpoint, match=re.escape(message)):
        check(url, **options)


def test_a_test_data_plane_takes_the_region_from_boto3s_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check("http://127.0.0.1:5000", region="eu-central-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    check("http://127.0.0.1:5000")
    settings = parse_settings(EndpointConfig("http://127.0.0.1:5000"))
    assert (settings.account, settings.region) == (None, None)  # found at first use


def test_credentials_are_a_key_pair_or_the_chain() -> None:
    chain = parse_settings(EndpointConfig(ECR))
    assert (chain.access_key, chain.secret_key) == (None, None)
    pair = parse_settings(EndpointConfig(ECR, username="AKIAEXAMPLE", password="s3cret"))
    assert (pair.access_key, pair.secret_key) == ("AKIAEXAMPLE", "s3cret")
    with pytest.raises(InvalidEndpoint, match="both the access key id and its secret"):
        parse_settings(EndpointConfig(ECR, username="AKIAEXAMPLE"))
    with pytest.raises(InvalidEndpoint, match="bearer token cannot log in"):
        parse_settings(EndpointConfig(ECR, token="t"))


def test_role_settings() -> None:
    role = "arn:aws:iam::210987654321:role/path/seawall"
    settings = parse_settings(EndpointConfig(ECR, options={"role_arn": role, "external_id": "x1"}))
    assert (settings.role_arn, settings.external_id) == (role, "x1")
    assert settings.role_session_name == "seawall"


def test_repository_names_follow_ecrs_rules() -> None:
    adapter = EcrAdapter(EndpointConfig(ECR))
    for good in ("ab", "team/app", "a.b/c_d/e-f", "x" * 255):
        adapter.check_name(good)
    for bad in ("a", "team/a__b", "team/a--b", "Team/app", "team//app"):
        with pytest.raises(InvalidRepositoryName):
            adapter.check_name(bad)
    with pytest.raises(InvalidRepositoryName, match=re.escape("single '.', '_' or '-'")):
        adapter.check_name("team/a__b")


def test_capabilities_are_declared_conservatively() -> None:
    caps = EcrAdapter.capabilities
    assert caps.catalog and caps.referrers_api and caps.delete_tag and caps.create_namespace
    assert not caps.chunked_upload and not caps.blob_mount
    assert EcrAdapter.info()["supported_copy_by_chunk"] is False
    names = [o["name"] for o in EcrAdapter.info()["options"]]
    assert names[:3] == ["region", "role_arn", "external_id"]


@pytest.mark.anyio
async def test_blob_mount_is_the_registrys_setting() -> None:
    off = EcrAdapter(EndpointConfig(ECR))
    on = EcrAdapter(EndpointConfig(ECR, options={"blob_mount": "enabled"}))
    assert (await off.current_capabilities()).blob_mount is False
    assert (await on.current_capabilities()).blob_mount is True


def test_tag_mutability_with_exclusions() -> None:
    assert immutable(RepositoryInfo("r", "IMMUTABLE"), "v1")
    assert not immutable(RepositoryInfo("r", "MUTABLE"), "v1")
    excl = RepositoryInfo("r", "IMMUTABLE_WITH_EXCLUSION", ("latest", "dev-*"))
    assert immutable(excl, "v1") and not immutable(excl, "dev-3") and not immutable(excl, "latest")
    flip = RepositoryInfo("r", "MUTABLE_WITH_EXCLUSION", ("release-*",))
    assert immutable(flip, "release-1") and not immutable(flip, "latest")


def _client_error(code: str, status: int, message: str = "m") -> ClientError:
    response = {"Error": {"Code": code, "Message": message}}
    response["ResponseMetadata"] = {"HTTPStatusCode": status}  # type: ignore[assignment]
    return ClientError(response, "Op")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_client_error("ThrottlingException", 400), RateLimited),
        (_client_error("AccessDeniedException", 400), Denied),
        (_client_error("RepositoryNotFoundException", 400), NotFound),
        (_client_error("InvalidClientTokenId", 403), CredentialsUnavailable),
        (_client_error("ServerException", 500), ServerError),
        (_client_error("InvalidParameterException", 400), RequestRejected),
        (
            _client_error("403", 403, "<E><Code>SignatureDoesNotMatch</Code></E>"),
            CredentialsUnavailable,
        ),
        (NoCredentialsError(), CredentialsUnavailable),
        (EndpointConnectionError(endpoint_url="https://ecr.example"), ConnectionFailed),
    ],
)
def test_botocore_errors_are_translated_once(error: Exception, kind: type) -> None:
    translated = translate(error, "ECR DescribeImages of 123456789012/app")
    assert type(translated) is kind
    assert "ECR DescribeImages of 123456789012/app" in str(translated)


def test_a_role_that_is_refused_says_so() -> None:
    error = translate(_client_error("AccessDenied", 403, "not authorized"), "STS AssumeRole of r")
    assert isinstance(error, CredentialsUnavailable)


# -- secrets stay out of reprs ------------------------------------------------------------------

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_reprs_never_show_the_secret_access_key() -> None:
    config = EndpointConfig(ECR, username="AKIAEXAMPLE", password=SECRET)
    settings = parse_settings(config)
    adapter = EcrAdapter(config)
    for shown in (settings, adapter, adapter.settings, adapter.api, adapter.api.settings):
        assert SECRET not in repr(shown) and SECRET not in str(shown)
    assert "AKIAEXAMPLE" in repr(settings)  # the key id is no secret: it says which key
    assert settings.secret_key == SECRET


# -- an answer AWS should never give -----------------------------------------------------------


class _MalformedEcr:
    """A boto3 ECR client whose answers lack what the API promises."""

    def __init__(self, token: object = "%%% not base64 %%%") -> None:
        self.token = token

    def get_authorization_token(self, **kwargs: object) -> dict[str, object]:
        return {"authorizationData": [{"authorizationToken": self.token}]}

    def describe_images(self, **kwargs: object) -> dict[str, object]:
        return {"imageDetails": [{"imageTags": ["v1"]}]}  # no imageDigest

    def describe_repositories(self, **kwargs: object) -> dict[str, object]:
        return {"repositories": [{"imageTagMutability": "MUTABLE"}]}  # no repositoryName


@pytest.mark.anyio
@pytest.mark.parametrize(
    "token",
    [
        "%%% not base64 %%%",
        base64.b64encode(b"\xff\xfe:\xff").decode(),  # base64 of bytes that are not UTF-8
        None,
    ],
)
async def test_a_malformed_authorization_token_is_a_protocol_error(token: object) -> None:
    api = EcrApi(parse_settings(EndpointConfig(ECR)))
    api._ecr = lambda operation: _MalformedEcr(token)  # type: ignore[method-assign,assignment,return-value]
    with pytest.raises(ProtocolError, match="ECR GetAuthorizationToken for 123456789012") as e:
        await api.authorization()
    assert "AWS answered outside its API" in str(e.value)


@pytest.mark.anyio
async def test_answers_without_the_fields_ecr_promises_are_protocol_errors() -> None:
    api = EcrApi(parse_settings(EndpointConfig(ECR)))
    api._ecr = lambda operation: _MalformedEcr()  # type: ignore[method-assign,assignment,return-value]
    with pytest.raises(ProtocolError, match=r"DescribeImages of 123456789012/app:v1.*imageDigest"):
        await api.image("app", "v1")
    with pytest.raises(ProtocolError, match=r"DescribeRepositories.*repositoryName"):
        await api.repository("app")


# -- check_config on the event loop: no botocore session per check ------------------------------


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """botocore sessions made from now on."""
    made: list[object] = []
    original = botocore.session.Session.__init__

    def counting(self: botocore.session.Session, *args: object, **kwargs: object) -> None:
        made.append(self)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(botocore.session.Session, "__init__", counting)
    return made


def test_region_checks_make_no_botocore_session_each(
    sessions: list[object], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = tmp_path / "aws-config"
    profile.write_text("[default]\nregion = eu-central-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(profile))
    check("http://127.0.0.1:5000")  # the profile's region: read once
    check(ECR)
    check("https://210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn")  # another partition
    before = len(sessions)
    for _ in range(20):
        check("http://127.0.0.1:5000")
        check(ECR)
        check("https://123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com")
    assert len(sessions) == before
    profile.write_text("[default]\nregion = xx-north-1\n# changed\n")  # the profile changed
    with pytest.raises(InvalidEndpoint, match="'xx-north-1' is not an AWS region"):
        check("http://127.0.0.1:5000")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(InvalidEndpoint, match="none is set"):
        check("http://127.0.0.1:5000")


def test_the_region_list_is_loaded_once_for_every_thread(
    sessions: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aws_ecr, "_regions", None, raising=False)  # not loaded yet
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(aws_ecr._known_regions, ["aws", "aws-cn", "aws-us-gov"] * 8))
    assert len(sessions) == 1
    assert "eu-west-1" in found[0] and "cn-north-1" in found[1] and "us-gov-west-1" in found[2]
