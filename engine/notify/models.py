"""Outgoing notifications: per-policy webhooks and the durable log of their deliveries.

    policy ── notify_webhook ── notify_delivery   (one row per event per webhook; every attempt
                                                   is appended to its ``history_json``)

Deleting a policy deletes its webhooks, and deleting a webhook deletes its deliveries
(``ON DELETE CASCADE``). A delivery is ``Pending`` until it is sent (``Success``) or gives up
(``Failed``); a node sending it holds a lease (``lease_owner`` / ``lease_expires``), so with a
shared database each delivery is sent by one node, and a dead node's lease simply expires.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from engine.notify.payloads import DR_EVENT_TYPES
from registry.meta.models import utcnow

__all__ = ["DELIVERY_STATUSES", "EVENT_TYPES", "FORMATS", "Delivery", "Webhook"]

FORMATS = ("default", "cloudevents")
# What a webhook can subscribe to (Seawall's names): run events, whose payload is Harbor's
# REPLICATION event, and the failover checks' alerts (engine.notify.payloads.render_dr).
EVENT_TYPES = (
    "REPLICATION_STARTED",
    "ARTIFACT_REPLICATED",
    "ARTIFACT_FAILED",
    "REPLICATION_FINISHED",
    "REPLICATION_FAILED",
    *DR_EVENT_TYPES,
)
DELIVERY_STATUSES = ("Pending", "Success", "Failed")


class Webhook(SQLModel, table=True):
    """Where a policy's events go. The ``Authorization`` header sent with them is stored
    sealed in ``auth_header_encrypted`` (like endpoint secrets, :mod:`engine.state.secrets`)
    and never returned by the API; ``auth_header`` holds it in clear only in rows written before
    sealing (read as they are, sealed when the notifier starts)."""

    __tablename__ = "notify_webhook"
    __table_args__ = (UniqueConstraint("policy_id", "name", name="uq_notify_webhook_name"),)
    id: int | None = Field(default=None, primary_key=True)
    policy_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("policy.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    name: str = Field(sa_column=Column(String(255), nullable=False))
    description: str = ""
    address: str = Field(sa_column=Column(Text, nullable=False))
    format: str = Field(default="default", max_length=16)  # default | cloudevents
    auth_header: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    auth_header_encrypted: str = Field(
        default="", sa_column=Column(Text, nullable=False, default="")
    )
    event_types_json: str = json.dumps(list(EVENT_TYPES))
    enabled: bool = True
    skip_cert_verify: bool = False
    creator: str = ""
    creation_time: datetime = Field(default_factory=utcnow)
    update_time: datetime = Field(default_factory=utcnow)


class Delivery(SQLModel, table=True):
    """One event for one webhook, and what happened each time Seawall tried to send it.

    ``payload_json`` is the body exactly as sent (rendered when the event happened, so retries
    send the same bytes and the same CloudEvents ``id``); ``format`` decides its Content-Type.
    ``history_json``: a list of ``{"time", "http_status", "error", "duration_ms"}``, one per
    attempt.
    """

    __tablename__ = "notify_delivery"
    __table_args__ = (
        Index("ix_notify_delivery_due", "status", "next_attempt_at"),
        Index("ix_notify_delivery_webhook", "webhook_id", "id"),
        Index("ix_notify_delivery_policy", "policy_id", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    webhook_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("notify_webhook.id", ondelete="CASCADE"), nullable=False
        )
    )
    policy_id: int
    execution_id: int | None = None
    event_type: str = Field(max_length=32)  # one of EVENT_TYPES, or TEST
    event: str = Field(default="", max_length=32)  # run_started, artifact_replicated, …
    format: str = Field(default="default", max_length=16)
    payload_json: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="Pending", max_length=16)
    attempts: int = 0
    last_http_status: int | None = None
    last_error: str = ""
    history_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    next_attempt_at: datetime = Field(default_factory=utcnow)
    lease_owner: str | None = Field(default=None, max_length=160)
    lease_expires: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
