"""Outgoing notifications: per-policy webhooks on replication events, with retries and a
delivery log. :class:`Notifier` is the run observer and the delivery loop; ``models`` the
tables (imported here so that ``create_all`` creates them wherever the notifier is used)."""

from engine.notify import models as _notify_models  # noqa: F401 - registers the tables
from engine.notify.models import DELIVERY_STATUSES, EVENT_TYPES, FORMATS, Delivery, Webhook
from engine.notify.notifier import Notifier, NotifySettings

__all__ = [
    "DELIVERY_STATUSES",
    "EVENT_TYPES",
    "FORMATS",
    "Delivery",
    "Notifier",
    "NotifySettings",
    "Webhook",
]
