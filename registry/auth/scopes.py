"""Docker token scopes: ``type:name:actions``, e.g. ``repository:team/app:pull,push``.

Grammar (Docker token spec, simplified)::

    scopes     := scope (' ' scope)*
    scope      := type ':' name ':' actions
    type       := [a-z0-9]+ ( '(' [a-z0-9]+ ')' )?        repository, registry, repository(plugin)
    name       := anything without spaces; may contain ':' (split at the first and LAST ':')
    actions    := action (',' action)*
    action     := [a-z]+ | '*'

Examples: ``repository:team/app:pull``, ``repository:team/app:pull,push``,
``registry:catalog:*``, ``repository:localhost:5000/app:pull`` (name ``localhost:5000/app``).

Parsing only checks the shape. Whether a name is a valid repository, and which actions exist,
is decided by :mod:`registry.auth.permissions`.

A token request is bounded (:func:`parse_scopes`): at most :data:`MAX_SCOPES` distinct scopes
and :data:`MAX_SCOPE_CHARS` characters of scope text in all, so every token the endpoint issues
stays small (a few KiB) whoever asks — anonymous callers included. Real clients ask for one to
a handful (docker's cross-repository mounts add one per source repository).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "MAX_SCOPES",
    "MAX_SCOPE_CHARS",
    "Access",
    "ScopeError",
    "format_scope",
    "parse_scope",
    "parse_scopes",
]

MAX_SCOPES = 32
MAX_SCOPE_CHARS = 4096

_TYPE_RE = re.compile(r"[a-z0-9]+(?:\([a-z0-9]+\))?")
_ACTION_RE = re.compile(r"[a-z]+|\*")


class ScopeError(ValueError):
    """A scope string does not follow ``type:name:actions``; the message quotes it and says why."""


@dataclass(frozen=True, slots=True)
class Access:
    """Access to one resource: ``Access("repository", "team/app", frozenset({"pull"}))``.

    ``actions`` is always a frozenset (any iterable given is converted). ``*`` means every action.
    """

    type: str
    name: str
    actions: frozenset[str]

    def __post_init__(self) -> None:
        if not isinstance(self.actions, frozenset):
            object.__setattr__(self, "actions", frozenset(self.actions))


def _parse_one(scope: str) -> Access:
    first = scope.find(":")
    last = scope.rfind(":")
    if first == -1 or first == last:
        raise ScopeError(
            f"scope {scope!r} is not type:name:actions "
            "(expected e.g. repository:team/app:pull,push)"
        )
    type_, name, actions_text = scope[:first], scope[first + 1 : last], scope[last + 1 :]
    if not _TYPE_RE.fullmatch(type_):
        raise ScopeError(
            f"scope {scope!r} has resource type {type_!r}; expected lowercase letters and digits "
            "such as repository or registry"
        )
    if not name:
        raise ScopeError(
            f"scope {scope!r} names no resource (expected e.g. repository:team/app:pull)"
        )
    actions = actions_text.split(",")
    bad = [a for a in actions if not _ACTION_RE.fullmatch(a)]
    if bad:
        raise ScopeError(
            f"scope {scope!r} has invalid action(s) {', '.join(map(repr, bad))}; "
            "actions are lowercase words or * separated by commas, e.g. pull,push"
        )
    return Access(type_, name, frozenset(actions))


def parse_scope(scopes: str) -> list[Access]:
    """Parse one ``scope`` query value, which may hold several space-separated scopes.

    Returns them in order (duplicates kept); an empty or all-blank string gives ``[]``.
    A token endpoint receiving ``scope`` several times calls this once per value.

    :raises ScopeError: for the first scope that is not ``type:name:actions``.
    """
    return [_parse_one(item) for item in scopes.split()]


def parse_scopes(values: Iterable[str]) -> list[Access]:
    """All the ``scope`` values of one token request, bounded, duplicates merged.

    Scopes naming the same ``type:name`` become one entry holding the union of their actions,
    in the order of first appearance.

    :raises ScopeError: for a malformed scope, more than :data:`MAX_SCOPES` distinct resources,
        or more than :data:`MAX_SCOPE_CHARS` characters of scope text.
    """
    values = list(values)
    chars = sum(len(v) for v in values)
    if chars > MAX_SCOPE_CHARS:
        raise ScopeError(
            f"the scopes asked for hold {chars} characters; at most {MAX_SCOPE_CHARS} are "
            "accepted in one token request: ask for a token per repository instead"
        )
    merged: dict[tuple[str, str], frozenset[str]] = {}
    for value in values:
        for access in parse_scope(value):
            key = (access.type, access.name)
            merged[key] = merged.get(key, frozenset()) | access.actions
            if len(merged) > MAX_SCOPES:
                raise ScopeError(
                    f"more than {MAX_SCOPES} scopes in one token request; ask for at most "
                    f"{MAX_SCOPES} (a token per repository is the usual way)"
                )
    return [Access(type_, name, actions) for (type_, name), actions in merged.items()]


def format_scope(access: Access) -> str:
    """The scope string for ``access``, actions sorted: ``repository:team/app:pull,push``.

    ``parse_scope(format_scope(a)) == [a]`` for any access with at least one valid action.
    """
    return f"{access.type}:{access.name}:{','.join(sorted(access.actions))}"
