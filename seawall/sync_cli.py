"""``seawall sync SRC DST``: one run of the replication engine between two registries, no
server needed (like ``skopeo sync`` or regsync, with Seawall's planner and copier)."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.oneshot import SyncResult

__all__ = ["add_command", "run"]


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sync",
        help="copy everything under SRC to DST once (no server needed)",
        description="Replicate every repository under SRC (registry URL with an "
        "optional path prefix, or file:///DIR, a directory of OCI image layouts) to DST, "
        "digests preserved; skip what is identical.",
    )
    p.add_argument("src", help="e.g. http://127.0.0.1:5000/team")
    p.add_argument("dst", help="e.g. https://registry.example/mirror or file:///mnt/usb")
    p.add_argument("--src-type", default="", help="SRC's registry type (default: by URL)")
    p.add_argument("--dest-type", default="", help="DST's registry type (default: by URL)")
    p.add_argument("--src-creds", metavar="USER:PASSWORD", help="default: $SEAWALL_SRC_CREDS")
    p.add_argument("--dest-creds", metavar="USER:PASSWORD", help="default: $SEAWALL_DEST_CREDS")
    p.add_argument("--src-insecure", action="store_true", help="do not verify SRC's TLS")
    p.add_argument("--dest-insecure", action="store_true", help="do not verify DST's TLS")
    p.add_argument("--dry-run", action="store_true", help="show what would be copied/deleted")
    p.add_argument(
        "--deletion",
        action="store_true",
        help="delete at DST what this sync put there and is gone at SRC",
    )
    p.add_argument("--no-override", action="store_true", help="never overwrite a DST tag")
    p.add_argument(
        "--verify",
        action="store_true",
        help="check every DST tag's digest (default: trust what earlier runs wrote)",
    )
    p.add_argument("--jobs", type=int, default=8, help="artifacts copied at once (default 8)")
    p.add_argument("--state-dir", help="where the ledger lives (default: ~/.cache/seawall/sync/…)")
    p.add_argument("--quiet", "-q", action="store_true")


def _creds(value: str | None) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    user, _, password = value.partition(":")
    return user, password


def _env_creds(url: str, variable: str) -> str | None:
    return None if url.startswith("file:") else os.environ.get(variable)


def run(args: argparse.Namespace) -> int:
    import anyio

    from engine.oneshot import SyncSide, sync_once

    # a directory (file://) takes no credentials: the environment's are for registries
    su, sp = _creds(args.src_creds or _env_creds(args.src, "SEAWALL_SRC_CREDS"))
    du, dp = _creds(args.dest_creds or _env_creds(args.dst, "SEAWALL_DEST_CREDS"))
    src = SyncSide(args.src, su, sp, args.src_insecure, args.src_type)
    dst = SyncSide(args.dst, du, dp, args.dest_insecure, args.dest_type)
    key = hashlib.sha256(f"{args.src} {args.dst}".encode()).hexdigest()[:16]
    state = Path(args.state_dir or Path.home() / ".cache" / "seawall" / "sync" / key)

    async def once() -> SyncResult:
        return await sync_once(
            src,
            dst,
            state,
            dry_run=args.dry_run,
            deletion=args.deletion,
            override=not args.no_override,
            artifact_concurrency=max(1, args.jobs),
            verify=args.verify,
        )

    try:
        state.mkdir(parents=True, exist_ok=True)
        result = anyio.run(once, backend_options=_loop_options())
    except KeyboardInterrupt:
        print(
            f"seawall sync: interrupted; the next sync with the state in {state} resumes it",
            file=sys.stderr,
        )
        return 130
    except Exception as e:  # a clear one-line message, not a traceback
        print(f"seawall sync: {e}", file=sys.stderr)
        return 1
    if result.resumed and not args.quiet:
        print("resumed the interrupted run (its plan); run again to pick up later changes")
    if args.dry_run and not args.quiet:
        for t in result.tasks:
            if t.get("outcome") in ("would-copy", "would-delete"):
                print(f"{t['outcome']:13} {t.get('src_resource') or ''} -> {t['dst_resource']}")
    if not args.quiet or result.status != "Succeed":
        summary = ", ".join(f"{v} {k}" for k, v in sorted(result.counts.items())) or "nothing"
        print(
            f"{result.status}: {summary}; {result.bytes_copied / 2**20:.1f} MiB copied in "
            f"{result.seconds:.1f} s" + (f" ({result.status_text})" if result.status_text else "")
        )
        for t in result.tasks:
            if t.get("status") == "Failed":
                print(f"  failed: {t.get('dst_resource')}: {t.get('reason')}", file=sys.stderr)
    return 0 if result.status == "Succeed" else 1


def _loop_options() -> dict[str, bool]:
    """uvloop where it is installed (a dependency off Windows): less CPU per request."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}
