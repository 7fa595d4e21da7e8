"""Incoming webhook payloads of remote registries, read as registry events.

A remote registry's push can trigger a pull-based policy at once instead of at the next
schedule. Four shapes are understood, told apart by their content:

- **Harbor, default format**: ``{"type": "PUSH_ARTIFACT", "event_data": {"resources":
  [{"digest", "tag", "resource_url"}], "repository": {"repo_full_name": "library/nginx"}}}``;
  ``DELETE_ARTIFACT`` too.
- **Harbor, CloudEvents**: ``{"specversion": "1.0", "type": "harbor.artifact.pushed", "data":
  {"resources": […], "repository": {…}}}``; ``harbor.artifact.deleted`` too.
- **CNCF distribution notifications**: ``{"events": [{"action": "push", "target":
  {"repository", "digest", "tag", "mediaType", "url"}}]}`` (also ``delete``; blob pushes,
  pulls and mounts are ignored).
- **Generic**: ``{"repository": "team/app", "action": "push", "digest": "…", "tag": "…"}``
  (``action`` defaults to ``push``; ``digest`` and ``tag`` are optional), or a list of them
  under ``"events"``.

Anything else that is well formed but not a push or delete (a pull, a scan report, a quota
warning) yields no event; a body none of these shapes matches is a :class:`PayloadError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PayloadError", "RemoteEvent", "parse_payload"]

HARBOR_TYPES = {
    "PUSH_ARTIFACT": "push",
    "DELETE_ARTIFACT": "delete",
    "harbor.artifact.pushed": "push",
    "harbor.artifact.deleted": "delete",
}
DISTRIBUTION_ACTIONS = {"push": "push", "delete": "delete"}


class PayloadError(ValueError):
    """The body is not a webhook payload Seawall understands (the message says why)."""


@dataclass(frozen=True, slots=True)
class RemoteEvent:
    action: str  # push | delete
    repository: str
    digest: str | None = None
    tag: str | None = None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _harbor(kind: str, data: Any) -> list[RemoteEvent]:
    action = HARBOR_TYPES.get(kind)
    if action is None:
        return []  # PULL_ARTIFACT, SCANNING_COMPLETED, QUOTA_WARNING, …: nothing to replicate
    if not isinstance(data, dict):
        raise PayloadError("Harbor payload without event data")
    repo = data.get("repository") or {}
    name = _text(repo.get("repo_full_name")) if isinstance(repo, dict) else None
    if name is None and isinstance(repo, dict):
        ns, short = _text(repo.get("namespace")), _text(repo.get("name"))
        name = f"{ns}/{short}" if ns and short else short
    if name is None:
        raise PayloadError("Harbor payload without repository.repo_full_name")
    resources = data.get("resources") or [{}]
    if not isinstance(resources, list):
        raise PayloadError("Harbor payload: resources is not a list")
    return [
        RemoteEvent(action, name, _text(r.get("digest")), _harbor_tag(r))
        for r in resources
        if isinstance(r, dict)
    ]


def _harbor_tag(resource: dict[str, Any]) -> str | None:
    """Harbor puts an artifact's digest in ``tag`` when it was pushed or deleted without a tag
    (a referrer, a push by digest): that is no tag."""
    tag = _text(resource.get("tag"))
    return None if tag is None or tag == resource.get("digest") else tag


def _is_blob(target: dict[str, Any]) -> bool:
    """distribution also notifies of blob pushes; only manifests (and tags) matter here."""
    url = _text(target.get("url")) or ""
    if "/blobs/" in url:
        return True
    if "/manifests/" in url or _text(target.get("tag")):
        return False
    media_type = _text(target.get("mediaType")) or ""
    return not any(word in media_type for word in ("manifest", "index"))


def _distribution(item: dict[str, Any]) -> RemoteEvent | None:
    target = item.get("target")
    if not isinstance(target, dict) or not _text(target.get("repository")):
        raise PayloadError("distribution notification event without target.repository")
    action = DISTRIBUTION_ACTIONS.get(str(item.get("action", "")))
    if action is None or (action == "push" and _is_blob(target)):
        return None  # pull, mount, a blob pushed
    return RemoteEvent(
        action, target["repository"], _text(target.get("digest")), _text(target.get("tag"))
    )


def _generic(item: dict[str, Any]) -> RemoteEvent:
    action = item.get("action", "push")
    if action not in ("push", "delete"):
        raise PayloadError(f"generic event: action must be push or delete, not {action!r}")
    digest, tag = _text(item.get("digest")), _text(item.get("tag"))
    return RemoteEvent(action, item["repository"], digest, tag)


def parse_payload(body: Any) -> list[RemoteEvent]:
    """The push and delete events in a webhook body (already decoded from JSON)."""
    if not isinstance(body, dict):
        raise PayloadError("the payload must be a JSON object")
    if "specversion" in body:
        return _harbor(str(body.get("type", "")), body.get("data"))
    if "event_data" in body or (isinstance(body.get("type"), str) and "repository" not in body):
        return _harbor(str(body.get("type", "")), body.get("event_data"))
    if _text(body.get("repository")):
        return [_generic(body)]
    items = body.get("events")
    if not isinstance(items, list):
        raise PayloadError(
            "unrecognised payload: expected a Harbor webhook (default or CloudEvents), a "
            'distribution notification ({"events": [...]}) or {"repository": ..., "action": ...}'
        )
    out: list[RemoteEvent] = []
    for item in items:
        if not isinstance(item, dict):
            raise PayloadError("every entry of events must be an object")
        if "target" in item:
            if (event := _distribution(item)) is not None:
                out.append(event)
        elif _text(item.get("repository")):
            out.append(_generic(item))
        else:
            raise PayloadError("an event has neither target.repository nor repository")
    return out
