"""The edge and link-local settings are settings (file, ``SEAWALL_*`` env, defaults) and reach
the parts that use them; a bad value is refused with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from seawall.app import build_app
from seawall.config import SettingsError, load_settings


def test_env_names_of_the_edge_and_link_local_settings() -> None:
    s = load_settings(
        environ={
            "SEAWALL_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
            "SEAWALL_BODY_IDLE_TIMEOUT_SECONDS": "7.5",
            "SEAWALL_ALLOW_LINK_LOCAL_TARGETS": "true",
        }
    )
    assert s.trusted_proxies == ["10.0.0.0/8", "127.0.0.1"]
    assert s.body_idle_timeout_seconds == 7.5
    assert s.allow_link_local_targets is True
    d = load_settings(environ={})
    assert (d.trusted_proxies, d.body_idle_timeout_seconds, d.allow_link_local_targets) == (
        [],
        30.0,
        False,
    )


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("SEAWALL_TRUSTED_PROXIES", "10.0.0.0/8,not-an-ip", ["trusted_proxies", "not-an-ip"]),
        ("SEAWALL_BODY_IDLE_TIMEOUT_SECONDS", "0", ["body_idle_timeout_seconds"]),
        ("SEAWALL_BODY_IDLE_TIMEOUT_SECONDS", "3601", ["body_idle_timeout_seconds"]),
    ],
)
def test_bad_values_are_refused(name: str, value: str, words: list[str]) -> None:
    with pytest.raises(SettingsError) as e:
        load_settings(environ={name: value})
    assert "\n" not in str(e.value)
    for word in words:
        assert word in str(e.value)


def test_a_config_file_sets_them_and_the_app_uses_them(tmp_path: Path) -> None:
    config = tmp_path / "seawall.toml"
    config.write_text(
        'trusted_proxies = ["192.0.2.1"]\nbody_idle_timeout_seconds = 12\n'
        "allow_link_local_targets = true\n"
        f'data_dir = "{tmp_path / "data"}"\n'
    )
    settings = load_settings(str(config), environ={})
    app = build_app(settings)
    assert app.edge.options.trusted_proxies == ("192.0.2.1",)
    assert app.edge.options.body_idle_timeout_seconds == 12
    assert app.edge.trusts("192.0.2.1") and not app.edge.trusts("127.0.0.1")
    assert app.fallback.ctx.allow_link_local is True
