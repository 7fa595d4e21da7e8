"""The tags of proxy-cache namespaces (:class:`ProxyTagStore`, table ``proxy_tag``): per
repository and tag, the digest the upstream named last and when it last vouched for it.

Durable, so a restarted Seawall still serves a cached tag while its upstream is down
(stale-if-error, :mod:`registry.http.proxy_cache`). Separate from ``tag``: nothing here is a
client's write — no outbox event, no origin, no tombstone — and the content it names is stored
by digest like any read-through (``ContentStore.put_fetched_manifest``). Times are seconds since
the epoch on the caller's clock (injected: tests age a tag without sleeping).
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.meta.sql import SqlBackend, Tx

__all__ = ["ProxyTagRecord", "ProxyTagStore"]

_UPSERT = (
    "INSERT INTO proxy_tag (repository, name, digest, validated_at) "
    "VALUES (:repo, :tag, :digest, :at) ON CONFLICT (repository, name) "
    "DO UPDATE SET digest = excluded.digest, validated_at = excluded.validated_at"
)


@dataclass(frozen=True, slots=True)
class ProxyTagRecord:
    digest: str
    validated_at: float  # seconds since the epoch when the upstream last named ``digest``


class ProxyTagStore:
    def __init__(self, sql: SqlBackend) -> None:
        self.sql = sql
        self._collate = ' COLLATE "C"' if sql.dialect == "postgresql" else ""

    async def get(self, repo: str, tag: str) -> ProxyTagRecord | None:
        row = await self.sql.one(
            "SELECT digest, validated_at FROM proxy_tag WHERE repository = :repo AND name = :tag",
            repo=repo,
            tag=tag,
        )
        return None if row is None else ProxyTagRecord(str(row[0]), float(row[1]))

    async def put(self, repo: str, tag: str, digest: str, validated_at: float) -> None:
        """``repo:tag`` names ``digest``, as the upstream said at ``validated_at``."""

        def tx(t: Tx) -> None:
            t.execute(_UPSERT, repo=repo, tag=tag, digest=digest, at=validated_at)

        await self.sql.write(tx)

    async def drop(self, repo: str, tag: str) -> None:
        """Forget ``repo:tag`` (the upstream says it is gone)."""

        def tx(t: Tx) -> None:
            t.execute(
                "DELETE FROM proxy_tag WHERE repository = :repo AND name = :tag", repo=repo, tag=tag
            )

        await self.sql.write(tx)

    async def list_tags(self, repo: str, n: int | None, last: str | None) -> list[str] | None:
        """The cached tags of ``repo`` after ``last``, in byte order, at most ``n`` (None: all);
        None when none is cached at all."""
        query = (
            f"SELECT name FROM proxy_tag WHERE repository = :repo AND name{self._collate} > :last "
            f"ORDER BY name{self._collate}"
        )
        if n is not None:
            query += f" LIMIT {int(n)}"
        rows = await self.sql.all(query, repo=repo, last=last or "")
        names = [str(r[0]) for r in rows]
        if not names and (last is None or await self._empty(repo)):
            return None
        return names

    async def _empty(self, repo: str) -> bool:
        row = await self.sql.one("SELECT 1 FROM proxy_tag WHERE repository = :repo", repo=repo)
        return row is None

    async def count(self) -> int:
        row = await self.sql.one("SELECT COUNT(*) FROM proxy_tag")
        return 0 if row is None else int(row[0])
