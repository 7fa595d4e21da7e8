"""Google logins for ``google-gar`` / ``google-gcr``: every credential form against the fake's
token endpoints (the service-account JWT verified), access tokens refreshed before expiry (an
injected clock) and after a 401 (the fake's clock moved past them), 429 with Retry-After,
deleted keys, Application Default Credentials (a key file, the metadata server), and bad
input refused before anything is sent."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from aiohttp import web

from adapters.base import EndpointConfig, InvalidEndpoint, InvalidRepositoryName
from adapters.google_auth import AuthMode, GoogleAuth, GoogleTokenSource, TokenEndpointUnavailable
from adapters.google_gar import GarAdapter, GcrAdapter
from adapters.oci.credentials import CredentialsUnavailable, RefreshingCredentials
from adapters.oci.errors import ConnectionFailed, RateLimited, TlsError, Transient
from adapters.testing import push_image
from tests.support.fake_aad import make_certificate, pem
from tests.support.google_world import FAST, PROJECT, REPOSITORY, GoogleWorld, google_world
from tests.support.server import SeawallProcess, free_port

pytestmark = pytest.mark.anyio
REPO = f"{PROJECT}/{REPOSITORY}/app"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def world(seawall: SeawallProcess) -> Iterator[GoogleWorld]:
    with google_world(seawall, "gar") as w:
        yield w


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


# -- each login --------------------------------------------------------------------------------


async def test_json_key_logs_in_statically_and_the_api_gets_tokens_from_the_key(
    world: GoogleWorld,
) -> None:
    async with GarAdapter(world.config("_json_key"), **FAST) as gar:
        assert gar.credential_provider() is None  # the registry exchanges the key itself
        ok, detail = await gar.health()
        assert ok, detail
        assert world.fake.counts["oauth_token"] == 0
        await push_image(gar, REPO, "v1")
        names, _ = await gar.catalog_listings("")
        assert REPO in names
    assert world.fake.counts["oauth_token"] == 1  # the API's token, minted from the key


async def test_json_key_base64_is_accepted(world: GoogleWorld) -> None:
    encoded = base64.b64encode(world.key_json.encode()).decode()
    async with GarAdapter(world.config("_json_key_base64", encoded), **FAST) as gar:
        ok, detail = await gar.health()
    assert ok, detail


async def test_a_key_as_oauth2accesstoken_mints_tokens_once_for_all_requests(
    world: GoogleWorld,
) -> None:
    async with GarAdapter(world.config("oauth2accesstoken"), **FAST) as gar:
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(gar.health)
        await gar.catalog_listings("")
    assert world.fake.counts["oauth_token"] == 1  # single flight; registry and API share it


async def test_a_literal_access_token_works_until_it_expires(world: GoogleWorld) -> None:
    token = world.fake.issue_access_token(world.key_id)
    async with GarAdapter(world.config("oauth2accesstoken", token), **FAST) as gar:
        ok, detail = await gar.health()
        assert ok, detail
        await gar.catalog_listings("")
    world.fake.clock.advance(3601)
    async with GarAdapter(world.config("oauth2accesstoken", token), **FAST) as gar:
        ok, detail = await gar.health()
    assert not ok and "401" in detail


async def test_a_key_file_and_adc_from_google_application_credentials(
    world: GoogleWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "key.json"
    path.write_text(world.key_json)
    async with GarAdapter(world.config(None, key_file=str(path)), **FAST) as gar:
        ok, detail = await gar.health()
        assert ok, detail
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    async with GarAdapter(world.config(None), **FAST) as gar:
        ok, detail = await gar.health()
        assert ok, detail
        await gar.catalog_listings("")
    assert world.fake.counts["oauth_token"] == 2  # one per adapter


def test_adc_from_the_metadata_server(world: GoogleWorld, tmp_path: Path) -> None:
    """A fresh process without credentials: google-auth finds the (fake) metadata server,
    as on GCE, GKE with workload identity or Cloud Run."""
    world.fake.metadata_key_id = world.key_id
    script = f"""
