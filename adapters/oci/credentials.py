"""Credentials that expire: a provider issues them, :class:`RefreshingCredentials` caches them.

Cloud registries log in with short-lived secrets — ECR's 12-hour authorization token, ACR's
refresh token from an AAD exchange, Artifact Registry's 1-hour OAuth access token. A provider
is one async method that fetches a fresh set (blocking SDK calls belong in a worker thread,
inside the provider); :class:`RefreshingCredentials` decides when to call it::

    first request ──► fetch ──► cached until ``expires_at - refresh_before_seconds``
    request near expiry ──► fetch again (one fetch for every request waiting on it)
    401 from the registry ──► fetch once more, unless another request already did; the
                              request is sent again with what came back; a second 401 stands

A fetch whose answer is already expired (moto's ECR token says 2015) or expires within the
margin is still used, for :attr:`RefreshingCredentials.min_reuse_seconds`, so an always-stale
provider costs one fetch per that many seconds, never a loop. Failures of the provider are its
own errors (an :class:`~adapters.oci.errors.OciError` subclass, or
:class:`CredentialsUnavailable`), raised to the request that needed the credentials.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import anyio

from adapters.oci.auth import Credentials
from adapters.oci.errors import OciError

__all__ = [
    "CredentialProvider",
    "CredentialsUnavailable",
    "IssuedCredentials",
    "RefreshingCredentials",
]


class CredentialsUnavailable(OciError):
    """The provider could not issue credentials (a role that cannot be assumed, an expired
    key file, an identity service that refused). The message says what to fix."""

    hint = "check the endpoint's credentials and the provider's identity settings"


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    """What a provider hands out: the registry login and when it stops working.

    :param credentials: a username/password pair or a bearer token for the registry.
    :param expires_at: when they expire, in seconds of the provider's clock (``time.time()``
        by default); None: they do not expire by themselves (refreshed only on a 401).
    """

    credentials: Credentials
    expires_at: float | None = None


class CredentialProvider(Protocol):
    """Fetches a fresh set of credentials; called by :class:`RefreshingCredentials` only.

    :raises OciError: the provider failed (use :class:`CredentialsUnavailable` for a refusal
        that retrying will not fix, a :class:`~adapters.oci.errors.Transient` one otherwise).
    """

    async def __call__(self) -> IssuedCredentials: ...


class RefreshingCredentials:
    """Caches a provider's credentials; fetches again before expiry and once per 401.

    Safe to share between concurrent requests of one event loop: a fetch under way is awaited
    by every request that needs credentials meanwhile (single flight).

    :param provider: what fetches fresh credentials.
    :param refresh_before_seconds: how long before ``expires_at`` to fetch again.
    :param min_reuse_seconds: the least time a fetched set is used before the next fetch
        (except after a 401), whatever its ``expires_at`` says.
    :param clock: the clock ``expires_at`` is read against (tests inject one).
    :param failure_reuse_seconds: how long a failed fetch's error is the answer for every
        request that needs credentials (an identity service that is down is asked once per
        that many seconds, not once per request and retry).
    """

    def __init__(
        self,
        provider: CredentialProvider,
        *,
        refresh_before_seconds: float = 300.0,
        min_reuse_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
        failure_reuse_seconds: float = 2.0,
    ) -> None:
        if min(refresh_before_seconds, min_reuse_seconds, failure_reuse_seconds) < 0:
            raise ValueError("the credential cache's durations must not be negative")
        self._provider = provider
        self._refresh_before = refresh_before_seconds
        self._min_reuse = min_reuse_seconds
        self._clock = clock
        self._current: Credentials | None = None
        self._fresh_until = 0.0  # clock time after which the next get() fetches again
        self._failure_reuse = failure_reuse_seconds
        self._failure: tuple[OciError, float] | None = None  # (error, until) of the last fetch
        self._lock = anyio.Lock()
        self.fetches = 0  # how often the provider was called (for tests and stats)

    @property
    def current(self) -> Credentials | None:
        """The cached credentials, without fetching (None before the first fetch)."""
        return self._current

    async def get(self) -> Credentials:
        """The credentials to send now: cached while fresh, else fetched (once for all)."""
        current = self._current
        if current is not None and self._clock() < self._fresh_until:
            return current
        async with self._lock:
            if self._current is not None and self._clock() < self._fresh_until:
                return self._current  # another request fetched them while we waited
            self._raise_recent_failure()
            return await self._fetch()

    async def refresh(self, stale: Credentials | None) -> Credentials:
        """Credentials after the registry refused ``stale`` with a 401: fetched again unless
        another request already replaced ``stale`` (then those are returned)."""
        async with self._lock:
            if self._current is not None and self._current != stale:
                return self._current
            self._raise_recent_failure()
            return await self._fetch()

    def _raise_recent_failure(self) -> None:
        if self._failure is not None:
            error, until = self._failure
            if self._clock() < until:
                raise error  # the fetch that just failed answers the requests that waited
            self._failure = None

    async def _fetch(self) -> Credentials:
        self.fetches += 1
        try:
            issued = await self._provider()
        except OciError as error:
            self._failure = (error, self._clock() + self._failure_reuse)
            raise
        now = self._clock()
        if issued.expires_at is None:
            until = float("inf")
        else:
            until = max(issued.expires_at - self._refresh_before, now + self._min_reuse)
        self._current, self._fresh_until = issued.credentials, until
        return issued.credentials
