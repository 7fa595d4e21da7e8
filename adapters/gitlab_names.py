"""GitLab's container registry names: what a repository path may be, and which project owns it.

A GitLab container repository lives under a project::

    <group>[/<subgroup>...]/<project>[/<image>[/<image>[/<image>]]]

- the project's full path comes first (a top-level group or user namespace, up to 20 levels
  of subgroups, the project): at least two components;
- at most :data:`MAX_IMAGE_COMPONENTS` (3) image components follow it (GitLab refuses a
  deeper push);
- the registry keeps paths in lower case (``project.full_path.downcase``), so every
  component is lower case and meets the OCI grammar; group and project components must not
  end in ``.git`` or ``.atom`` (GitLab refuses those paths);
- the whole path is at most 255 characters.

Which prefix of a path is the project is GitLab's to say (:func:`project_candidates` lists
the prefixes to ask about, longest first); a group and a project never share a path, so the
first one found is the owner.
"""

from __future__ import annotations

import re

from adapters.base import InvalidRepositoryName
from registry.oci.reference import MAX_NAME_LENGTH, is_valid_name

__all__ = [
    "DEPLOY_TOKEN_PREFIX",
    "GITLAB_PATH_PATTERN",
    "MAX_GROUP_DEPTH",
    "MAX_IMAGE_COMPONENTS",
    "MAX_PATH_COMPONENTS",
    "check_gitlab_name",
    "check_under_project",
    "project_candidates",
]

MAX_IMAGE_COMPONENTS = 3  # image names below the project path
MAX_GROUP_DEPTH = 20  # GitLab nests groups at most 20 levels deep
MAX_PATH_COMPONENTS = MAX_GROUP_DEPTH + 1 + MAX_IMAGE_COMPONENTS
#: a group or project full path as the API takes it (any case; the registry lowercases it)
GITLAB_PATH_PATTERN = (
    r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}(?:/[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}){0,20}"
)
#: the username GitLab gives every deploy token (they log in to the registry, never the API)
DEPLOY_TOKEN_PREFIX = "gitlab+deploy-token-"
_RESERVED_SUFFIX = re.compile(r"\.(git|atom)$")


def check_gitlab_name(name: str) -> None:
    """Refuse a path GitLab's registry cannot hold, whatever project owns it.

    :raises InvalidRepositoryName: the OCI grammar, lower case, the depth (2 to
        :data:`MAX_PATH_COMPONENTS`), or a ``.git``/``.atom`` component; the message says
        which and what to change.
    """
    if not is_valid_name(name):
        raise InvalidRepositoryName(
            f"repository name {name[:300]!r} is not valid for GitLab: use lowercase "
            "components of [a-z0-9] joined by '.', '_', '__' or '-', separated by '/', at "
            f"most {MAX_NAME_LENGTH} characters (GitLab's registry paths are the project's "
            "full path in lower case)"
        )
    parts = name.split("/")
    if len(parts) < 2:
        raise InvalidRepositoryName(
            f"repository name {name!r} has no project: GitLab repositories are "
            "group/project[/image...]; set the policy's destination namespace to a project "
            "path such as mygroup/myproject"
        )
    if len(parts) > MAX_PATH_COMPONENTS:
        raise InvalidRepositoryName(
            f"repository name {name[:300]!r} has {len(parts)} path components; GitLab takes "
            f"at most {MAX_PATH_COMPONENTS} ({MAX_GROUP_DEPTH} group levels, the project, "
            f"{MAX_IMAGE_COMPONENTS} image names): shorten it with "
            "dest_namespace_replace_count"
        )
    for part in parts[:-1]:
        if _RESERVED_SUFFIX.search(part):
            raise InvalidRepositoryName(
                f"repository name {name[:300]!r}: GitLab group and project paths cannot end "
                f"in .git or .atom ({part!r})"
            )


def check_under_project(name: str, project: str) -> None:
    """Refuse ``name`` unless it is ``project`` or at most :data:`MAX_IMAGE_COMPONENTS`
    image components below it (``project`` compared in lower case).

    :raises InvalidRepositoryName: saying which project and how deep.
    """
    owner = project.lower().strip("/")
    if name != owner and not name.startswith(owner + "/"):
        raise InvalidRepositoryName(
            f"repository name {name[:300]!r} is not under the GitLab project {owner!r}: "
            f"set the policy's destination namespace to {owner!r} (or a path below it)"
        )
    below = name[len(owner) :].strip("/")
    depth = len(below.split("/")) if below else 0
    if depth > MAX_IMAGE_COMPONENTS:
        raise InvalidRepositoryName(
            f"repository name {name[:300]!r} has {depth} image components below the project "
            f"{owner!r}; GitLab takes at most {MAX_IMAGE_COMPONENTS}: flatten the names with "
            "dest_namespace_replace_count"
        )


def project_candidates(name: str) -> list[str]:
    """The prefixes of ``name`` that may be its project's full path, longest first, down to
    two components (a project found deeper than :data:`MAX_IMAGE_COMPONENTS` above the name
    is reported by :func:`check_under_project`, not missed)."""
    parts = name.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 1, -1)]