import anyio, json
from adapters.google_gar import GarAdapter
from adapters.base import EndpointConfig
async def main():
    config = EndpointConfig({world.fake.url!r}, insecure=True, options={world.options()!r})
    async with GarAdapter(config) as gar:
        ok, detail = await gar.health()
        names, _ = await gar.catalog_listings("")
    print(json.dumps([ok, detail]))
anyio.run(main)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "GCE_"))}
    env |= {
        "GCE_METADATA_HOST": world.fake.host,
        "GCE_METADATA_IP": world.fake.host,
        "CLOUDSDK_CONFIG": str(tmp_path),  # no gcloud credentials
    }
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    ok, detail = json.loads(out.stdout.splitlines()[-1])
    assert ok, detail
    assert world.fake.counts["metadata"] >= 2  # the ping, the account, the token
    assert world.fake.counts["oauth_token"] == 0


def test_no_adc_at_all_is_a_clear_error(tmp_path: Path) -> None:
    script = """
import anyio
from adapters.google_gar import GarAdapter
from adapters.base import EndpointConfig
async def main():
    config = EndpointConfig("https://us-central1-docker.pkg.dev", options={"project": "abcdef"})
    async with GarAdapter(config) as gar:
        print((await gar.health())[1])
anyio.run(main)
"""
    closed = f"127.0.0.1:{free_port()}"  # nothing leaves loopback: no metadata server there
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "GCE_"))}
    env |= {
        "GCE_METADATA_HOST": closed,
        "GCE_METADATA_IP": closed,
        "CLOUDSDK_CONFIG": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no Google credentials" in out.stdout
    assert "GOOGLE_APPLICATION_CREDENTIALS" in out.stdout


# -- expiry, refresh, refusal ------------------------------------------------------------------


async def test_an_access_token_expiring_mid_run_is_refreshed_after_the_401(
    world: GoogleWorld,
) -> None:
    fake = world.fake
    async with GarAdapter(world.config(), **FAST) as gar:
        await push_image(gar, REPO, "v1")
        assert fake.counts["oauth_token"] == 1
        fake.clock.advance(3601)  # the access token and the registry tokens are dead now
        tags, refs = await gar.list_tag_refs(REPO)  # 401 -> realm refuses -> refresh -> ok
        assert tags == ["v1"] and "v1" in refs
        names, _ = await gar.catalog_listings("")  # the API's 401 -> refresh -> ok
        assert REPO in names
    assert fake.counts["oauth_token"] == 2  # the registry and the API share the new one


async def test_access_tokens_are_refreshed_before_they_expire(world: GoogleWorld) -> None:
    """The API client's and the registry login's tokens, on an injected clock: reused while
    fresh, fetched again inside the 300 s margin before expiry, with no 401 in between."""
    clock = Clock()
    fake = world.fake
    async with GarAdapter(world.config(), clock=clock, **FAST) as gar:
        await gar.catalog_listings("")
        clock.now += 3600 - 301
        await gar.catalog_listings("")
        assert fake.counts["oauth_token"] == 1
        clock.now += 2
        await gar.catalog_listings("")
        assert fake.counts["oauth_token"] == 2
    clock = Clock()
    async with GarAdapter(world.config(), clock=clock, **FAST) as gar:
        provider = gar.credential_provider()
        assert provider is not None
        registry = RefreshingCredentials(provider, clock=clock)
        first = await registry.get()
        clock.now += 3600 - 301
        assert await registry.get() == first
        clock.now += 2
        second = await registry.get()
    assert first.username == second.username == "oauth2accesstoken"
    assert first.password != second.password
    assert fake.counts["oauth_token"] == 4
    assert fake.counts["api_repositories"] == 3  # never refused: no 401, no retry


async def test_a_deleted_key_makes_health_say_what_happened(world: GoogleWorld) -> None:
    world.fake.revoke(world.key_id)
    async with GarAdapter(world.config(), **FAST) as gar:
        ok, detail = await gar.health()
        assert not ok
        assert "was refused by" in detail and "create a new key" in detail
        with pytest.raises(CredentialsUnavailable, match="Invalid JWT Signature"):
            await gar.catalog_listings("")
    async with GarAdapter(world.config("_json_key"), **FAST) as gar:
        ok, detail = await gar.health()
    assert not ok and "401" in detail


async def test_429_with_retry_after_is_waited_for_and_a_long_one_is_raised(
    world: GoogleWorld,
) -> None:
    fake = world.fake
    async with GarAdapter(world.config(), **FAST) as gar:
        await push_image(gar, REPO, "v1")
        fake.throttle("tags_list", times=2, retry_after="0")
        tags, _ = await gar.list_tag_refs(REPO)
        assert tags == ["v1"]
        assert gar.client().stats().rate_limited == 2
        fake.throttle("api_docker_images", times=1, retry_after="0")
        names, _ = await gar.catalog_listings("")
        assert REPO in names
        fake.throttle("api_repositories", times=1, retry_after="3600")  # past 300 s: raised
        with pytest.raises(RateLimited) as caught:
            await gar.catalog_listings("")
        assert caught.value.retry_after_seconds == 3600
    assert fake.counts["tags_list"] == 3
    assert fake.counts["api_docker_images"] == 2


# -- bad input, refused before anything is sent -----------------------------------------------


def pairs(**options: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(options.items()))


def gar(url: str, **options: str) -> EndpointConfig:
    return EndpointConfig(url, options=pairs(**({"project": "my-project"} | options)))


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("https://docker.pkg.dev", {}, "not an Artifact Registry Docker host"),
        ("https://us-central-docker.pkg.dev", {}, "not an Artifact Registry location"),
        ("https://eu-west1-docker.pkg.dev", {}, "not an Artifact Registry location"),
        ("https://us-central1-docker.pkg.dev/my-project", {}, "root"),
        ("http://us-central1-docker.pkg.dev", {}, "over https"),
        ("https://gcr.io", {}, "use type google-gcr"),
        ("https://artifactregistry.googleapis.com", {}, "not an Artifact Registry Docker host"),
        ("http://127.0.0.1:5000", {}, "give --location"),
        ("https://us-docker.pkg.dev", {"location": "europe"}, "disagree"),
        ("https://us-docker.pkg.dev", {"api_endpoint": "ftp://x"}, "--api-endpoint"),
        ("https://us-docker.pkg.dev", {"api_endpoint": "http://x.googleapis.com"}, "https"),
        ("https://us-docker.pkg.dev", {"project": "X"}, "--project"),
        ("https://us-docker.pkg.dev", {"colour": "x"}, "no option 'colour'"),
        ("https://user:pw@us-docker.pkg.dev", {}, "without a login"),
    ],
)
def test_bad_gar_endpoints_are_refused(url: str, options: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidEndpoint, match=message):
        GarAdapter.check_config(gar(url, **options))


