"""engine.filters: Harbor's filter semantics (src/pkg/reg/filter/*.go) and our extensions."""

from __future__ import annotations

from typing import Any

import pytest

from engine.filters import (
    ARTIFACT_TYPES,
    Candidate,
    Filter,
    FilterError,
    apply_filters,
    classify,
    name_prefix,
    repository_matches,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
HEX = "ab" * 32


def cand(*tags: str, repo: str = "library/nginx", **extra: Any) -> Candidate:
    return Candidate(repository=repo, digest=f"sha256:{HEX}", tags=tags, **extra)


CLASSIFY: list[tuple[str, str | None, bool, tuple[str, ...], str]] = [
    (OCI_MANIFEST, None, False, (), "image"),
    (DOCKER_MANIFEST, None, False, (), "image"),
    ("application/vnd.docker.distribution.manifest.v1+prettyjws", None, False, (), "image"),
    (OCI_MANIFEST, "application/vnd.oci.image.config.v1+json", False, (), "image"),
    ("", None, False, ("latest",), "image"),  # media type unknown: a bare tag listing
    (OCI_INDEX, None, False, (), "index"),
    (DOCKER_LIST, None, False, (), "index"),
    (OCI_MANIFEST, "application/vnd.dev.cosign.artifact.sig.v1+json", True, (), "signature"),
    (OCI_MANIFEST, "application/vnd.cncf.notary.signature", True, (), "signature"),
    (OCI_MANIFEST, "application/vnd.dev.sigstore.bundle.v0.3+json", True, (), "signature"),
    (OCI_MANIFEST, None, False, (f"sha256-{HEX}.sig",), "signature"),
    (OCI_MANIFEST, None, False, (f"sha256-{HEX}.att",), "attestation"),
    (OCI_MANIFEST, None, False, (f"sha256-{HEX}.sbom",), "sbom"),
    (OCI_MANIFEST, None, False, ("release.sig",), "image"),  # not cosign's convention
    (OCI_MANIFEST, "application/spdx+json", True, (), "sbom"),
    (OCI_MANIFEST, "text/spdx", True, (), "sbom"),
    (OCI_MANIFEST, "application/vnd.cyclonedx+json", True, (), "sbom"),
    (OCI_MANIFEST, "application/vnd.cyclonedx+xml", True, (), "sbom"),
    (OCI_MANIFEST, "Application/SPDX+JSON; charset=utf-8", True, (), "sbom"),
    (OCI_MANIFEST, "application/vnd.in-toto+json", True, (), "attestation"),
    (OCI_MANIFEST, "application/vnd.dsse.envelope.v1+json", True, (), "attestation"),
    (OCI_MANIFEST, "application/vnd.cncf.helm.config.v1+json", False, (), "other"),
    (OCI_MANIFEST, None, True, (), "other"),  # a referrer of no known kind
    (OCI_INDEX, None, True, (), "other"),
    ("application/vnd.example.thing", None, False, (), "other"),
]


@pytest.mark.parametrize(("media_type", "artifact_type", "referrer", "tags", "kind"), CLASSIFY)
def test_classify(
    media_type: str, artifact_type: str | None, referrer: bool, tags: tuple[str, ...], kind: str
) -> None:
    assert kind in ARTIFACT_TYPES
    assert classify(media_type, artifact_type, referrer, tags=tags) == kind
    candidate = cand(
        *tags, media_type=media_type, artifact_type=artifact_type, is_referrer=referrer
    )
    assert candidate.kind == kind


BAD_FILTERS: list[tuple[dict[str, Any], str]] = [
    ({"type": "repo", "value": "x"}, "filter type must be one of name, tag, label, resource"),
    ({"type": "tag", "value": "x", "decoration": "include"}, "decoration must be one of matches"),
    ({"type": "tag", "value": "x", "syntax": "pcre"}, "syntax must be one of glob, regex, semver"),
    ({"type": "label", "value": "a", "syntax": "regex"}, "syntax regex applies to name and tag"),
    ({"type": "name", "value": "x", "syntax": "semver"}, "semver ranges apply to tag filters"),
    ({"type": "tag", "value": "v[0-9"}, "bad glob pattern 'v[0-9'"),
    ({"type": "name", "value": "{a,b"}, "'{' at '{a,b' is never closed"),
    ({"type": "name", "value": "(lib", "syntax": "regex"}, "is not a regular expression"),
    ({"type": "tag", "value": "^^1", "syntax": "semver"}, "is not a semver range"),
    ({"type": "resource", "value": "chart"}, "must be one of image, artifact, not 'chart'"),
    ({"type": "artifact_type", "value": ["image", "helm"]}, "must be one of image, index"),
    ({"type": "name", "value": ["a", "b"]}, "name filter value must be a string"),
    ({"type": "label", "value": [1]}, "must be a list of strings or a comma-separated string"),
    ({"type": "label", "value": 5}, "must be a list of strings or a comma-separated string"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_FILTERS)
def test_bad_filters_raise(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(FilterError) as caught:
        Filter.from_harbor(spec)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("name=x", "must be an object"),
        ({"value": "x"}, "has no type"),
        ({"type": "tag", "value": "x", "sytax": "regex"}, "unknown field(s) sytax"),
    ],
)
def test_from_harbor_refuses_malformed_json(raw: Any, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        Filter.from_harbor(raw)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "name", "value": "library/**"}, Filter("name", "library/**")),
        ({"type": "tag", "value": "v*", "decoration": "excludes"}, Filter("tag", "v*", "excludes")),
        ({"type": "tag", "value": "", "decoration": ""}, Filter("tag", "")),
        ({"type": "name", "value": None, "decoration": None}, Filter("name", "")),
        ({"type": "label", "value": ["a", "b"]}, Filter("label", ("a", "b"))),
        ({"type": "label", "value": "a, b,,"}, Filter("label", ("a", "b"))),
        ({"type": "resource", "value": "image"}, Filter("resource", "image")),
        (
            {"type": "tag", "value": "^1.2", "decoration": "matches", "syntax": "semver"},
            Filter("tag", "^1.2", syntax="semver"),
        ),
        (
            {"type": "artifact_type", "value": "signature,sbom", "syntax": None},
            Filter("artifact_type", ("signature", "sbom")),
        ),
    ],
)
def test_from_harbor(raw: dict[str, Any], expected: Filter) -> None:
    assert Filter.from_harbor(raw) == expected


