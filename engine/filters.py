"""Replication filters: Harbor's (name, tag, label, resource) plus artifact type, each with a
syntax (Harbor-compatible ``glob`` by default, ``regex``, ``semver`` for tags) and a decoration
(``matches`` or ``excludes``) — on every filter type.

Semantics (Harbor's where it has one): filters are ANDed; a tag filter keeps only the matching
tags of an artifact (an untagged artifact is matched as tag ``""``), and an artifact left with no
tag is dropped; a label filter needs every label; ``resource`` is applied (Harbor validates it but
never applies it): ``image`` keeps images and indexes, ``artifact`` keeps everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from engine.glob import GlobError, glob_match
from engine.semver import SemverError, parse_range, range_matches

__all__ = [
    "Candidate",
    "Filter",
    "FilterError",
    "apply_filters",
    "classify",
    "repository_matches",
]

FilterType = Literal["name", "tag", "label", "resource", "artifact_type"]
ARTIFACT_TYPES = ("image", "index", "signature", "sbom", "attestation", "other")

_SIGNATURE_TYPES = (
    "application/vnd.dev.cosign.artifact.sig.v1+json",
    "application/vnd.cncf.notary.signature",
)
_SBOM_TYPES = (
    "application/spdx+json",
    "text/spdx",
    "application/vnd.cyclonedx+json",
    "application/vnd.cyclonedx+xml",
    "application/vnd.syft+json",
)
_ATTESTATION_TYPES = (
    "application/vnd.in-toto+json",
    "application/vnd.dsse.envelope.v1+json",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
)
_IMAGE_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_CONFIG_TYPES = (
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
)


class FilterError(ValueError):
    """A filter that cannot be used (unknown type, bad pattern, bad regex or semver range)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """An artifact at the source: its repository, digest and tags (plus what filters look at)."""

    repository: str
    digest: str
    tags: tuple[str, ...]
    labels: frozenset[str] = frozenset()
    media_type: str = ""
    artifact_type: str | None = None
    is_referrer: bool = False


def classify(
    media_type: str,
    artifact_type: str | None = None,
    is_referrer: bool = False,
    tags: Iterable[str] = (),
) -> str:
    """image, index, signature, sbom, attestation or other."""
    at = (artifact_type or "").lower()
    tag_list = list(tags)
    if at in _SIGNATURE_TYPES or any(t.endswith(".sig") for t in tag_list):
        return "signature"
    if (
        at in _SBOM_TYPES
        or "spdx" in at
        or "cyclonedx" in at
        or any(t.endswith(".sbom") for t in tag_list)
    ):
        return "sbom"
    if at in _ATTESTATION_TYPES or "in-toto" in at or any(t.endswith(".att") for t in tag_list):
        return "attestation"
    if media_type in _INDEX_TYPES:
        return "index"
    if media_type in _IMAGE_TYPES and (not at or at in _CONFIG_TYPES) and not is_referrer:
        return "image"
    if not media_type and not at and not is_referrer:
        return "image"  # unknown media type from a tag listing: treat as an image
    return "other"


@dataclass(frozen=True, slots=True)
class Filter:
    type: FilterType
    value: str | tuple[str, ...]
    decoration: Literal["matches", "excludes"] = "matches"
    syntax: Literal["glob", "regex", "semver"] = "glob"

    def __post_init__(self) -> None:
        if self.type not in ("name", "tag", "label", "resource", "artifact_type"):
            raise FilterError(
                f"unknown filter type {self.type!r} (name, tag, label, resource, artifact_type)"
            )
        if self.decoration not in ("matches", "excludes"):
            raise FilterError(f"decoration must be matches or excludes, not {self.decoration!r}")
        if self.syntax not in ("glob", "regex", "semver"):
            raise FilterError(f"syntax must be glob, regex or semver, not {self.syntax!r}")
        if self.syntax == "semver" and self.type != "tag":
            raise FilterError("semver ranges apply to tag filters only")
        for v in self.values:
            self._check(v)

    @property
    def values(self) -> tuple[str, ...]:
        if isinstance(self.value, tuple):
            return self.value
        if self.type in ("label", "artifact_type"):
            return tuple(v.strip() for v in self.value.split(",") if v.strip())
        return (self.value,)

    def _check(self, v: str) -> None:
        try:
            if self.syntax == "regex":
                re.compile(v)
            elif self.syntax == "semver":
                parse_range(v)
            elif self.type in ("name", "tag"):
                glob_match(v, "")
        except (re.error, SemverError, GlobError) as e:
            raise FilterError(f"{self.type} filter {v!r}: {e}") from None
        if self.type == "resource" and v not in ("image", "artifact", ""):
            raise FilterError(f"resource filter must be image or artifact, not {v!r}")
        if self.type == "artifact_type" and v not in ARTIFACT_TYPES:
            raise FilterError(f"artifact_type must be one of {', '.join(ARTIFACT_TYPES)}")

    def match_text(self, text: str) -> bool:
        """The raw match of one value (before decoration) for name and tag filters."""
        pattern = self.values[0] if self.values else ""
        if self.syntax == "regex":
            return re.fullmatch(pattern, text) is not None
        if self.syntax == "semver":
            return range_matches(pattern, text)
        return glob_match(pattern, text)

    def keeps(self, hit: bool) -> bool:
        return hit if self.decoration == "matches" else not hit

    @classmethod
    def from_harbor(cls, raw: dict[str, Any]) -> Filter:
        """Harbor's ``{type, value, decoration}`` plus Seawall's optional ``syntax``."""
        if not isinstance(raw, dict) or "type" not in raw:
            raise FilterError("a filter needs a type and a value")
        value = raw.get("value", "")
        if isinstance(value, list):
            value = tuple(str(v) for v in value)
        elif value is None:
            value = ""
        elif not isinstance(value, str):
            raise FilterError(f"filter value must be a string or a list, not {value!r}")
        return cls(
            raw["type"], value, raw.get("decoration") or "matches", raw.get("syntax") or "glob"
        )

    def to_harbor(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "decoration": self.decoration,
            "value": list(self.value) if isinstance(self.value, tuple) else self.value,
        }
        if self.syntax != "glob":
            out["syntax"] = self.syntax
        return out


def repository_matches(filters: Sequence[Filter], repository: str) -> bool:
    """Only the name filters: decides which repositories are listed at all."""
    return all(f.keeps(f.match_text(repository)) for f in filters if f.type == "name")


def _narrow(f: Filter, cand: Candidate) -> Candidate | None:
    if f.type == "name":
        return cand if f.keeps(f.match_text(cand.repository)) else None
    if f.type == "tag":
        tags = cand.tags or ("",)
        kept = tuple(t for t in tags if f.keeps(f.match_text(t)))
        if not kept:
            return None
        return replace(cand, tags=tuple(t for t in kept if t))
    if f.type == "label":
        return cand if f.keeps(set(f.values) <= cand.labels) else None
    kind = classify(cand.media_type, cand.artifact_type, cand.is_referrer, cand.tags)
    if f.type == "resource":
        wanted = f.values[0] if f.values else ""
        hit = wanted in ("", "artifact") or kind in ("image", "index")
        return cand if f.keeps(hit) else None
    return cand if f.keeps(kind in f.values) else None  # artifact_type


def apply_filters(filters: Sequence[Filter], candidates: Iterable[Candidate]) -> list[Candidate]:
    """The candidates every filter keeps, with tag filters applied to their tags."""
    out = []
    for cand in candidates:
        current: Candidate | None = cand
        for f in filters:
            if current is None:
                break
            current = _narrow(f, current)
        if current is not None:
            out.append(current)
    return out
