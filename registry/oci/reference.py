"""Repository names and tags, validated by the OCI Distribution Spec's grammar."""

from __future__ import annotations

import re

__all__ = ["MAX_NAME_LENGTH", "is_valid_name", "is_valid_tag", "validate_name"]

# [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
MAX_NAME_LENGTH = 255


def is_valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and _NAME_RE.fullmatch(name) is not None


def validate_name(name: str) -> str:
    from registry.oci.errors import RegistryError

    if not is_valid_name(name):
        raise RegistryError(
            "NAME_INVALID",
            {"name": name[:300], "rule": "lowercase components [a-z0-9] joined by . _ __ - and /"},
        )
    return name


def is_valid_tag(tag: str) -> bool:
    return _TAG_RE.fullmatch(tag) is not None
