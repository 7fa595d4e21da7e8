"""Who may do what on the Harbor fake, and the registry tokens it hands out (no HTTP here).

Follows Harbor's published RBAC (``src/common/rbac/const.go``, the robot API of the v2.0
swagger): an account is a user (the system administrator, or a user with permissions) or a
robot account — ``robot$<project>+<name>`` (level ``project``: permissions in that project) or
``robot$<name>`` (level ``system``: ``{"kind": "system", "namespace": "/"}`` for system
resources such as ``project:create``, ``{"kind": "project", "namespace": "*" | <project>}``
for projects). A permission is ``(namespace, resource, action)``; ``*`` matches any.

Registry tokens (``GET /service/token``) carry Docker ``access`` claims computed from those
permissions: ``pull`` ← ``repository:pull`` (or a public project), ``push`` ←
``repository:push``, ``delete`` ← ``artifact:delete``; nothing in a project that does not
exist (Harbor refuses pushes to unknown projects); the catalog only for administrators.
Tokens are the ACR fake's unsigned JWT-shaped ones (:class:`tests.support.fake_acr_auth.TokenBook`).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.support.fake_acr_auth import FakeClock, Principal, TokenBook, parse_scope

__all__ = ["Account", "Accounts", "robot_permissions"]

ROBOT_PREFIX = "robot$"
#: Docker token action -> the Harbor (resource, action) it needs
TOKEN_ACTIONS: Mapping[str, tuple[str, str]] = {
    "pull": ("repository", "pull"),
    "push": ("repository", "push"),
    "delete": ("artifact", "delete"),
}
Permission = tuple[str, str, str]  # (namespace: project | "*" | "/", resource, action)


@dataclass(frozen=True)
class Account:
    name: str
    password: str = field(repr=False)
    admin: bool = False
    level: str = ""  # "" (a user), "project" or "system" (a robot account)
    permissions: frozenset[Permission] = frozenset()

    @property
    def is_robot(self) -> bool:
        return bool(self.level)

    def may(self, project: str | None, resource: str, action: str) -> bool:
        """Whether the account may ``action`` on ``resource`` in ``project`` (None: system)."""
        if self.admin:
            return True
        for namespace, res, act in self.permissions:
            in_scope = namespace == "/" if project is None else namespace in (project, "*")
            if in_scope and res in (resource, "*") and act in (action, "*"):
                return True
        return False


def robot_permissions(items: Iterable[Mapping[str, Any]]) -> frozenset[Permission]:
    """``[{"kind", "namespace", "access": [{"resource", "action"}]}]`` as permissions."""
    out: set[Permission] = set()
    for item in items:
        namespace = "/" if item.get("kind") == "system" else str(item.get("namespace", ""))
        for access in item.get("access") or []:
            if access.get("effect", "allow") == "allow":
                out.add((namespace, str(access.get("resource")), str(access.get("action"))))
    return frozenset(out)


class Accounts:
    """Users, robot accounts and the token book of one fake Harbor (thread-safe)."""

    def __init__(self, service: str, clock: FakeClock, token_seconds: float = 1800.0) -> None:
        self.tokens = TokenBook(service, clock, token_seconds, token_seconds)
        self.token_seconds = token_seconds
        self._accounts: dict[str, Account] = {}
        self._lock = threading.Lock()
        self.robots_created = 0

    def add(self, account: Account) -> Account:
        with self._lock:
            self._accounts[account.name] = account
        return account

    def login(self, username: str, password: str) -> Account | None:
        with self._lock:
            known = self._accounts.get(username)
        if known is None or not secrets.compare_digest(known.password, password):
            return None
        return known

    def from_basic(self, header: str) -> Account | bool | None:
        """The account of a ``Basic`` header; None without one; False for a wrong login."""
        if not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except ValueError:
            return False
        return self.login(user, password) or False

    def create_robot(
        self, name: str, level: str, permissions: frozenset[Permission], secret: str = ""
    ) -> Account:
        """A robot account: ``robot$<project>+<name>`` or ``robot$<name>``."""
        if level == "project":
            project = next(iter(permissions))[0] if permissions else ""
            full = f"{ROBOT_PREFIX}{project}+{name}"
        else:
            full = f"{ROBOT_PREFIX}{name}"
        robot = Account(
            full, secret or secrets.token_urlsafe(24), level=level, permissions=permissions
        )
        with self._lock:
            if full in self._accounts:
                raise KeyError(full)
            self._accounts[full] = robot
            self.robots_created += 1
        return robot

    def issue(
        self,
        account: Account | None,
        scopes: Iterable[str],
        project_exists: Callable[[str], bool],
        public: Callable[[str], bool],
    ) -> str:
        """A registry token for what of ``scopes`` ``account`` (None: anonymous) may do."""
        repositories: dict[str, frozenset[str]] = {}
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None or parsed[0] != "repository":
                continue
            name, actions = parsed[1], parsed[2]
            project = name.split("/")[0]
            if "/" not in name or not project_exists(project):
                continue
            repositories[name] = frozenset(
                a for a in actions if _allows(account, project, a, public(project))
            )
        who = account.name if account is not None else "anonymous"
        catalog = account is not None and account.admin
        return self.tokens.issue_access(Principal(who, "harbor", repositories, catalog), scopes)


def _allows(account: Account | None, project: str, action: str, public: bool) -> bool:
    resource, needed = TOKEN_ACTIONS.get(action, ("", ""))
    if action == "pull" and public:
        return True
    return account is not None and bool(resource) and account.may(project, resource, needed)


def token_subject(token: str) -> str:
    """The ``sub`` claim of a token this fake issued ("" if unreadable)."""
    try:
        claims = token.split(".")[1]
        return str(json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["sub"])
    except (IndexError, ValueError, KeyError):
        return ""
