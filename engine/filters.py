"""Replication policy filters: which repositories, artifacts and tags a policy copies.

Harbor's filters (``src/pkg/reg/filter/*.go``), kept result for result, plus what its users have
asked for: ``excludes`` on every type, ``regex`` and ``semver`` syntaxes, an applied
``resource`` filter and an ``artifact_type`` filter.

- ``name``: the repository path; ``tag``: each tag; ``label``: every listed label must be on the
  artifact; ``resource``: ``image`` keeps container images and indexes, ``artifact`` everything
  (Harbor validates this filter but never applies it); ``artifact_type``: any of ``image``,
  ``index``, ``signature``, ``sbom``, ``attestation``, ``other`` (see :func:`classify`).
- ``syntax`` (name and tag only): ``glob`` (default; Harbor's doublestar, see
  :mod:`engine.glob`), ``regex`` (RE2 syntax matching the whole name, in linear time) or
  ``semver`` (tags only; npm ranges, see :mod:`engine.versions`). Every pattern is bounded,
  checked and compiled once by :mod:`engine.patterns`.
- ``decoration``: ``matches`` keeps what matches, ``excludes`` keeps what does not.

Semantics (Harbor's): filters are ANDed, in order. A filter with an empty value does nothing,
whatever its decoration. A tag filter keeps only the tags it passes (``v1`` and ``latest`` under
``v*`` leave ``v1``); an artifact left with no tag is dropped. An untagged artifact is tested as
the tag ``""``: kept by ``*`` and by ``excludes v*``, dropped by ``v*`` and by any regex or
semver range that does not accept ``""``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast, get_args

from engine.patterns import MAX_PATTERN_CHARS, Matcher, PatternError, compile_pattern

__all__ = [
    "ARTIFACT_TYPES",
    "Candidate",
    "Filter",
    "FilterError",
    "apply_filters",
    "classify",
    "name_prefix",
    "repository_matches",
]

FilterType = Literal["name", "tag", "label", "resource", "artifact_type"]
Decoration = Literal["matches", "excludes"]
Syntax = Literal["glob", "regex", "semver"]
ARTIFACT_TYPES = ("image", "index", "signature", "sbom", "attestation", "other")
RESOURCES = ("image", "artifact")

_IMAGE = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)
_INDEX = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
_IMAGE_CONFIG = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)
_SIGNATURE = frozenset(
    {
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        "application/vnd.dev.cosign.simplesigning.v1+json",
        "application/vnd.cncf.notary.signature",
        "application/vnd.cncf.notary.v2.signature",
    }
)
_SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle"  # .v0.3+json, +json;version=0.2
_SBOM_PREFIXES = (
    "application/spdx",
    "text/spdx",
    "application/vnd.cyclonedx",
    "application/vnd.syft",
)
_ATTESTATION = frozenset({"application/vnd.in-toto+json", "application/vnd.dsse.envelope.v1+json"})
# cosign's tag convention: sha256-<subject digest hex>.sig / .att / .sbom
_COSIGN_TAG = re.compile(r"sha(?:256|384|512)-[0-9a-f]{32,128}\.(sig|att|sbom)")
_COSIGN_KIND = {"sig": "signature", "att": "attestation", "sbom": "sbom"}


class FilterError(ValueError):
    """A filter that cannot be used; the message names the filter and what is wrong."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """An artifact at the source, as filters see it: one digest and the tags on it there."""

    repository: str
    digest: str
    tags: tuple[str, ...]
    labels: frozenset[str] = frozenset()
    media_type: str = ""
    artifact_type: str | None = None
    is_referrer: bool = False

    @property
    def kind(self) -> str:
        """:func:`classify` of this artifact."""
        return classify(self.media_type, self.artifact_type, self.is_referrer, tags=self.tags)


def classify(
    media_type: str,
    artifact_type: str | None = None,
    is_referrer: bool = False,
    *,
    tags: Iterable[str] = (),
) -> str:
    """``image``, ``index``, ``signature``, ``sbom``, ``attestation`` or ``other``.

    ``artifact_type`` is the manifest's ``artifactType`` (or, failing that, its config's media
    type, as the referrers API reports it). Signatures: cosign, Notary v2 / notation and
    Sigstore bundles (a bundle may hold an attestation too: its type alone does not say);
    SBOMs: SPDX, CycloneDX, Syft; attestations: in-toto statements and DSSE envelopes.
    cosign's ``sha256-<hex>.sig|.att|.sbom`` tags say the same. Then an OCI or Docker index
    is an ``index``, and an image manifest with no artifact type or an image config type is an
    ``image``, unless it is a referrer (then ``other``, like Helm charts and other artifacts).
    An artifact whose media type is unknown (a bare tag listing) counts as an ``image``, the
    common case, so ``resource=image`` does not drop it unseen.
    """
    at = _bare(artifact_type or "")
    for tag in tags:
        m = _COSIGN_TAG.fullmatch(tag)
        if m:
            return _COSIGN_KIND[m[1]]
    if at in _SIGNATURE or at.startswith(_SIGSTORE_BUNDLE):
        return "signature"
    if at.startswith(_SBOM_PREFIXES):
        return "sbom"
    if at in _ATTESTATION:
        return "attestation"
    mt = _bare(media_type)
    if is_referrer or (at and at not in _IMAGE_CONFIG):
        return "other"
    if mt in _INDEX:
        return "index"
    if mt in _IMAGE or not mt:
        return "image"
    return "other"


def _bare(media_type: str) -> str:
    """Lower case, parameters dropped."""
    return media_type.split(";", 1)[0].strip().lower()


@dataclass(frozen=True, slots=True)
class Filter:
    """One policy filter; construction validates it, so a Filter in hand can always run.

    ``value``: one pattern for ``name`` and ``tag``; ``image`` or ``artifact`` for
    ``resource``; a list (or a comma-separated string) for ``label`` and ``artifact_type``,
    stored as a tuple so filters stay hashable and equal however they were written. An empty
    value (``""``, ``[]``) makes the filter do nothing.

    :raises FilterError: unknown type, decoration or syntax; a syntax the type does not take; a
        malformed glob, regex or semver range; an unknown resource or artifact type.
    """

    type: FilterType
    value: str | Sequence[str]
    decoration: Decoration = "matches"
    syntax: Syntax = "glob"
    _match: Matcher | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _one_of("filter type", self.type, get_args(FilterType))
        _one_of(f"{self.type} filter decoration", self.decoration, get_args(Decoration))
        _one_of(f"{self.type} filter syntax", self.syntax, get_args(Syntax))
        if self.syntax != "glob" and self.type not in ("name", "tag"):
            raise FilterError(f"{self.type} filter: syntax {self.syntax} applies to name and tag")
        if self.syntax == "semver" and self.type != "tag":
            raise FilterError("name filter: semver ranges apply to tag filters only")
        object.__setattr__(self, "value", self._normalised(self.value))
        self._check()

    def _normalised(self, value: object) -> str | tuple[str, ...]:
        listed = self.type in ("label", "artifact_type")
        if isinstance(value, str):
            out: str | tuple[str, ...] = (
                tuple(v.strip() for v in value.split(",") if v.strip()) if listed else value
            )
        elif listed and isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
            out = tuple(v.strip() for v in value if v.strip())
        else:
            kind = "a list of strings or a comma-separated string" if listed else "a string"
            raise FilterError(f"{self.type} filter value must be {kind}, not {value!r:.100}")
        size = len(out) if isinstance(out, str) else sum(len(v) + 1 for v in out)
        if size > MAX_PATTERN_CHARS:
            raise FilterError(
                f"{self.type} filter value is longer than {MAX_PATTERN_CHARS} characters: "
                "split it into several filters"
            )
        return out

    def _check(self) -> None:
        if not self.value:
            return
        where = f"{self.type} filter {self.value!r}"
        if self.type == "resource":
            _one_of("resource filter value", self.value, RESOURCES)
        elif self.type == "artifact_type":
            for v in self.value:
                _one_of("artifact_type filter value", v, ARTIFACT_TYPES)
        elif self.type in ("name", "tag"):
            try:
                matcher = compile_pattern(self.syntax, cast(str, self.value))
            except PatternError as e:
                sep = " " if str(e).startswith("is not") else ": "
                raise FilterError(f"{where:.1100}{sep}{e}") from None
            object.__setattr__(self, "_match", matcher)

    def passes(self, text: str) -> bool:
        """For a name or tag filter: whether ``text`` (a repository path or a tag, ``""`` for
        an untagged artifact) is kept, decoration applied. An empty pattern keeps everything."""
        if not self.value or self._match is None:
            return True
        return self._match(text) != (self.decoration == "excludes")

    def keeps(self, candidate: Candidate) -> bool:
        """For a label, resource or artifact_type filter: whether the artifact is kept."""
        if not self.value:
            return True
        if self.type == "label":
            hit = set(self.value) <= candidate.labels
        elif self.type == "resource":
            hit = self.value == "artifact" or candidate.kind in ("image", "index")
        else:
            hit = candidate.kind in self.value
        return hit != (self.decoration == "excludes")

    @classmethod
    def from_harbor(cls, raw: Any) -> Filter:
        """From Harbor's JSON ``{type, value, decoration}`` (decoration optional, meaning
        ``matches``) plus Seawall's optional ``syntax``. :raises FilterError:"""
        if not isinstance(raw, dict):
            raise FilterError(f"a filter must be an object with type and value, not {raw!r}")
        unknown = sorted(set(raw) - {"type", "value", "decoration", "syntax"})
        if unknown:
            raise FilterError(f"filter {raw!r}: unknown field(s) {', '.join(unknown)}")
        if "type" not in raw:
            raise FilterError(f"filter {raw!r} has no type")
        value = raw.get("value")
        if value is None:
            value = ""
        elif isinstance(value, list):
            value = tuple(value)
        return cls(
            raw["type"], value, raw.get("decoration") or "matches", raw.get("syntax") or "glob"
        )

    def to_harbor(self) -> dict[str, Any]:
        """Harbor's JSON shape (lists for label and artifact_type), ``syntax`` only when not
        ``glob``: a glob filter reads the same in Harbor."""
        out: dict[str, Any] = {
            "type": self.type,
            "value": list(self.value) if isinstance(self.value, tuple) else self.value,
            "decoration": self.decoration,
        }
        if self.syntax != "glob":
            out["syntax"] = self.syntax
        return out


