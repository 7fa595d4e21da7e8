"""The CLI's client of the management API (``/api/v2.0``): requests, paging, and errors that say
what happened and what to do. httpx errors and error responses become :class:`CliError` here and
nowhere else."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["DEFAULT_URL", "ApiClient", "CliError", "Credentials", "credentials_from", "run_command"]

DEFAULT_URL = "http://127.0.0.1:5000"
PAGE_SIZE = 100


class CliError(Exception):
    """A one-line message for stderr, and the exit code (1: it failed; 2: the command is wrong)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Credentials:
    url: str
    username: str
    password: str
    source: str  # where the password came from, for error messages


def credentials_from(url: str | None, username: str | None, password: str | None) -> Credentials:
    """Command line first, then ``$SEAWALL_URL``/``$SEAWALL_USERNAME``/``$SEAWALL_PASSWORD``;
    the admin's password may also come from ``$SEAWALL_ADMIN_PASSWORD``."""
    env = os.environ
    url = (url or env.get("SEAWALL_URL") or DEFAULT_URL).rstrip("/")
    user = username or env.get("SEAWALL_USERNAME") or "admin"
    if password is not None:
        return Credentials(url, user, password, "--password")
    if env.get("SEAWALL_PASSWORD"):
        return Credentials(url, user, env["SEAWALL_PASSWORD"], "$SEAWALL_PASSWORD")
    if user == "admin" and env.get("SEAWALL_ADMIN_PASSWORD"):
        return Credentials(url, user, env["SEAWALL_ADMIN_PASSWORD"], "$SEAWALL_ADMIN_PASSWORD")
    return Credentials(url, user, "", "nowhere (no password given)")


class ApiClient:
    def __init__(self, creds: Credentials, transport: httpx.BaseTransport | None = None) -> None:
        self.creds = creds
        self.http = httpx.Client(
            base_url=f"{creds.url}/api/v2.0",
            auth=(creds.username, creds.password),
            timeout=httpx.Timeout(30.0, connect=5.0),
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kw)
        except httpx.ConnectError as e:
            raise CliError(
                f"cannot reach Seawall at {self.creds.url} ({e}); start it with `seawall serve`, "
                "or point --url or $SEAWALL_URL at the running server"
            ) from None
        except httpx.TimeoutException:
            raise CliError(f"Seawall at {self.creds.url} did not answer in time") from None
        except httpx.HTTPError as e:
            raise CliError(f"talking to Seawall at {self.creds.url} failed: {e}") from None
        if response.status_code >= 400:
            raise self._failure(method, path, response)
        return response

    def _failure(self, method: str, path: str, response: httpx.Response) -> CliError:
        c = self.creds
        if response.status_code == 401:
            hint = (
                "set --password, $SEAWALL_PASSWORD or $SEAWALL_ADMIN_PASSWORD"
                if not c.password
                else "check --username/--password or $SEAWALL_USERNAME/$SEAWALL_PASSWORD"
            )
            return CliError(
                f"{c.url} refused the credentials of user {c.username!r} "
                f"(password from {c.source}); {hint}"
            )
        if response.status_code == 403:
            return CliError(f"user {c.username!r} may read but not change anything: use an admin")
        return CliError(f"{method} {path}: {response.status_code} {error_message(response)}")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None).json()

    def all(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paged list."""
        page = 1
        while True:
            response = self.request(
                "GET", path, params={**params, "page": page, "page_size": PAGE_SIZE}
            )
            items = response.json()
            yield from items
            total = int(response.headers.get("X-Total-Count", "0") or 0)
            if len(items) < PAGE_SIZE or page * PAGE_SIZE >= total:
                return
            page += 1

    def create(self, path: str, body: dict[str, Any]) -> int:
        """POST ``body``; the new resource's id, from the Location header."""
        response = self.request("POST", path, json=body)
        location = response.headers.get("Location", "")
        try:
            return int(location.rstrip("/").rsplit("/", 1)[-1])
        except ValueError:
            raise CliError(
                f"POST {path}: the server sent no usable Location ({location!r})"
            ) from None

    def find(self, kind: str, path: str, name: str) -> dict[str, Any]:
        """The registry or policy called ``name`` (or, failing that, with that numeric id)."""
        if "," not in name:
            exact = "\\" + name if name[:1] in "~{[(\\" else name
            items = list(self.all(path, q=f"name={exact}"))
        else:
            items = list(self.all(path))
        for item in items:
            if item.get("name") == name:
                return item
        if name.isdigit():
            try:
                found: dict[str, Any] = self.get(f"{path}/{name}")
                return found
            except CliError:
                pass
        raise CliError(f"no {kind} named {name!r} (`seawall {kind} list` shows them)")


def error_message(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors)
    except (ValueError, AttributeError):
        return response.text[:300] or response.reason_phrase


def run_command(api: ApiClient, command: Callable[[], int]) -> int:
    """Run one CLI command against the API and close the client: its exit code, or one line on
    stderr for a :class:`CliError` (its code), an interrupt (130) or a reader gone from the pipe
    (``| head``: 0, nothing more said) — never a traceback."""
    try:
        code = command()
        sys.stdout.flush()  # a closed pipe (| head) shows here, not at exit
        return code
    except BrokenPipeError:  # the reader has gone: nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CliError as e:
        print(f"seawall: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("seawall: interrupted", file=sys.stderr)
        return 130
    finally:
        api.close()
