"""The request pipeline above the transport: per-endpoint limits, the auth flow, retries.

For every logical request::

    retry loop (5xx, connection errors, timeouts: backoff + jitter; 429: Retry-After)
      └── credentials (RefreshingCredentials, when the client has a provider: fresh before
        │             expiry; fetched once more and the request resent after a 401)
        └── auth flow (RegistryAuth.auth_flow: credentials, challenge, token, resend)
            └── exchange (endpoint limiter slot + rate token, byte counters) -> Transport.send

A ``429`` pauses the whole endpoint (every request to that host waits) for its
``Retry-After``, whether or not the request that got it is retried; without ``Retry-After`` the
retry backs off exponentially and pauses the endpoint as long. Requests with ``retry=False``
are never repeated here: their callers resume by themselves (upload chunks). Identical
in-flight token requests are made once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from urllib.parse import urlsplit

from adapters.oci.auth import RegistryAuth
from adapters.oci.credentials import RefreshingCredentials
from adapters.oci.errors import (
    OciError,
    RateLimited,
    Transient,
    Unauthorized,
    error_from_response,
)
from adapters.oci.limits import EndpointLimiter, RetryPolicy, parse_retry_after_seconds
from adapters.oci.transport import BodyFactory, Request, Response, Transport
from adapters.oci.types import ClientStats

__all__ = ["RegistrySession"]

_ERROR_BODY_BYTES = 64 * 1024
_TOKEN_BODY_BYTES = 1024 * 1024


@dataclass(slots=True)
class _Counters:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    rate_limit_wait_seconds: float = 0.0
    resumes: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0

    def add_received(self, n: int) -> None:
        self.bytes_received += n


class RegistrySession:
    """Sends :class:`Request` values for one client; raises only our error tree."""

    def __init__(
        self,
        transport: Transport,
        auth: RegistryAuth,
        *,
        max_in_flight: int = 16,
        requests_per_second: float | None = None,
        policy: RetryPolicy | None = None,
        credentials: RefreshingCredentials | None = None,
    ) -> None:
        self.transport = transport
        self.auth = auth
        self.credentials = credentials
        self.policy = policy or RetryPolicy()
        self.counters = _Counters()
        self._max_in_flight = max_in_flight
        self._requests_per_second = requests_per_second
        self._limiters: dict[str, EndpointLimiter] = {}
        self._token_fetches: dict[tuple[str, str], asyncio.Future[Response]] = {}
        EndpointLimiter(max_in_flight, requests_per_second)  # validate the settings now

    def stats(self) -> ClientStats:
        return ClientStats(**asdict(self.counters))

    def limiter(self, url: str) -> EndpointLimiter:
        origin = _origin(url)
        if origin not in self._limiters:
            self._limiters[origin] = EndpointLimiter(self._max_in_flight, self._requests_per_second)
        return self._limiters[origin]

    @asynccontextmanager
    async def request(
        self, request: Request, *, expect: Collection[int]
    ) -> AsyncIterator[Response]:
        """Send ``request``; yield the response if its status is in ``expect``, else raise."""
        response = await self.send(request)
        try:
            if response.status not in expect:
                raise await self.error_of(request, response)
            yield response
        finally:
            response.close()

    async def send(self, request: Request) -> Response:
        """The response to ``request`` after auth and retries; the caller must close it.

        429 and 5xx answers are raised (as RateLimited / ServerError) once retries are spent.
        """
        failures = rate_limits = 0
        while True:
            try:
                response = await self._authenticated(request)
                if response.status == 429 or response.status >= 500:
                    raise await self.error_of(request, response)
                return response
            except Transient as error:
                if isinstance(error, RateLimited):
                    rate_limits += 1
                    attempt = rate_limits
                else:
                    failures += 1
                    attempt = failures
                if not request.retry or attempt > self.policy.retries or self._too_long(error):
                    raise
                await self._before_retry(error, attempt - 1)

    def _too_long(self, error: Transient) -> bool:
        wait = error.retry_after_seconds
        return wait is not None and wait > self.policy.max_retry_after_seconds

    async def _before_retry(self, error: Transient, attempt: int) -> None:
        self.counters.retries += 1
        delay = self.policy.backoff_seconds(attempt)
        if isinstance(error, RateLimited):
            if error.retry_after_seconds is None:  # no word from the registry: back off
                self._pause(error, delay)
            return  # the endpoint is paused; the next acquire waits
        if error.status == 503 and error.retry_after_seconds is not None:
            delay = max(delay, error.retry_after_seconds)
        await asyncio.sleep(delay)

    async def error_of(self, request: Request, response: Response) -> OciError:
        """The error an unexpected answer means; pauses the endpoint on a 429."""
        try:
            body = (
                response.body
                if response.body is not None
                else await response.read(_ERROR_BODY_BYTES)
            )
        except OciError:
            body = b""
        finally:
            response.close()
        retry_after = parse_retry_after_seconds(response.headers.get("Retry-After"))
        error = error_from_response(
            response.status,
            response.headers,
            body,
            method=request.method,
            url=request.url,
            retry_after_seconds=retry_after,
        )
        if isinstance(error, RateLimited):
            self.counters.rate_limited += 1
            if retry_after is not None:
                self._pause(error, retry_after)
        return error

    def _pause(self, error: OciError, seconds: float) -> None:
        if seconds <= self.policy.max_retry_after_seconds:  # else send() raises: caller waits
            self.counters.rate_limit_wait_seconds += seconds
            self.limiter(error.url or "").pause(seconds)

    async def _authenticated(self, request: Request) -> Response:
        if self.credentials is None:
            return await self._auth_flow(request)
        used = await self.credentials.get()
        self.auth.use(used)
        try:
            response = await self._auth_flow(request)
        except Unauthorized:  # the token realm refused them: fetch once more, then it stands
            fresh = await self.credentials.refresh(used)
            if fresh == used:
                raise
            self.auth.use(fresh)
            return await self._auth_flow(request)
        if response.status != 401:
            return response
        fresh = await self.credentials.refresh(used)
        self.auth.use(fresh)
        if fresh == used or not request.replayable:
            return response  # nothing new to offer, or a streamed body: its caller resumes
        response.close()
        return await self._auth_flow(request)

    async def _auth_flow(self, request: Request) -> Response:
        flow = self.auth.auth_flow(request)
        outgoing = next(flow)
        while True:
            response = await self._exchange(outgoing)
            try:
                outgoing = flow.send(response)
            except StopIteration:
                return response
            except RateLimited as error:  # the token realm throttled: wait as for any 429
                response.close()
                self.counters.rate_limited += 1
                if error.retry_after_seconds is not None:
                    self._pause(error, error.retry_after_seconds)
                raise
            except BaseException:
                response.close()
                raise
            response.close()

    async def _exchange(self, request: Request) -> Response:
        if request.buffered and request.method == "GET":
            return await self._single_flight(request)
        return await self._exchange_once(request)

    async def _exchange_once(self, request: Request) -> Response:
        limiter = self.limiter(request.url)
        await limiter.acquire()
        try:
            self.counters.requests += 1
            response = await self.transport.send(self._counting(request))
        except BaseException:
            limiter.release()
            raise
        response.on_close(limiter.release)
        response.count_bytes(self.counters.add_received)
        if request.buffered or response.status == 401:
            try:  # small answers: read them so the connection is reused and the slot freed
                await response.read(_TOKEN_BODY_BYTES)
            finally:
                response.close()
        return response

    async def _single_flight(self, request: Request) -> Response:
        key = (request.url, request.headers.get("Authorization", ""))
        pending = self._token_fetches.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # we were cancelled ourselves
                return await self._exchange_once(request)  # the leader was: ask ourselves
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._token_fetches[key] = future
        try:
            response = await self._exchange_once(request)
            future.set_result(response)
            return response
        except Exception as e:
            future.set_exception(e)
            future.exception()  # retrieved: no "never retrieved" warning without followers
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            del self._token_fetches[key]

    def _counting(self, request: Request) -> Request:
        content = request.content
        if content is None:
            return request
        if isinstance(content, bytes):
            self.counters.bytes_sent += len(content)
            return request
        return replace(request, content=self._counting_factory(content))

    def _counting_factory(self, factory: BodyFactory) -> BodyFactory:
        counters = self.counters

        async def counted() -> AsyncIterator[bytes]:
            async for chunk in factory():
                counters.bytes_sent += len(chunk)
                yield chunk

        def make() -> AsyncIterable[bytes]:
            return counted()

        return make


def _origin(url: str) -> str:
    """``scheme://netloc`` of an absolute URL (per request: cheaper than ``urlsplit``)."""
    start = url.find("://")
    if start < 0:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}"
    end = len(url)
    for sep in "/?#":
        found = url.find(sep, start + 3)
        if 0 <= found < end:
            end = found
    return url[:start].lower() + url[start:end]