@pytest.mark.parametrize(
    ("f", "harbor"),
    [
        (Filter("name", "a/**"), {"type": "name", "value": "a/**", "decoration": "matches"}),
        (
            Filter("tag", "v.*", "excludes", "regex"),
            {"type": "tag", "value": "v.*", "decoration": "excludes", "syntax": "regex"},
        ),
        (Filter("label", "x,y"), {"type": "label", "value": ["x", "y"], "decoration": "matches"}),
    ],
)
def test_to_harbor_round_trips(f: Filter, harbor: dict[str, Any]) -> None:
    assert f.to_harbor() == harbor
    assert Filter.from_harbor(f.to_harbor()) == f


def test_list_values_are_stored_as_tuples_so_filters_hash() -> None:
    written = Filter("label", ["prod", " team-a "])
    assert written.value == ("prod", "team-a")
    assert written == Filter("label", "prod,team-a")
    assert len({written, Filter("label", "prod,team-a")}) == 1


@pytest.mark.parametrize(
    ("filters", "repository", "expected"),
    [
        ([], "anything/at/all", True),
        ([Filter("name", "library/**")], "library/nginx", True),
        ([Filter("name", "library/**")], "library", False),
        ([Filter("name", "library/**")], "nginx", False),
        ([Filter("name", "library/**", "excludes")], "nginx", True),
        ([Filter("name", "library/**", "excludes")], "library/a/b", False),
        ([Filter("name", "lib.*", syntax="regex")], "library/nginx", True),
        ([Filter("name", "lib", syntax="regex")], "library", False),  # the whole name
        ([Filter("name", "", "excludes")], "library/nginx", True),  # empty: does nothing
        ([Filter("name", "*/*"), Filter("name", "library/*", "excludes")], "tools/x", True),
        ([Filter("name", "*/*"), Filter("name", "library/*", "excludes")], "library/x", False),
        ([Filter("tag", "v*"), Filter("label", "prod")], "x", True),  # only name filters count
    ],
)
def test_repository_matches(filters: list[Filter], repository: str, expected: bool) -> None:
    assert repository_matches(filters, repository) is expected
    by_name = [f for f in filters if f.type == "name"]  # apply_filters agrees
    assert bool(apply_filters(by_name, [cand("v1", repo=repository)])) is expected


