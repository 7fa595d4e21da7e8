"""The registry of adapter types: built-ins without installed metadata, plugins by entry point
(faked by monkeypatching ``importlib.metadata.entry_points``), duplicates refused, broken
plugins reported with the reason and the fix."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from typing import ClassVar

import pytest

from adapters import registry
from adapters.base import AdapterUnavailable, Capabilities, RegistryAdapter
from adapters.generic import DockerRegistryAdapter
from adapters.registry import (
    BUILTINS,
    GROUP,
    AdapterRegistry,
    DuplicateAdapterType,
    UnknownAdapterType,
)
from adapters.seawall import SeawallAdapter

HERE = __name__  # the fake plugins below live in this module

CAPS = Capabilities(
    catalog=True,
    referrers_api=False,
    blob_mount=True,
    chunked_upload=True,
    delete_tag=False,
    delete_manifest=True,
    create_namespace=False,
)


class ExampleAdapter(RegistryAdapter):
    type: ClassVar[str] = "example"
    capabilities: ClassVar[Capabilities] = CAPS


class RivalExampleAdapter(RegistryAdapter):
    type: ClassVar[str] = "example"
    capabilities: ClassVar[Capabilities] = CAPS


class ImpostorSeawall(RegistryAdapter):
    type: ClassVar[str] = "seawall"
    capabilities: ClassVar[Capabilities] = CAPS


class NeedsSdkAdapter(RegistryAdapter):
    type: ClassVar[str] = "needs-sdk"
    capabilities: ClassVar[Capabilities] = CAPS

    @classmethod
    def check_available(cls) -> None:
        raise AdapterUnavailable("the boto3 SDK is missing: pip install 'seawall-ecr[aws]'")


NOT_AN_ADAPTER = object()


def entry_points(
    monkeypatch: pytest.MonkeyPatch, *specs: tuple[str, str]
) -> Callable[[], AdapterRegistry]:
    """Fake the group's entry points; returns a factory of fresh registries that see them."""
    eps = [importlib.metadata.EntryPoint(name, value, GROUP) for name, value in specs]

    def fake(**selection: str) -> list[importlib.metadata.EntryPoint]:
        return [ep for ep in eps if ep.group == selection.get("group")]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    return lambda: AdapterRegistry(builtins=BUILTINS)


def test_builtins_work_without_installed_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = entry_points(monkeypatch)()
    assert reg.types() == ["docker-registry", "seawall"]
    assert reg.get("docker-registry") is DockerRegistryAdapter
    assert reg.get("seawall") is SeawallAdapter
    assert reg.problems() == ()


def test_the_default_registry_is_a_read_only_view() -> None:
    view = registry.available()
    assert view["docker-registry"] is DockerRegistryAdapter
    with pytest.raises(TypeError):
        view["docker-registry"] = SeawallAdapter  # type: ignore[index]
    assert registry.problems() == ()  # whatever is installed here loads cleanly
    assert {"docker-registry", "seawall"} <= set(registry.types())
    assert registry.info("seawall")["type"] == "seawall"


def test_unknown_type_lists_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = entry_points(monkeypatch)()
    with pytest.raises(UnknownAdapterType, match="'quay'; known types: docker-registry, seawall"):
        reg.get("quay")


def test_a_plugin_is_discovered(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = entry_points(monkeypatch, ("example", f"{HERE}:ExampleAdapter"))()
    assert reg.get("example") is ExampleAdapter
    assert reg.available["example"] is ExampleAdapter
    assert reg.types() == ["docker-registry", "example", "seawall"]


def test_builtins_declared_as_entry_points_are_no_duplicates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reg = entry_points(
        monkeypatch,
        ("docker-registry", "adapters.generic:DockerRegistryAdapter"),
        ("seawall", "adapters.seawall:SeawallAdapter"),
        ("seawall", "adapters.seawall:SeawallAdapter"),  # two copies of the metadata
    )()
    assert reg.problems() == ()
    assert reg.types() == ["docker-registry", "seawall"]


def test_a_plugin_cannot_replace_a_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = entry_points(monkeypatch, ("seawall", f"{HERE}:ImpostorSeawall"))()
    assert reg.get("seawall") is SeawallAdapter
    (problem,) = reg.problems()
    assert problem.type == "seawall"
    assert problem.source.endswith(":ImpostorSeawall")
    assert "built in" in problem.reason and "uninstall the plugin" in problem.reason
    assert reg.unavailable() == {}


def test_two_plugins_for_one_type_are_both_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = entry_points(
        monkeypatch,
        ("example", f"{HERE}:ExampleAdapter"),
        ("example", f"{HERE}:RivalExampleAdapter"),
    )()
    assert "example" not in reg.types()
    assert len(reg.unavailable()["example"]) == 2
    with pytest.raises(AdapterUnavailable, match=r"2 plugins provide this type.*all but one"):
        reg.get("example")


def test_registering_a_second_class_for_a_type_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reg = entry_points(monkeypatch)()
    reg.register(SeawallAdapter)  # the same class again: nothing happens
    with pytest.raises(DuplicateAdapterType, match="'seawall' is already provided by built in"):
        reg.register(ImpostorSeawall)
    with pytest.raises(TypeError, match="not a RegistryAdapter"):
        reg.register(object)  # type: ignore[arg-type]


def test_a_plugin_that_fails_to_import_is_unavailable_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reg = entry_points(monkeypatch, ("aws-ecr", "seawall_missing_plugin.ecr:EcrAdapter"))()
    assert reg.types() == ["docker-registry", "seawall"]
    (problem,) = reg.unavailable()["aws-ecr"]
    assert problem.source == "seawall_missing_plugin.ecr:EcrAdapter"
    assert "module 'seawall_missing_plugin' is not installed; install it" in problem.reason
    with pytest.raises(AdapterUnavailable, match="'aws-ecr' is unavailable"):
        reg.get("aws-ecr")
    with pytest.raises(UnknownAdapterType, match=r"\(unavailable: aws-ecr\)"):
        reg.get("gitlab")


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("quay", f"{HERE}:ExampleAdapter", "named 'quay' but the class' type is 'example'"),
        ("thing", f"{HERE}:NOT_AN_ADAPTER", "not a RegistryAdapter subclass"),
        ("needs-sdk", f"{HERE}:NeedsSdkAdapter", "boto3 SDK is missing: pip install"),
        ("broken", f"{HERE}:NoSuchName", "AttributeError"),
    ],
)
def test_unusable_plugins_say_why(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, reason: str
) -> None:
    reg = entry_points(monkeypatch, (name, value))()
    (problem,) = reg.unavailable()[name]
    assert reason in problem.reason
    assert name in str(problem) and value in str(problem)


def test_discovery_runs_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    entry_points(monkeypatch)
    fake = importlib.metadata.entry_points

    def counting(**selection: str) -> object:
        calls.append(selection["group"])
        return fake(**selection)

    monkeypatch.setattr(importlib.metadata, "entry_points", counting)
    reg = AdapterRegistry(builtins=BUILTINS)
    reg.types()
    reg.get("seawall")
    reg.problems()
    assert calls == [GROUP]
