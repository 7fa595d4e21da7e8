"""The ``harbor`` endpoint's settings: its options, what they mean to Harbor, and its name rules.

Options (``--option NAME=VALUE``; all optional):

- ``project_public``, ``project_storage_limit_bytes``, ``project_auto_scan``,
  ``project_auto_sbom_generation``, ``project_prevent_vul``, ``project_severity``,
  ``project_enable_content_trust_cosign``, ``project_reuse_sys_cve_allowlist``: the settings
  of a project Seawall creates on push (Harbor's ``ProjectReq``: ``metadata`` holds strings
  ``"true"``/``"false"``, ``storage_limit`` bytes, ``-1`` unlimited). A project that exists
  already is left as it is.
- ``projects``: the projects listed when Seawall discovers repositories (comma separated);
  without it, every project the login can see.

Name rules (Harbor's): a repository is ``<project>/<name>`` (at least two components); a
project name is ``[a-z0-9]+([._-][a-z0-9]+)*``, at most 255 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from adapters.base import AdapterOption, EndpointConfig, InvalidEndpoint, InvalidRepositoryName

__all__ = [
    "OPTIONS",
    "PROJECT_NAME_MAX_CHARS",
    "HarborSettings",
    "check_project_name",
    "parse_settings",
    "split_repository",
]

PROJECT_NAME_MAX_CHARS = 255
_PROJECT = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_BOOL = ("true", "false")
SEVERITIES = ("none", "low", "medium", "high", "critical")
#: option name -> Harbor ProjectMetadata field, for the "true"/"false" ones
_METADATA_FLAGS = {
    "project_auto_scan": "auto_scan",
    "project_auto_sbom_generation": "auto_sbom_generation",
    "project_prevent_vul": "prevent_vul",
    "project_enable_content_trust_cosign": "enable_content_trust_cosign",
    "project_reuse_sys_cve_allowlist": "reuse_sys_cve_allowlist",
}


def _flag(name: str, help_text: str) -> AdapterOption:
    return AdapterOption(name=name, help=help_text, choices=_BOOL, example="true")


OPTIONS: tuple[AdapterOption, ...] = (
    _flag(
        "project_public",
        "a project created on push is public (anyone may pull): true or false (default false)",
    ),
    AdapterOption(
        name="project_storage_limit_bytes",
        help="a project created on push gets this storage quota in bytes (-1: unlimited; "
        "default: Harbor's per-project default; only a system administrator's may differ)",
        pattern=r"-1|[1-9][0-9]{0,17}",
        example="10737418240",
    ),
    _flag("project_auto_scan", "a project created on push scans images on push"),
    _flag(
        "project_auto_sbom_generation",
        "a project created on push generates an SBOM for each pushed image",
    ),
    _flag(
        "project_prevent_vul",
        "a project created on push refuses pulls of images above project_severity",
    ),
    AdapterOption(
        name="project_severity",
        help="with project_prevent_vul: the severity from which pulls are refused",
        choices=SEVERITIES,
        example="high",
    ),
    _flag(
        "project_enable_content_trust_cosign",
        "a project created on push serves only cosign-signed images (replicate signatures!)",
    ),
    _flag(
        "project_reuse_sys_cve_allowlist",
        "a project created on push uses the system CVE allowlist",
    ),
    AdapterOption(
        name="projects",
        help="the projects to discover repositories in, comma separated (default: every "
        "project the login can see; give them for a robot account of a few projects)",
        pattern=r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:,[a-z0-9]+(?:[._-][a-z0-9]+)*)*",
        example="library,team-a",
    ),
)


@dataclass(frozen=True, slots=True)
class HarborSettings:
    """What the options say: the body of a project created on push, the projects listed."""

    metadata: tuple[tuple[str, str], ...]  # ProjectMetadata fields, as Harbor's strings
    storage_limit_bytes: int | None  # None: Harbor's default quota
    projects: tuple[str, ...]  # () = every project the login can see

    def project_request(self, project: str) -> dict[str, Any]:
        """Harbor's ``ProjectReq`` for creating ``project``."""
        body: dict[str, Any] = {"project_name": project, "metadata": dict(self.metadata)}
        if self.storage_limit_bytes is not None:
            body["storage_limit"] = self.storage_limit_bytes
        return body


def parse_settings(config: EndpointConfig) -> HarborSettings:
    """The settings of ``config`` (options already checked against :data:`OPTIONS`).

    :raises InvalidEndpoint: options that contradict each other, a bearer token (Harbor's
        API takes a username and password: a user or a robot account).
    """
    if config.token is not None and config.username is None:
        raise InvalidEndpoint(
            "harbor endpoints log in with a username and password (a user, or a robot account "
            "robot$project+name / robot$name and its secret), not a bearer token"
        )
    if config.password is not None and config.username is None:
        raise InvalidEndpoint("harbor: a password without a username: give the account's name")
    metadata = {"public": config.option("project_public", "false")}
    for option, field in _METADATA_FLAGS.items():
        if value := config.option(option):
            metadata[field] = value
    severity = config.option("project_severity")
    if severity:
        if config.option("project_prevent_vul") != "true":
            raise InvalidEndpoint(
                "harbor --project-severity is used only with --project-prevent-vul true"
            )
        metadata["severity"] = severity
    limit = config.option("project_storage_limit_bytes")
    projects = tuple(p for p in config.option("projects").split(",") if p)
    for project in projects:
        try:
            check_project_name(project, what="harbor --projects")
        except InvalidRepositoryName as e:
            raise InvalidEndpoint(str(e)) from None
    return HarborSettings(
        metadata=tuple(sorted(metadata.items())),
        storage_limit_bytes=int(limit) if limit else None,
        projects=tuple(dict.fromkeys(projects)),
    )


def check_project_name(project: str, *, what: str = "Harbor project") -> None:
    """:raises InvalidRepositoryName: ``project`` breaks Harbor's project name rules."""
    if len(project) > PROJECT_NAME_MAX_CHARS or not _PROJECT.match(project):
        raise InvalidRepositoryName(
            f"{what} {project[:300]!r} is not a Harbor project name: use lowercase letters, "
            f"digits and single '.', '_' or '-' between them, at most "
            f"{PROJECT_NAME_MAX_CHARS} characters"
        )


def split_repository(name: str) -> tuple[str, str]:
    """``team/app/web`` → ``("team", "app/web")``: Harbor's project and the repository's name
    within it (the API's ``repository_name``)."""
    project, _, rest = name.partition("/")
    return project, rest
