"""Region tables (SQLModel, in the same database as the replication state).

    registry_endpoint ── region          a declared replica of this logical registry
    region_check                          the latest check of each region (this Seawall's
                                          own included, under its region name) and which
                                          alerts are out

A region *is* a registry endpoint (as ``seawall registry add`` stores it): one region per
endpoint. This Seawall is a region too, but is not stored: its name is the setting
``dr.region_name``. ``region_check`` is keyed by region name (the self region has no
``region`` row); deleting a region deletes its check row in the same transaction.

Alert state (``unhealthy_alerted``, ``lag_alerted``) flips with a conditional ``UPDATE``, so
with several nodes checking, one transition sends one alert.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer, String, Text
from sqlmodel import Field, SQLModel

from registry.meta.models import utcnow

__all__ = ["Region", "RegionCheck"]


class Region(SQLModel, table=True):
    """A declared region. ``repositories_json``: explicit protected repositories (Harbor name
    globs, a JSON list), protected in addition to what the policies replicate there."""

    __tablename__ = "region"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(63), unique=True, nullable=False))
    registry_id: int = Field(
        sa_column=Column(Integer, ForeignKey("registry_endpoint.id"), unique=True, nullable=False)
    )
    description: str = ""
    repositories_json: str = Field(
        default="[]", sa_column=Column(Text, nullable=False, default="[]")
    )
    creation_time: datetime = Field(default_factory=utcnow)
    update_time: datetime = Field(default_factory=utcnow)


class RegionCheck(SQLModel, table=True):
    """The latest check of one region: its summary in columns, the whole result (the JSON of
    :class:`engine.regions.report.RegionResult`) in ``report_json``."""

    __tablename__ = "region_check"
    name: str = Field(primary_key=True, max_length=63)
    healthy: bool = False
    consistent: bool = False
    lag_seconds: float | None = None
    report_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    checked_at: datetime = Field(default_factory=utcnow)
    #: a REGION_UNHEALTHY alert went out and no REGION_RECOVERED since
    unhealthy_alerted: bool = False
    #: a REPLICATION_LAG alert went out and no REPLICATION_LAG_RECOVERED since
    lag_alerted: bool = False
