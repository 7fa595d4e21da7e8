"""Drivers by name: built-ins, entry-point plugins, and what an unusable one says."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from registry.storage.base import DriverUnavailable, StorageDriver
from registry.storage.checked import CheckedDriver
from registry.storage.drivers.filesystem import FilesystemDriver
from registry.storage.factory import BUILTINS, DriverConfig, DriverFactory, UnknownDriver
from seawall.app import build_driver
from seawall.config import Settings


class PluginDriver(FilesystemDriver):
    name = "plugin-fs"


def _entry_points(monkeypatch: pytest.MonkeyPatch, *pairs: tuple[str, str]) -> None:
    eps = [importlib.metadata.EntryPoint(name, value, "seawall.storage") for name, value in pairs]

    def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
        return eps if group == "seawall.storage" else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_builtins_are_known_and_wrapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _entry_points(monkeypatch)
    factory = DriverFactory()
    assert factory.names() == ["azure", "filesystem", "gcs", "s3"]
    driver = factory.create(DriverConfig("filesystem", root=str(tmp_path)))
    assert isinstance(driver, CheckedDriver) and isinstance(driver.inner, FilesystemDriver)


def test_unknown_name_lists_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    _entry_points(monkeypatch)
    with pytest.raises(UnknownDriver, match="known drivers: azure, filesystem, gcs, s3"):
        DriverFactory().get("ftp")


def test_missing_sdk_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    _entry_points(monkeypatch)
    factory = DriverFactory(builtins={**BUILTINS, "s3": ("no_such_sdk_module:Driver", "boto3")})
    with pytest.raises(
        DriverUnavailable, match=r"'no_such_sdk_module' is not installed.*pip install boto3"
    ):
        factory.get("s3")


@pytest.mark.parametrize(
    ("name", "config", "hint"),
    [
        ("filesystem", DriverConfig("filesystem"), "SEAWALL_STORAGE__ROOT"),
        ("s3", DriverConfig("s3"), "SEAWALL_STORAGE__BUCKET"),
        ("azure", DriverConfig("azure"), "SEAWALL_STORAGE__CONTAINER"),
        ("gcs", DriverConfig("gcs"), "SEAWALL_STORAGE__BUCKET"),
    ],
)
def test_missing_settings_say_which(
    name: str, config: DriverConfig, hint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _entry_points(monkeypatch)
    with pytest.raises(DriverUnavailable, match=hint):
        DriverFactory().create(config)


def test_plugin_by_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _entry_points(monkeypatch, ("plugin-fs", f"{__name__}:PluginDriver"))
    factory = DriverFactory()
    assert "plugin-fs" in factory.names()
    driver = factory.create(DriverConfig("plugin-fs", root=str(tmp_path)))
    assert isinstance(driver.inner, PluginDriver) and driver.name == "plugin-fs"


def test_broken_or_rival_plugins_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    _entry_points(
        monkeypatch,
        ("s3", f"{__name__}:PluginDriver"),  # may not replace a built-in
        ("broken", "no_such_plugin_module:Driver"),
        ("misnamed", f"{__name__}:PluginDriver"),  # its class says "plugin-fs"
    )
    factory = DriverFactory()
    problems = "\n".join(factory.problems())
    assert "s3" in problems and "built in" in problems
    assert "'no_such_plugin_module' is not installed" in problems
    assert "misnamed" in problems
    with pytest.raises(DriverUnavailable, match="no_such_plugin_module"):
        factory.get("broken")
    assert issubclass(factory.get("s3"), StorageDriver) and factory.get("s3") is not PluginDriver


@pytest.mark.parametrize(
    ("storage", "hint"),
    [
        ({"driver": "s3"}, "SEAWALL_STORAGE__BUCKET"),
        ({"driver": "ftp"}, "known drivers: azure, filesystem, gcs, s3"),
    ],
)
def test_serve_refuses_to_start_and_says_why(
    tmp_path: Path, storage: dict[str, str], hint: str
) -> None:
    settings = Settings.model_validate({"data_dir": str(tmp_path), "storage": storage})
    with pytest.raises(SystemExit, match=hint):
        build_driver(settings)