def test_gar_needs_a_project() -> None:
    with pytest.raises(InvalidEndpoint, match="--project"):
        GarAdapter.check_config(EndpointConfig("https://us-central1-docker.pkg.dev"))
    GarAdapter.check_config(gar("https://us-central1-docker.pkg.dev"))
    GarAdapter.check_config(gar("https://europe-docker.pkg.dev", location="europe"))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://europe.gcr.io", "not a Container Registry host"),
        ("http://gcr.io", "over https"),
        ("https://us-docker.pkg.dev", "use type google-gar"),
    ],
)
def test_bad_gcr_endpoints_are_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidEndpoint, match=message):
        GcrAdapter.check_config(EndpointConfig(url))


def test_good_gcr_hosts() -> None:
    for host in ("gcr.io", "us.gcr.io", "eu.gcr.io", "asia.gcr.io"):
        GcrAdapter.check_config(EndpointConfig(f"https://{host}"))


def test_keys_are_checked_and_never_echoed(world: GoogleWorld, tmp_path: Path) -> None:
    url = "https://us-central1-docker.pkg.dev"
    user = {"type": "authorized_user", "client_id": "x", "refresh_token": "s3cret"}
    no_pem = world.key | {"private_key": "s3cret"}
    cases = [
        ("_json_key", "not json s3cret", "not a service-account key"),
        ("_json_key", json.dumps(user), "'authorized_user' document"),
        ("_json_key", json.dumps({"type": "service_account"}), "no client_email, private_key"),
        ("_json_key", json.dumps(no_pem), "not a PEM private key"),
        ("_json_key_base64", "%%%", "not base64"),
        ("oauth2accesstoken", " ", "give an access token"),
        ("admin", "s3cret", "not a Google login"),
    ]
    for username, password, message in cases:
        config = EndpointConfig(url, username, password, options=pairs(project="my-project"))
        with pytest.raises(InvalidEndpoint, match=message) as caught:
            GarAdapter.check_config(config)
        assert "s3cret" not in str(caught.value)
    key_path = tmp_path / "key.json"
    key_path.write_text(world.key_json)
    both = EndpointConfig(
        "https://gcr.io", "_json_key", world.key_json, options=pairs(key_file=str(key_path))
    )
    with pytest.raises(InvalidEndpoint, match="not both"):
        GcrAdapter.check_config(both)


