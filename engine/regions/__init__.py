"""Regions of one logical registry, and the failover checks over them.

    report.py       what a check finds (values, JSON; the canary namespace, name rules)
    models.py       tables: region (a declared replica = a registry endpoint), region_check
    store.py        reading and writing them
    canary.py       a region's health: reachable, authenticated, canary push → pull
    consistency.py  protected repositories and the comparison (missing, differs, extra)
    rpo.py          replication lag per region (from engine.lag)
    alerts.py       recording results; one alert per transition through engine.notify
    checks.py       DrChecker: all of it, per region at once

This Seawall is a region too (its name: setting ``dr.region_name``); it is not stored.
Nothing is imported here, so that :mod:`engine.regions.report` stays cheap to import (the
settings use its name rule); import the tables with ``import engine.regions.models``.
"""