def _one_of(what: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise FilterError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


def repository_matches(filters: Iterable[Filter], repository: str) -> bool:
    """Whether every name filter keeps ``repository``: decides which repositories are listed
    at all, before any tag is fetched."""
    return all(f.passes(repository) for f in filters if f.type == "name")


_GLOB_SPECIAL = frozenset("*?[]{}\\")


def name_prefix(filters: Iterable[Filter]) -> str:
    """A literal start every repository the name filters keep has ("" if none is certain),
    so that a registry can be asked for those names only: the longest text before the first
    special character of a matching glob, without a trailing ``/`` (``team/**`` also keeps
    ``team`` itself)."""
    best = ""
    for f in filters:
        if f.type != "name" or f.decoration != "matches" or f.syntax != "glob" or not f.value:
            continue
        pattern = cast(str, f.value)
        end = next((i for i, ch in enumerate(pattern) if ch in _GLOB_SPECIAL), len(pattern))
        literal = pattern[:end].rstrip("/")
        if len(literal) > len(best):
            best = literal
    return best


def apply_filters(filters: Sequence[Filter], candidates: Iterable[Candidate]) -> list[Candidate]:
    """The candidates every filter keeps, in order, each with only the tags the tag filters
    passed (an untagged one keeps ``tags=()``)."""
    out: list[Candidate] = []
    for candidate in candidates:
        kept = _narrow(filters, candidate)
        if kept is not None:
            out.append(kept)
    return out


def _narrow(filters: Sequence[Filter], candidate: Candidate) -> Candidate | None:
    tags = candidate.tags
    for f in filters:
        if f.type == "name":
            if not f.passes(candidate.repository):
                return None
        elif f.type == "tag":
            if tags:
                tags = tuple(t for t in tags if f.passes(t))
                if not tags:
                    return None
            elif not f.passes(""):
                return None
        elif not f.keeps(candidate):  # classified on the artifact's own tags, not narrowed ones
            return None
    return candidate if tags == candidate.tags else replace(candidate, tags=tags)