def test_key_files_are_checked(tmp_path: Path) -> None:
    def check(path: str) -> None:
        GcrAdapter.check_config(EndpointConfig("https://gcr.io", options=pairs(key_file=path)))

    with pytest.raises(InvalidEndpoint, match="absolute path"):
        check("key.json")
    with pytest.raises(InvalidEndpoint, match="No such file"):  # the base rule, first
        check(str(tmp_path / "missing.json"))
    with pytest.raises(InvalidEndpoint, match="not inside SEAWALL_CREDENTIALS_DIR"):
        check("/etc/hostname")
    (tmp_path / "text").write_text("hello")
    with pytest.raises(InvalidEndpoint, match="not a JSON credential file"):
        check(str(tmp_path / "text"))
    (tmp_path / "odd.json").write_text('{"type": "odd"}')
    with pytest.raises(InvalidEndpoint, match="'odd'"):
        check(str(tmp_path / "odd.json"))
    external = {"type": "external_account", "audience": "//iam.googleapis.com/x"}
    (tmp_path / "wif.json").write_text(json.dumps(external))
    check(str(tmp_path / "wif.json"))  # workload identity federation: google-auth's to read


def test_names_the_providers_cannot_hold() -> None:
    adapter = GarAdapter(gar("https://us-central1-docker.pkg.dev"))
    adapter.check_name("my-project/images/app/sub")
    for name, message in [
        ("my-project/images", "at least 3"),
        ("short/images/app", "not a Google Cloud project ID"),
        ("my-project/repo_x/app", "not an Artifact Registry repository ID"),
        ("my-project/1repo/app", "not an Artifact Registry repository ID"),
    ]:
        with pytest.raises(InvalidRepositoryName, match=message):
            adapter.check_name(name)
    gcr = GcrAdapter(EndpointConfig("https://gcr.io"))
    gcr.check_name("my-project/app")
    with pytest.raises(InvalidRepositoryName, match="at least 2"):
        gcr.check_name("app")
    with pytest.raises(InvalidRepositoryName, match="project ID"):
        gcr.check_name("ab/app")


# -- secrets stay out of reprs ------------------------------------------------------------------


async def test_reprs_never_show_keys_or_tokens(world: GoogleWorld) -> None:
    private_key = world.key["private_key"].splitlines()[1]
    token = "ya29.a-literal-access-token"
    for config in (world.config(), world.config("_json_key"), world.config(password=token)):
        async with GarAdapter(config, **FAST) as gar:
            if gar.tokens is not None:
                await gar.catalog_listings("")  # tokens minted and handed out
            shown = [gar, gar.auth, gar.api(), gar.client()]
            if gar.tokens is not None:
                shown += [gar.tokens, gar.tokens._current]
            handed = gar.tokens._handed.values() if gar.tokens is not None else ()
            for secret in (private_key, world.key_json, token, *handed):
                for thing in shown:
                    assert secret not in repr(thing) and secret not in str(thing)


# -- the token endpoint throttling, failing or unreachable: transient ---------------------------


