"""CLI commands that drive replication through the management API (being written)."""

from __future__ import annotations

import argparse

COMMANDS: tuple[str, ...] = ()


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    return None


def run(args: argparse.Namespace) -> int:
    return 2
