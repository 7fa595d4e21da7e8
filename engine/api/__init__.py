"""Seawall's management REST API: Harbor v2.0's replication endpoints under ``/api/v2.0``.

    app.py          routing, access rules (HTTP Basic; admin for changes), the error boundary
    errors.py       the error table and the one place exceptions become responses
    paging.py       page/page_size, q, sort; X-Total-Count and Link
    wire.py         reading JSON bodies field by field; RFC 3339 times
    system.py       /ping, /systeminfo
    registries.py   /registries…, /replication/adapters, /replication/adapterinfos
    policies.py     /replication/policies… (policy_fields.py: filters, cron, timezone checks)
    executions.py   /replication/executions… and their tasks and logs
    regions.py      /regions…, /dr/check (failover checks)

Wire it with ``create_api(ApiContext(...))`` as the registry app's ``fallback``.
"""

from engine.api.app import create_api
from engine.api.context import ApiContext, EndpointSpec

__all__ = ["ApiContext", "EndpointSpec", "create_api"]