TAG_CASES: list[tuple[list[Filter], tuple[str, ...], tuple[str, ...] | None]] = [
    # Harbor: only the matched tags replicate
    ([Filter("tag", "v*")], ("v1", "latest"), ("v1",)),
    ([Filter("tag", "latest", "excludes")], ("v1", "latest"), ("v1",)),
    ([Filter("tag", "latest")], ("v1",), None),  # no tag left: dropped
    # untagged artifacts are tested as the tag ""
    ([Filter("tag", "v*")], (), None),
    ([Filter("tag", "*")], (), ()),
    ([Filter("tag", "**")], (), ()),
    ([Filter("tag", "v*", "excludes")], (), ()),
    ([Filter("tag", "*", "excludes")], (), None),
    ([Filter("tag", ".*", syntax="regex")], (), ()),
    ([Filter("tag", ".+", syntax="regex")], (), None),
    ([Filter("tag", "*", syntax="semver")], (), None),  # "" is not a version
    # an empty value does nothing, whatever the decoration
    ([Filter("tag", "")], (), ()),
    ([Filter("tag", "", "excludes")], ("v1", "latest"), ("v1", "latest")),
    # regex and semver
    ([Filter("tag", r"v\d+", syntax="regex")], ("v1", "v1a", "latest"), ("v1",)),
    (
        [Filter("tag", "^1.2", syntax="semver")],
        ("1.2.0", "1.3.5", "2.0.0", "latest", "v1.4.0", "1.5.0-rc.1"),
        ("1.2.0", "1.3.5", "v1.4.0"),
    ),
    (
        [Filter("tag", "1.x", "excludes", "semver")],
        ("1.0.0", "2.0.0", "latest"),
        ("2.0.0", "latest"),
    ),
    ([Filter("tag", ">=1.2, !=1.3.0", syntax="semver")], ("1.3.0", "1.3.1"), ("1.3.1",)),
    # ANDed, in order
    ([Filter("tag", "v*"), Filter("tag", "*-rc*", "excludes")], ("v1", "v2-rc1", "x"), ("v1",)),
    ([Filter("tag", "v1*"), Filter("tag", "v2*")], ("v1", "v2"), None),
    ([Filter("tag", "*"), Filter("tag", "v*", "excludes")], (), ()),
]


@pytest.mark.parametrize(
    ("filters", "prefix"),
    [
        ([], ""),
        ([Filter("name", "library/**")], "library"),
        ([Filter("name", "team/app-*")], "team/app-"),
        ([Filter("name", "team/{a,b}")], "team"),
        ([Filter("name", "exact/name")], "exact/name"),
        ([Filter("name", "**/x")], ""),
        ([Filter("name", "team/**"), Filter("name", "team/web/*")], "team/web"),  # both hold
        ([Filter("name", "team/**", "excludes")], ""),
        ([Filter("name", "team/.*", syntax="regex")], ""),
        ([Filter("tag", "v1"), Filter("name", "")], ""),
    ],
)
def test_name_prefix_is_a_start_every_kept_name_has(filters: list[Filter], prefix: str) -> None:
    assert name_prefix(filters) == prefix
    names = ["library", "library/nginx", "team", "team/app-1", "team/a", "team/web/x", "a/x"]
    names += ["exact/name", "exact/names", "x", "team/b"]
    for name in names:
        if repository_matches(filters, name):
            assert name.startswith(prefix), (name, prefix)


