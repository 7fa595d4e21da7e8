"""The proxy-cache table (SQLModel, in the same database as the replication state).

    registry_endpoint ── proxy_cache     a namespace of this registry that pulls through
                                         from the endpoint (``registry.http.proxy_cache``)

The tags such a namespace has cached are the registry's (``registry.meta.models.ProxyTag``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer, String
from sqlmodel import Field, SQLModel

from registry.meta.models import utcnow

__all__ = ["ProxyCacheNamespace"]


class ProxyCacheNamespace(SQLModel, table=True):
    """A proxy-cache namespace: ``name`` is one repository path component; ``ttl_seconds`` how
    long a cached tag is served before one ``HEAD`` revalidates it."""

    __tablename__ = "proxy_cache"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(63), unique=True, nullable=False))
    registry_id: int = Field(
        sa_column=Column(Integer, ForeignKey("registry_endpoint.id"), nullable=False)
    )
    ttl_seconds: float = 3600.0
    creation_time: datetime = Field(default_factory=utcnow)
    update_time: datetime = Field(default_factory=utcnow)