@pytest.fixture
def quick_google_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """google-auth's own retries of the token endpoint without its 1 s and 2 s pauses."""
    from google.auth import _exponential_backoff

    init = _exponential_backoff._BaseExponentialBackoff.__init__
    attempts, _, jitter, multiplier = init.__defaults__ or ()
    monkeypatch.setattr(init, "__defaults__", (attempts, 0.0, jitter, multiplier))


@pytest.mark.usefixtures("quick_google_retries")
async def test_a_throttled_token_endpoint_is_transient_not_a_refusal(world: GoogleWorld) -> None:
    fake, clock = world.fake, Clock()
    async with GarAdapter(world.config(), clock=clock, **FAST) as gar:
        fake.throttle("oauth_token", times=1000)
        with pytest.raises(TokenEndpointUnavailable) as caught:
            await gar.catalog_listings("")
        assert isinstance(caught.value, Transient)
        assert not isinstance(caught.value, CredentialsUnavailable)
        assert "429 or 5xx" in str(caught.value) and "tried again later" in str(caught.value)
        assert fake.counts["oauth_token"] >= 3  # google-auth's own retries came first
        ok, detail = await gar.health()
        assert not ok and "tried again later" in detail
        fake.throttle("oauth_token", times=0)  # the endpoint is back
        clock.now += 3  # past the credential cache's memory of the failure
        await gar.catalog_listings("")  # the login works again


def _source() -> GoogleTokenSource:
    return GoogleTokenSource(GoogleAuth(AuthMode.ADC))


def test_google_auth_errors_are_translated_by_what_happened() -> None:
    from google.auth import exceptions as gexc

    def raised_from(error: Exception, cause: Exception) -> Exception:
        error.__cause__ = cause
        return error

    unreachable = gexc.TransportError("Connection refused")
    metadata_down = raised_from(gexc.RefreshError(unreachable), unreachable)
    no_account = gexc.TransportError(
        "Failed to retrieve http://metadata/x from the Google Compute Engine metadata "
        "service. Status: 404 Response:\nb'not found'"
    )
    busy_metadata = gexc.TransportError(
        "Failed to retrieve x. Compute Engine Metadata server unavailable. Response status: 503"
    )
    for error, kind in [
        (
            gexc.RefreshError("temporarily_unavailable: busy", {}, retryable=True),
            TokenEndpointUnavailable,
        ),
        (gexc.RefreshError("internal_failure", "<html>", retryable=True), TokenEndpointUnavailable),
        (gexc.RefreshError("invalid_grant: Invalid JWT Signature.", {}), CredentialsUnavailable),
        (gexc.RefreshError("invalid_scope", {}), CredentialsUnavailable),
        (unreachable, ConnectionFailed),
        (metadata_down, ConnectionFailed),
        (raised_from(gexc.RefreshError(busy_metadata), busy_metadata), ConnectionFailed),
        (raised_from(gexc.RefreshError(no_account), no_account), CredentialsUnavailable),
    ]:
        translated = _source()._translate(error)
        assert type(translated) is kind, (error, translated)
        assert isinstance(translated, Transient) is (kind is not CredentialsUnavailable)


# -- the API client verifies TLS whatever the registry's insecure says ---------------------------


async def test_the_api_client_verifies_tls_though_the_registry_is_insecure(
    world: GoogleWorld, tmp_path: Path
) -> None:
    """The access token goes to the API endpoint: an https stand-in with a certificate
    nobody trusts is refused, though the endpoint says ``insecure`` (for its registry)."""
    cert, key = make_certificate("127.0.0.1", make_certificate("a CA nobody trusts"))
    (tmp_path / "api.pem").write_bytes(pem(cert, key))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "api.pem")
    seen: list[str] = []

    async def repositories(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"repositories": []})

    app = web.Application()
    app.router.add_get("/{tail:.*}", repositories)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        config = world.config(api_endpoint=f"https://127.0.0.1:{port}")
        assert config.insecure
        async with GarAdapter(config, **FAST) as gar:
            with pytest.raises(TlsError):
                await gar.api().list_repositories(PROJECT, "us-central1")
            assert gar.client_kwargs()["insecure"]  # the registry's connections: as configured
    finally:
        await runner.cleanup()
    assert seen == []  # no token left this process for that host
