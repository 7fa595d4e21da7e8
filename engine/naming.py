"""Destination repository names: Harbor's ``dest_namespace`` and
``dest_namespace_replace_count``.

For ``a/b/c/image`` and namespace ``n``: ``-1`` (or None, as Harbor's API treats an omitted
count) → ``n/image``; ``0`` → ``n/a/b/c/image``; ``1`` → ``n/b/c/image``; ``2`` →
``n/c/image``; ``3`` → ``n/image``; ``4`` → error. An empty namespace keeps the source path.
"""

from __future__ import annotations

__all__ = ["NamingError", "map_repository", "validate_depth"]


class NamingError(ValueError):
    """A source name cannot be mapped, or the result breaks the destination's path rules."""


def map_repository(src: str, dest_namespace: str | None, replace_count: int | None) -> str:
    namespace = (dest_namespace or "").strip("/")
    if not namespace:
        return src
    parts = src.split("/")
    count = -1 if replace_count is None else replace_count
    if count == -1:
        return f"{namespace}/{parts[-1]}"
    if count < -1:
        raise NamingError(f"dest_namespace_replace_count must be -1 or more, not {count}")
    if count > len(parts) - 1:
        raise NamingError(
            f"cannot replace {count} path components of {src!r}: it has only {len(parts) - 1} "
            "before the image name"
        )
    return "/".join([namespace, *parts[count:]])


def validate_depth(name: str, min_components: int = 1, max_components: int | None = None) -> str:
    """``name`` if its number of path components is allowed at the destination, else raise
    (Docker Hub needs exactly two, Harbor at least two)."""
    n = len(name.split("/"))
    if n < min_components or (max_components is not None and n > max_components):
        rule = (
            f"exactly {min_components}"
            if min_components == max_components
            else f"at least {min_components}"
            + (f" and at most {max_components}" if max_components else "")
        )
        raise NamingError(
            f"{name!r} has {n} path components; the destination needs {rule}: "
            "set dest_namespace / dest_namespace_replace_count to fit"
        )
    return name