@pytest.mark.parametrize(("filters", "tags", "expected"), TAG_CASES)
def test_tag_filters_narrow_tags(
    filters: list[Filter], tags: tuple[str, ...], expected: tuple[str, ...] | None
) -> None:
    original = cand(*tags)
    kept = apply_filters(filters, [original])
    if expected is None:
        assert kept == []
    else:
        assert [c.tags for c in kept] == [expected]
        assert kept[0].digest == original.digest
    assert original.tags == tags  # never changed in place


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        (Filter("label", ["prod"]), True),
        (Filter("label", "prod, team-a"), True),
        (Filter("label", ["prod", "qa"]), False),  # all must be there
        (Filter("label", ["prod", "qa"], "excludes"), True),
        (Filter("label", ["prod"], "excludes"), False),
        (Filter("label", []), True),
        (Filter("label", "", "excludes"), True),
    ],
)
def test_label_filters_need_every_label(f: Filter, expected: bool) -> None:
    labelled = cand("v1", labels=frozenset({"prod", "team-a"}))
    assert (apply_filters([f], [labelled]) == [labelled]) is expected


KINDS = {
    "image": cand("v1", repo="r/image", media_type=OCI_MANIFEST),
    "index": cand("v1", repo="r/index", media_type=OCI_INDEX),
    "signature": cand(f"sha256-{HEX}.sig", repo="r/sig", media_type=OCI_MANIFEST),
    "sbom": cand(
        repo="r/sbom", media_type=OCI_MANIFEST, artifact_type="text/spdx", is_referrer=True
    ),
    "other": cand(
        "1.0.0",
        repo="r/chart",
        media_type=OCI_MANIFEST,
        artifact_type="application/vnd.cncf.helm.config.v1+json",
    ),
}


@pytest.mark.parametrize(
    ("f", "kept"),
    [
        (Filter("resource", "image"), ["image", "index"]),
        (Filter("resource", "artifact"), list(KINDS)),
        (Filter("resource", "image", "excludes"), ["signature", "sbom", "other"]),
        (Filter("resource", ""), list(KINDS)),
        (Filter("artifact_type", ["signature", "sbom"]), ["signature", "sbom"]),
        (Filter("artifact_type", "index"), ["index"]),
        (Filter("artifact_type", "signature", "excludes"), ["image", "index", "sbom", "other"]),
    ],
)
def test_resource_and_artifact_type_filters(f: Filter, kept: list[str]) -> None:
    assert [c.repository for c in apply_filters([f], KINDS.values())] == [
        KINDS[k].repository for k in kept
    ]


def test_filters_of_every_type_are_anded() -> None:
    filters = [
        Filter("name", "library/*"),
        Filter("tag", "v*"),
        Filter("label", "prod"),
        Filter("resource", "image"),
        Filter("artifact_type", "index", "excludes"),
    ]
    good = cand("v1", "latest", labels=frozenset({"prod"}), media_type=OCI_MANIFEST)
    others = [
        cand("v1", repo="tools/x", labels=frozenset({"prod"})),  # name
        cand("latest", labels=frozenset({"prod"})),  # tag
        cand("v2", labels=frozenset({"qa"})),  # label
        cand("v3", labels=frozenset({"prod"}), artifact_type="application/vnd.x"),  # resource
        cand("v4", labels=frozenset({"prod"}), media_type=OCI_INDEX),  # artifact_type
    ]
    assert apply_filters(filters, [others[0], good, *others[1:]]) == [
        cand("v1", labels=frozenset({"prod"}), media_type=OCI_MANIFEST)
    ]


def test_no_filters_keep_everything_as_is() -> None:
    candidates = [cand("a"), cand(), cand("b", "c", repo="x/y")]
    kept = apply_filters([], candidates)
    assert kept == candidates
    assert all(k is c for k, c in zip(kept, candidates, strict=True))


def test_kind_is_read_from_the_artifact_not_from_narrowed_tags() -> None:
    signature = cand(f"sha256-{HEX}.sig", "keep")
    filters = [Filter("tag", "keep"), Filter("artifact_type", "signature")]
    assert [c.tags for c in apply_filters(filters, [signature])] == [("keep",)]
