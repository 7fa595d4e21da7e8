"""Who may do what: account kinds, grants on repository patterns, and the rights they give.

Account kinds:

- ``admin``: every action on every repository, and the catalog (``registry:catalog:*``).
- ``user`` and ``robot``: exactly what their grants say. Robots (``robot$<name>``) are CI accounts.
- ``None``: anonymous. Nothing, or ``pull`` on every repository when anonymous pull is enabled
  (which then also holds for every authenticated account).
- any other kind: nothing (fail closed).

A grant gives actions (``pull``, ``push``, ``delete``) on a repository pattern::

    team/app    exactly the repository team/app
    team/*      every repository below team/, at any depth: team/app, team/a/b
                (not team itself, not teamx/app)
    *           every repository

No action implies another: a pusher needs ``pull`` granted too (docker and skopeo ask for
``pull,push`` together). ``*`` as a requested action means all of pull, push and delete.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from registry.auth.scopes import Access
from registry.oci.reference import is_valid_name

__all__ = [
    "ACCOUNT_KINDS",
    "REPOSITORY_ACTIONS",
    "Grant",
    "GrantError",
    "allowed_actions",
    "is_valid_pattern",
    "parse_grant",
    "pattern_matches",
]

ACCOUNT_KINDS = frozenset({"admin", "user", "robot"})
REPOSITORY_ACTIONS = frozenset({"pull", "push", "delete"})
ALL = "*"
CATALOG = Access("registry", "catalog", frozenset({ALL}))


class GrantError(ValueError):
    """A grant's text is not ``PATTERN=ACTIONS``; the message says what to write instead."""


@dataclass(frozen=True, slots=True)
class Grant:
    """``actions`` on the repositories matching ``repository`` (a pattern; see the module doc).

    ``actions`` is always a frozenset (any iterable given is converted); ``*`` in it stands for
    all of :data:`REPOSITORY_ACTIONS`.
    """

    repository: str
    actions: frozenset[str]

    def __post_init__(self) -> None:
        if not isinstance(self.actions, frozenset):
            object.__setattr__(self, "actions", frozenset(self.actions))


def is_valid_pattern(pattern: str) -> bool:
    """Whether ``pattern`` is ``*``, a valid repository name, or one followed by ``/*``."""
    if pattern == ALL:
        return True
    return is_valid_name(pattern.removesuffix("/*"))


def pattern_matches(pattern: str, repository: str) -> bool:
    """Whether grant pattern ``pattern`` covers ``repository``.

    Never raises. False when ``repository`` is not a valid OCI repository name (so ``team/*``
    does not cover ``team/../other``) or when ``pattern`` is malformed (``team*``, ``*/app``).
    """
    if not is_valid_name(repository) or not is_valid_pattern(pattern):
        return False
    if pattern == ALL:
        return True
    if pattern.endswith("/*"):
        return repository.startswith(pattern[:-1])  # keeps the '/', so teamx/app is not team/*
    return pattern == repository


def _expand(actions: Iterable[str]) -> frozenset[str]:
    actions = frozenset(actions)
    return REPOSITORY_ACTIONS if ALL in actions else actions & REPOSITORY_ACTIONS


def _with_star(requested: frozenset[str], granted: frozenset[str]) -> frozenset[str]:
    """``requested`` ∩ ``granted``, plus ``*`` if requested and every action is granted."""
    allowed = requested & granted
    if ALL in requested and granted >= REPOSITORY_ACTIONS:
        allowed |= {ALL}
    return allowed


def allowed_actions(
    kind: str | None, grants: Sequence[Grant], access: Access, *, anonymous_pull: bool
) -> frozenset[str]:
    """The subset of ``access.actions`` that an account may perform (empty: none).

    :param kind: ``"admin"``, ``"user"``, ``"robot"``, or ``None`` for anonymous.
    :param grants: the account's grants (ignored for admin and anonymous).
    :param access: what is asked for, usually from :func:`registry.auth.scopes.parse_scope`.
    :param anonymous_pull: the registry lets anyone pull; gives ``pull`` to every caller.

    Only two resources exist: ``repository:<valid name>`` with pull, push, delete (and ``*``),
    and ``registry:catalog:*`` (admin only). Anything else, including unknown types, invalid
    repository names and unknown actions, gives nothing. The result is safe to put straight
    into a token's ``access`` claim.
    """
    if access.type == "registry":
        if kind == "admin" and access.name == CATALOG.name:
            return access.actions & CATALOG.actions
        return frozenset()
    if access.type != "repository" or not is_valid_name(access.name):
        return frozenset()
    if kind == "admin":
        return _with_star(access.actions, REPOSITORY_ACTIONS)
    granted: frozenset[str] = frozenset({"pull"}) if anonymous_pull else frozenset()
    if kind in ACCOUNT_KINDS:
        for grant in grants:
            if pattern_matches(grant.repository, access.name):
                granted |= _expand(grant.actions)
    elif kind is not None:
        return frozenset()  # unknown kind: fail closed, even with anonymous pull
    return _with_star(access.actions, granted)


def parse_grant(text: str) -> Grant:
    """Parse the command-line form ``PATTERN=ACTIONS``, e.g. ``team/*=pull,push`` or ``*=pull``.

    ACTIONS is a comma-separated subset of pull, push, delete, or ``*`` for all three; the
    returned grant holds the expanded set (never ``*``). Spaces around parts are ignored.

    :raises GrantError: (a ValueError) saying what is wrong and how to write it.
    """
    pattern, sep, actions_text = text.partition("=")
    pattern, actions_text = pattern.strip(), actions_text.strip()
    example = "write e.g. team/*=pull,push, team/app=pull or *=pull"
    if not sep or not pattern or not actions_text:
        raise GrantError(f"grant {text!r} is not PATTERN=ACTIONS; {example}")
    if not is_valid_pattern(pattern):
        raise GrantError(
            f"grant {text!r}: {pattern!r} is not a repository pattern; use an exact repository "
            "name (lowercase, e.g. team/app), a prefix ending in /* (team/*), or * for all"
        )
    actions = frozenset(a.strip() for a in actions_text.split(","))
    if actions == {ALL}:
        return Grant(pattern, REPOSITORY_ACTIONS)
    unknown = sorted(actions - REPOSITORY_ACTIONS)
    if unknown:
        raise GrantError(
            f"grant {text!r}: unknown action(s) {', '.join(map(repr, unknown))}; "
            "actions are pull, push, delete (comma-separated) or * for all three"
        )
    return Grant(pattern, actions)
