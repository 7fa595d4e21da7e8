"""``quay``: every bad endpoint and every name Quay cannot hold is refused before anything is
sent, with a message that says what to give instead; good ones resolve their login."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.base import EndpointConfig, InvalidEndpoint, InvalidRepositoryName
from adapters.quay import QuayAdapter
from adapters.registry import get

QUAY = "https://quay.io"


def config(
    url: str = QUAY,
    user: str | None = "myorg+ci",
    password: str | None = "robot-token",
    token: str | None = None,
    **options: str,
) -> EndpointConfig:
    return EndpointConfig(
        url, username=user, password=password, token=token, options=tuple(sorted(options.items()))
    )


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (config("gopher://quay.io"), "use http:// or https://"),
        (config("https://quay.io/v2"), "give the host only"),
        (config("https://quay.io/myorg"), "give the host only"),
        (config("https://quay.io?x=1"), "give the host only"),
        (config(user="MyOrg+CI"), "is not NAMESPACE\\+NAME"),
        (config(user="myorg+1ci"), "is not NAMESPACE\\+NAME"),
        (config(user="myorg+"), "is not NAMESPACE\\+NAME"),
        (config(password=None), "has no password or token"),
        (config(user=None), "a password without a username"),
        (config(token="oauth"), "not both"),
        (config(no_such="x"), "no option 'no_such'"),
        (config(create_repositories="yes"), "use one of true, false"),
        (config(create_repositories="true"), "--create-repositories true needs Quay's API"),
        (config(visibility="internal"), "use one of private, public"),
        (config(visibility="public"), "applies to created repositories only"),
        (config(namespaces="MyOrg"), "--namespaces 'MyOrg' is not valid"),
        (config(namespaces="a,b"), "'a' is not a Quay namespace"),
        (config(namespaces="myorg,,other"), "--namespaces 'myorg,,other' is not valid"),
        (config(api_token_file="relative/token"), "absolute path"),
        (config(api_token_file="/etc/hostname"), "not inside SEAWALL_CREDENTIALS_DIR"),
    ],
)
def test_bad_endpoints_are_refused_before_anything_is_sent(
    cfg: EndpointConfig, message: str
) -> None:
    with pytest.raises(InvalidEndpoint, match=message):
        QuayAdapter.check_config(cfg)
    with pytest.raises(InvalidEndpoint):
        QuayAdapter(cfg)  # nothing is constructed either


def test_good_endpoints_resolve_their_login(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("oauth-token\n")
    robot = QuayAdapter(config(api_token_file=str(token_file), create_repositories="true"))
    assert (robot.settings.login, robot.settings.host, robot.settings.has_api) == (
        "robot",
        "quay.io",
        True,
    )
    oauth = QuayAdapter(config(user="$oauthtoken", password="oauth-secret"))
    assert (oauth.settings.login, oauth.settings.api_token) == ("oauth", "oauth-secret")
    bearer = QuayAdapter(config(user=None, password=None, token="oauth-secret"))
    kwargs = bearer.client_kwargs()
    assert (kwargs["username"], kwargs["password"], kwargs["token"]) == (
        "$oauthtoken",
        "oauth-secret",
        None,
    )
    assert QuayAdapter(config(user="alice", password="pw")).settings.login == "user"
    anonymous = QuayAdapter(config("http://127.0.0.1:8080", user=None, password=None))
    assert (anonymous.settings.login, anonymous.api()) == ("anonymous", None)
    listed = QuayAdapter(config(namespaces="myorg,other_org"))
    assert listed.settings.namespaces == ("myorg", "other_org")
    assert "oauth-secret" not in repr(oauth.settings) + repr(bearer)


def test_an_unreadable_or_empty_token_file_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(InvalidEndpoint, match="is empty"):
        QuayAdapter(config(api_token_file=str(empty))).api()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("myorg/team/app", "no further '/'"),
        ("myorg", "quay registries need exactly 2"),
        ("a/app", "'a' is not a Quay namespace"),
        ("MyOrg/app", "is not valid"),
        ("myorg/" + "x" * 256, "is not valid"),
    ],
)
def test_names_quay_cannot_hold_are_refused(name: str, message: str) -> None:
    adapter = QuayAdapter(config())
    with pytest.raises(InvalidRepositoryName, match=message):
        adapter.check_name(name)


def test_names_quay_holds_pass() -> None:
    adapter = QuayAdapter(config())
    for name in ("myorg/app", "my-org/app.v2", "my_org/a__b", "ab/" + "x" * 200):
        adapter.check_name(name)


def test_declaration() -> None:
    caps = QuayAdapter.capabilities
    assert get("quay") is QuayAdapter
    assert (caps.min_path_components, caps.max_path_components) == (2, 2)
    assert (caps.delete_tag, caps.delete_manifest, caps.catalog) == (True, True, True)
    assert QuayAdapter.probed == frozenset({"referrers_api"}) and caps.referrers_api is False
    info = QuayAdapter.info()
    assert {o["name"] for o in info["options"]} == {
        "api_token_file",
        "namespaces",
        "create_repositories",
        "visibility",
    }
    assert next(o for o in info["options"] if o["name"] == "api_token_file")["kind"] == "file"
