"""Destination repository names: Harbor's ``dest_namespace`` and
``dest_namespace_replace_count`` (``replaceNamespace`` in Harbor's
``src/controller/replication/flow/stage.go``), and the path-depth rules some registries impose.

For the source ``a/b/c/image`` and the namespace ``n``, the count says how many leading path
components of the source the namespace replaces::

    -1  n/image            (any negative count: keep only the last component)
     0  n/a/b/c/image
     1  n/b/c/image
     2  n/c/image
     3  n/image
     4  error: a/b/c/image has only 3 components before its last

With no namespace (``None`` or ``""``) the source path is kept, whatever the count (Harbor does
the same, and does not check the count then either).

``replace_count=None`` means ``-1``, as an omitted ``dest_namespace_replace_count`` does in
Harbor's API (its web UI sends 1 instead); we follow the API, so a policy created through either
API maps names alike.
"""

from __future__ import annotations

__all__ = [
    "DOCKER_HUB_DEPTH",
    "HARBOR_DEPTH",
    "NamingError",
    "map_repository",
    "validate_depth",
]

DOCKER_HUB_DEPTH = (2, 2)  # namespace/repository, exactly
HARBOR_DEPTH = (2, None)  # project/..., at least two


class NamingError(ValueError):
    """A source name that cannot be mapped, or a destination name the destination refuses."""


def map_repository(src: str, dest_namespace: str | None, replace_count: int | None) -> str:
    """The destination repository for the source repository ``src``.

    Slashes around the namespace are ignored (``/n/`` is ``n``); it may have several
    components (``n/m``).

    :raises NamingError: the count exceeds the source's components before its last, or the
        namespace has an empty, ``.`` or ``..`` component.
    """
    namespace = (dest_namespace or "").strip("/")
    if not namespace:
        return src
    if any(part in ("", ".", "..") for part in namespace.split("/")):
        raise NamingError(
            f"dest_namespace {dest_namespace!r} has an empty, '.' or '..' path component: "
            "write components joined by single '/'"
        )
    parts = src.split("/")
    count = -1 if replace_count is None else replace_count
    if count < 0:
        return f"{namespace}/{parts[-1]}"
    if count > len(parts) - 1:
        raise NamingError(
            f"cannot replace {count} leading path component(s) of {src!r} with {namespace!r}: "
            f"it has only {len(parts) - 1} before its last ({parts[-1]!r}); "
            f"set dest_namespace_replace_count to {len(parts) - 1} or less, or -1 to keep only "
            "the last"
        )
    return "/".join([namespace, *parts[count:]])


def validate_depth(name: str, min_components: int = 1, max_components: int | None = None) -> str:
    """``name`` itself, if its number of path components is within the destination's rule
    (Docker Hub: :data:`DOCKER_HUB_DEPTH`, exactly two; Harbor: :data:`HARBOR_DEPTH`, at least
    two; ``max_components=None``: no upper bound).

    Harbor checks this only when a namespace is set; check every mapped name, so a policy fails
    while planning rather than at push time.

    :raises NamingError: naming the repository, its depth and the rule.
    :raises ValueError: if the rule itself is impossible (``min_components`` < 1, or above
        ``max_components``).
    """
    if min_components < 1 or (max_components is not None and max_components < min_components):
        raise ValueError(f"no name can have {min_components} to {max_components} path components")
    depth = len(name.split("/"))
    if depth >= min_components and (max_components is None or depth <= max_components):
        return name
    if min_components == max_components:
        rule = f"exactly {min_components}"
    elif max_components is None:
        rule = f"at least {min_components}"
    else:
        rule = f"{min_components} to {max_components}"
    raise NamingError(
        f"the destination repository {name!r} has {depth} path component(s), but the "
        f"destination registry needs {rule}: change dest_namespace or "
        "dest_namespace_replace_count"
    )
