"""Incoming webhook payloads read as the provider sends them (no server needed)."""

from __future__ import annotations

from engine.webhook_payloads import RemoteEvent, parse_payload

DIGEST = "sha256:" + "ab" * 32


def harbor(kind: str, tag: str) -> dict[str, object]:
    return {
        "type": kind,
        "occur_at": 1733390000,
        "operator": "robot$ci",
        "event_data": {
            "resources": [{"digest": DIGEST, "tag": tag, "resource_url": f"h.example/p/app:{tag}"}],
            "repository": {"name": "app", "namespace": "p", "repo_full_name": "p/app"},
        },
    }


def test_a_harbor_push_names_its_tag() -> None:
    assert parse_payload(harbor("PUSH_ARTIFACT", "v1")) == [
        RemoteEvent("push", "p/app", DIGEST, "v1")
    ]


def test_harbor_puts_the_digest_in_tag_for_an_untagged_artifact_which_is_no_tag() -> None:
    """A referrer or a push by digest: Harbor's payload says ``"tag": "<digest>"``."""
    assert parse_payload(harbor("PUSH_ARTIFACT", DIGEST)) == [
        RemoteEvent("push", "p/app", DIGEST, None)
    ]
    assert parse_payload(harbor("DELETE_ARTIFACT", DIGEST)) == [
        RemoteEvent("delete", "p/app", DIGEST, None)
    ]
