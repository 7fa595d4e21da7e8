"""The settings of a ``gitlab`` endpoint, checked before anything is sent, and the login's own
check (:class:`GitLabLogin`, a credential provider).

An endpoint is a GitLab container registry (``https://registry.gitlab.com``, a self-managed
``https://registry.example.com`` or ``https://gitlab.example.com:5050``) and the GitLab
instance that runs it (option ``gitlab_url``; ``https://gitlab.com`` for
``registry.gitlab.com``, required for any other registry: the access token goes there, so it
is never guessed). The login is a username and an access token (personal, project or group
access token: any username works, GitLab reads the token) or a deploy token (its
``gitlab+deploy-token-N`` username): the registry's ``Bearer realm=".../jwt/auth"`` challenge
is answered with them (the OCI client's token flow), and GitLab issues a JWT per repository
scope, which expires (5 minutes by default; its ``exp`` says) and is asked again before then.

Access tokens also reach the REST API (``PRIVATE-TOKEN``); deploy tokens cannot, so with one
the adapter lists through ``/v2`` and checks no project before a push.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from adapters.base import EndpointConfig, InvalidEndpoint
from adapters.gitlab_api import AccessToken, GitLabApi
from adapters.gitlab_names import DEPLOY_TOKEN_PREFIX
from adapters.oci.auth import Credentials
from adapters.oci.credentials import CredentialsUnavailable, IssuedCredentials
from adapters.oci.errors import Unauthorized

__all__ = [
    "GITLAB_COM",
    "GITLAB_COM_REGISTRY",
    "REGISTRY_SCOPES",
    "GitLabLogin",
    "GitLabSettings",
    "parse_settings",
]

GITLAB_COM = "https://gitlab.com"
GITLAB_COM_REGISTRY = "registry.gitlab.com"
#: token scopes that let the registry's JWT service grant pulls (``api`` covers all)
REGISTRY_SCOPES = frozenset({"read_registry", "write_registry", "api"})


@dataclass(frozen=True, slots=True)
class GitLabSettings:
    """One endpoint, resolved: where the instance is, what to discover, who logs in."""

    gitlab_url: str  # the instance: /jwt/auth and /api/v4 are below it
    group: str = ""  # discovery: this group's repositories (subgroups included)
    project: str = ""  # or this project's; pushes must then go below it
    username: str = ""
    token: str = field(default="", repr=False)

    @property
    def deploy_token(self) -> bool:
        """A deploy token: the registry only, never the API."""
        return self.username.startswith(DEPLOY_TOKEN_PREFIX)

    @property
    def uses_api(self) -> bool:
        """Whether the REST API can be asked (anonymously for public projects)."""
        return not self.deploy_token


def parse_settings(config: EndpointConfig) -> GitLabSettings:
    """The endpoint's settings, or :class:`InvalidEndpoint` saying what to fix. No I/O."""
    parts = urlsplit(config.url)
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise InvalidEndpoint(
            f"gitlab endpoint URL {config.url[:200]!r}: give the registry's URL only, e.g. "
            "https://registry.gitlab.com (the project path belongs in the policy's namespace)"
        )
    gitlab_url = config.option("gitlab_url").rstrip("/")
    if not gitlab_url:
        if (parts.hostname or "").lower() != GITLAB_COM_REGISTRY:
            raise InvalidEndpoint(
                f"gitlab endpoint {config.url[:200]!r} is not registry.gitlab.com: give "
                "--gitlab-url, the GitLab instance that runs it (e.g. "
                "https://gitlab.example.com), where the access token is sent"
            )
        gitlab_url = GITLAB_COM
    if urlsplit(gitlab_url).path.rstrip("/").endswith("/api/v4"):
        raise InvalidEndpoint(
            f"gitlab --gitlab-url {gitlab_url[:200]!r}: give the instance's URL without /api/v4"
        )
    if config.token:
        raise InvalidEndpoint(
            "gitlab takes no bearer token: give a username and an access token (or a deploy "
            "token's username and token) as the credential's access_key and access_secret"
        )
    if bool(config.username) != bool(config.password):
        raise InvalidEndpoint(
            "gitlab needs both a username and a token (access_key and access_secret), or "
            "neither (anonymous pulls of public projects)"
        )
    group, project = config.option("group").strip("/"), config.option("project").strip("/")
    if group and project:
        raise InvalidEndpoint("gitlab: give --group or --project, not both")
    if project and "/" not in project:
        raise InvalidEndpoint(
            f"gitlab --project {project[:200]!r}: give the project's full path, e.g. "
            "mygroup/myproject"
        )
    return GitLabSettings(gitlab_url, group, project, config.username or "", config.password or "")


class GitLabLogin:
    """A credential provider: the endpoint's login, checked against GitLab's record of the
    token (``GET /personal_access_tokens/self``) and valid until its expiry date.

    Called before the first request, near the token's expiry and after a registry ``401``:
    a revoked, expired or scope-less token then fails with a message that says so (instead
    of a bare 401 from the token service). Deploy tokens and GitLab before 15.5 (no such
    endpoint) are used as they are.
    """

    def __init__(self, settings: GitLabSettings, api: GitLabApi) -> None:
        self._settings = settings
        self._api = api
        self.checks = 0  # how often GitLab was asked about the token
        self.last: AccessToken | None = None

    async def __call__(self) -> IssuedCredentials:
        s = self._settings
        login = Credentials(s.username, s.token)
        if s.deploy_token:
            return IssuedCredentials(login)
        self.checks += 1
        try:
            token = await self._api.access_token()
        except Unauthorized as e:
            raise CredentialsUnavailable(
                f"{s.gitlab_url} refused the access token given for {s.username!r} "
                f"({e.message}): it is wrong, expired or revoked; create one with the scopes "
                "read_registry, write_registry and read_api (api to delete tags) and update "
                "the endpoint's access_secret",
                status=e.status,
                url=e.url,
            ) from None
        if token is None:
            return IssuedCredentials(login)  # GitLab before 15.5: nothing to read
        self.last = token
        if not token.active:
            raise CredentialsUnavailable(
                f"the GitLab access token {token.name!r} is revoked or inactive: create a new "
                "one and update the endpoint's access_secret"
            )
        if not token.scopes & REGISTRY_SCOPES:
            raise CredentialsUnavailable(
                f"the GitLab access token {token.name!r} has the scopes "
                f"{', '.join(sorted(token.scopes)) or 'none'}: the registry needs "
                "read_registry (pulls) and write_registry (pushes)"
            )
        return IssuedCredentials(login, token.expires_at_seconds)
