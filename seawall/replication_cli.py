"""``seawall registry|policy|replicate|execution``: replication through the management API.

Every command talks to a running Seawall (``--url`` or ``$SEAWALL_URL``, default
http://127.0.0.1:5000) as ``--username``/``--password`` (or ``$SEAWALL_USERNAME`` /
``$SEAWALL_PASSWORD``; user ``admin`` with ``$SEAWALL_ADMIN_PASSWORD`` by default). The remote
registry's own credentials, in ``registry add``, are ``--access-key``/``--access-secret``
(Harbor's names), so they never clash with the API's.

Filters (``policy add --filter``, repeatable, ANDed): ``KIND=[SYNTAX:]VALUE`` to match,
``KIND!=[SYNTAX:]VALUE`` to exclude; KIND is name, tag, label or resource; SYNTAX is glob (the
default, Harbor's), regex or semver (tags). E.g. ``name=library/**``, ``tag=semver:>=1.2 <2``,
``tag!=regex:.*-rc``, ``label=prod,eu``.

Exit codes: 0 done (``replicate --wait``: the run succeeded); 1 it failed (or the run failed or
was stopped); 2 the command line is wrong.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from seawall.replication_client import ApiClient, CliError, credentials_from, run_command
from seawall.replication_output import (
    deletion_text,
    delivery_row,
    format_filter,
    plan_table,
    print_json,
    progress_line,
    side_name,
    table,
    webhook_row,
)

__all__ = ["COMMANDS", "add_commands", "parse_filter", "run"]

COMMANDS: tuple[str, ...] = ("registry", "policy", "replicate", "execution")
_FILTER = re.compile(
    r"^(name|tag|label|resource|artifact_type)(!=|=)(?:(glob|regex|semver):)?(.*)$", re.S
)
_SYNTAX_LIKE = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*):")
REGISTRIES, POLICIES, EXECUTIONS = "/registries", "/replication/policies", "/replication/executions"
EVENTS = (  # what a webhook subscribes to (the server checks)
    "REPLICATION_STARTED",
    "ARTIFACT_REPLICATED",
    "ARTIFACT_FAILED",
    "REPLICATION_FINISHED",
    "REPLICATION_FAILED",
    "REGION_UNHEALTHY",
    "REGION_RECOVERED",
    "REPLICATION_LAG",
    "REPLICATION_LAG_RECOVERED",
)


def parse_filter(text: str) -> dict[str, Any]:
    """``tag!=regex:.*-rc`` → ``{"type": "tag", "decoration": "excludes", "syntax": "regex",
    "value": ".*-rc"}``. :raises CliError: (exit 2) when it does not parse."""
    m = _FILTER.match(text)
    if m is None:
        raise CliError(
            f"--filter {text!r}: write KIND=VALUE or KIND!=VALUE, KIND one of name, tag, label, "
            "resource, artifact_type, VALUE optionally prefixed glob:, regex: or semver:",
            exit_code=2,
        )
    kind, op, syntax, value = m.groups()
    unknown = _SYNTAX_LIKE.match(value) if syntax is None and kind in ("name", "tag") else None
    if unknown is not None:  # names and tags never hold ":": a misspelt syntax, not a glob
        raise CliError(
            f"--filter {text!r}: {unknown[1]!r} is not a syntax; prefix the value with glob:, "
            "regex: or semver: (or nothing, for a glob)",
            exit_code=2,
        )
    out: dict[str, Any] = {
        "type": kind,
        "decoration": "excludes" if op == "!=" else "matches",
        "syntax": syntax or "glob",
        "value": [v.strip() for v in value.split(",") if v.strip()]
        if kind in ("label", "artifact_type")
        else value,
    }
    return out


# ---------------------------------------------------------------------------- parser
def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    conn = argparse.ArgumentParser(add_help=False)
    g = conn.add_argument_group("connection")
    g.add_argument("--url", help="Seawall's URL (default: $SEAWALL_URL or http://127.0.0.1:5000)")
    g.add_argument("--username", help="API user (default: $SEAWALL_USERNAME or admin)")
    g.add_argument("--password", help="API password (default: $SEAWALL_PASSWORD)")

    def group(name: str, help_text: str) -> Any:
        return sub.add_parser(name, help=help_text).add_subparsers(dest="action", required=True)

    reg = group("registry", "manage the registry endpoints replication talks to")
    add = reg.add_parser(
        "add",
        parents=[conn],
        help="add a registry endpoint",
        epilog="Provider settings go as their own flags, e.g. --region eu-west-1 --role-arn ARN "
        "for aws-ecr (or --option NAME=VALUE); 'seawall registry types' lists each type's.",
    )
    add.add_argument("name")
    add.add_argument(
        "--type", required=True, help="adapter, e.g. docker-registry, aws-ecr, azure-acr"
    )
    add.add_argument("--registry-url", dest="endpoint", required=True, help="the registry's URL")
    add.add_argument("--access-key", "--registry-username", dest="access_key", default="")
    add.add_argument(
        "--access-secret",
        "--registry-password",
        dest="access_secret",
        default="",
        help="the registry's password or token ('-' reads it from stdin)",
    )
    add.add_argument("--credential-type", choices=("basic", "oauth"), default="basic")
    add.add_argument("--insecure", action="store_true", help="do not verify its TLS certificate")
    add.add_argument("--description", default="")
    add.add_argument(
        "--webhook-secret",
        default="",
        help="secret (>= 16 characters) its push notifications must carry to trigger event_based "
        "pull policies at POST /api/v2.0/registries/ID/webhook",
    )
    add.add_argument("--no-ping", action="store_true", help="do not check it after adding")
    add.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a provider setting (repeatable); same as --NAME VALUE",
    )
    reg.add_parser("list", parents=[conn], help="list registry endpoints")
    reg.add_parser("types", parents=[conn], help="list registry types and their settings")
    for action, text in (("ping", "check an endpoint's health"), ("delete", "delete an endpoint")):
        reg.add_parser(action, parents=[conn], help=text).add_argument("name")

    pol = group("policy", "manage replication policies")
    padd = pol.add_parser("add", parents=[conn], help="add a replication policy")
    padd.add_argument("name")
    padd.add_argument("--src-registry", help="pull from this endpoint (default: local registry)")
    padd.add_argument("--dest-registry", help="push to this endpoint (default: local registry)")
    padd.add_argument("--dest-namespace", default="")
    padd.add_argument("--replace-count", type=int, help="namespace components to replace (-1)")
    padd.add_argument("--filter", action="append", default=[], metavar="KIND[!]=[SYNTAX:]VALUE")
    padd.add_argument("--deletion", action="store_true", help="delete what disappears at source")
    padd.add_argument("--no-override", action="store_true", help="never overwrite at destination")
    padd.add_argument(
        "--trigger",
        choices=("manual", "scheduled", "event_based"),
        help="what starts a run (default: scheduled with --cron, else manual)",
    )
    padd.add_argument("--cron", help="schedule (6 fields, as Harbor) for --trigger scheduled")
    padd.add_argument("--timezone", help="time zone of --cron (default UTC)")
    padd.add_argument("--description", default="")
    padd.add_argument("--disabled", action="store_true")
    padd.add_argument("--single-active", action="store_true", help="skip a run while one runs")
    padd.add_argument("--bandwidth", type=int, metavar="BYTES_PER_SECOND", help="speed limit")
    _policy_update_command(pol, conn)
    for action in ("list", "show", "delete"):
        p = pol.add_parser(action, parents=[conn], help=f"{action} replication policies")
        if action != "list":
            p.add_argument("name")
        if action != "delete":
            p.add_argument("--json", action="store_true", help="print the API's JSON")
    _webhook_commands(pol, conn)

    rep = sub.add_parser("replicate", parents=[conn], help="start a run of a replication policy")
    rep.add_argument("policy")
    rep.add_argument("--dry-run", action="store_true", help="plan only: show what would change")
    rep.add_argument("--wait", action="store_true", help="follow the run until it ends")

    ex = group("execution", "follow and stop replication runs")
    exl = ex.add_parser("list", parents=[conn], help="list runs")
    exl.add_argument("--policy")
    ex.add_parser("stop", parents=[conn], help="stop a run").add_argument("id", type=int)
    ex.add_parser("tasks", parents=[conn], help="a run's tasks").add_argument("id", type=int)
    log = ex.add_parser("log", parents=[conn], help="a task's log")
    log.add_argument("id", type=int)
    log.add_argument("task_id", type=int)


def _policy_update_command(pol: Any, conn: argparse.ArgumentParser) -> None:
    up = pol.add_parser("update", parents=[conn], help="change a policy (only what is given)")
    up.add_argument("name")
    up.add_argument("--max-deletions", type=int, help="the deletion guard: at most N per run")
    up.add_argument(
        "--max-deletion-fraction", type=float, help="the deletion guard: at most this share"
    )
    up.add_argument(
        "--filter",
        action="append",
        metavar="KIND[!]=[SYNTAX:]VALUE",
        help="replaces the policy's filters (repeatable)",
    )
    up.add_argument("--trigger", choices=("manual", "scheduled", "event_based"))
    up.add_argument("--cron", help="schedule (6 fields, as Harbor); implies --trigger scheduled")
    up.add_argument("--timezone", help="time zone of --cron")
    up.add_argument("--description")
    on_off = up.add_mutually_exclusive_group()
    on_off.add_argument("--enable", dest="enabled", action="store_const", const=True)
    on_off.add_argument("--disable", dest="enabled", action="store_const", const=False)
    deletion = up.add_mutually_exclusive_group()
    deletion.add_argument("--deletion", dest="deletion", action="store_const", const=True)
    deletion.add_argument("--no-deletion", dest="deletion", action="store_const", const=False)


def _webhook_commands(pol: Any, conn: argparse.ArgumentParser) -> None:
    hook = pol.add_parser("webhook", help="a policy's outgoing webhooks (run events)")
    hooks = hook.add_subparsers(dest="webhook_action", required=True)
    wadd = hooks.add_parser("add", parents=[conn], help="send a policy's run events to a URL")
    wadd.add_argument("policy")
    wadd.add_argument(
        "--address",
        "--webhook-url",
        dest="address",
        required=True,
        help="the receiver's http(s) URL (--url is Seawall's own URL)",
    )
    wadd.add_argument("--name", help="the webhook's name (default: the address' host)")
    wadd.add_argument("--format", choices=("default", "cloudevents"), default="default")
    wadd.add_argument(
        "--auth-header",
        default="",
        metavar="VALUE",
        help="sent as the Authorization header, e.g. 'Bearer …' ('-' reads it from stdin)",
    )
    wadd.add_argument(
        "--event",
        action="append",
        default=[],
        metavar="TYPE",
        help=f"subscribe to this event type (repeatable; default all): {', '.join(EVENTS)}",
    )
    wadd.add_argument("--skip-cert-verify", action="store_true", help="accept any certificate")
    wadd.add_argument("--disabled", action="store_true")
    wadd.add_argument("--description", default="")
    wlist = hooks.add_parser("list", parents=[conn], help="list a policy's webhooks")
    wlist.add_argument("policy")
    wlist.add_argument("--json", action="store_true", help="print the API's JSON")
    for action, text in (("rm", "remove a webhook"), ("test", "send a test event")):
        p = hooks.add_parser(action, parents=[conn], help=text)
        p.add_argument("policy")
        p.add_argument("webhook", help="the webhook's id or name")

    dl = pol.add_parser("deliveries", parents=[conn], help="a policy's webhook delivery log")
    dl.add_argument("policy")
    dl.add_argument("--webhook", help="only this webhook (id or name)")
    dl.add_argument("--status", choices=("Pending", "Success", "Failed"))
    dl.add_argument("--limit", type=int, default=50, help="newest N deliveries (default 50)")
    dl.add_argument("--json", action="store_true", help="print the API's JSON")


# ---------------------------------------------------------------------------- commands
def run(args: argparse.Namespace, transport: httpx.BaseTransport | None = None) -> int:
    creds = credentials_from(args.url, args.username, args.password)
    api = ApiClient(creds, transport)
    handler = _HANDLERS[(args.command, getattr(args, "action", None))]
    return run_command(api, lambda: handler(api, args))


def _registry_add(api: ApiClient, args: argparse.Namespace) -> int:
    secret = sys.stdin.readline().rstrip("\n") if args.access_secret == "-" else args.access_secret
    body = {
        "name": args.name,
        "type": args.type,
        "url": args.endpoint,
        "description": args.description,
        "insecure": args.insecure,
        "credential": {
            "type": args.credential_type,
            "access_key": args.access_key,
            "access_secret": secret,
        },
    }
    if args.webhook_secret:
        body["webhook_secret"] = args.webhook_secret
    options = dict(getattr(args, "provider_options", {}))
    for item in args.option:
        name, eq, value = item.partition("=")
        if not eq:
            raise CliError(f"--option {item!r}: write NAME=VALUE", exit_code=2)
        options[name.strip().replace("-", "_")] = value
    if options:
        body["options"] = options
    if not args.no_ping and not _healthy_before_adding(api, args.name, body):
        return 1
    new_id = api.create(REGISTRIES, body)
    print(f"added registry {args.name} (id {new_id})")
    if args.webhook_secret:
        print(f"its webhook: POST {api.creds.url}/api/v2.0/registries/{new_id}/webhook")
    if not args.no_ping:  # records its health (status) now that it is stored
        return _ping(api, args.name, new_id)
    return 0


def _healthy_before_adding(api: ApiClient, name: str, body: dict[str, Any]) -> bool:
    """Ping an endpoint not stored yet: an unhealthy one is not saved (a typo in the URL or
    the credentials should not become a stored endpoint)."""
    cred = body["credential"]
    spec = {
        "type": body["type"],
        "url": body["url"],
        "insecure": body["insecure"],
        "credential_type": cred["type"],
        "access_key": cred["access_key"],
        "access_secret": cred["access_secret"],
        **({"options": body["options"]} if "options" in body else {}),
    }
    try:
        api.request("POST", f"{REGISTRIES}/ping", json=spec)
    except CliError as e:
        if "the registry is unhealthy" not in str(e):  # a bad request: said as any error
            raise
        print(
            f"seawall: {name} is unhealthy: {e}; not added (fix it, or add --no-ping to save "
            "it anyway)",
            file=sys.stderr,
        )
        return False
    return True


def provider_options(extra: Sequence[str]) -> dict[str, str]:
    """Flags ``registry add`` does not know, as provider settings: ``--role-arn ARN`` and
    ``--role-arn=ARN`` give ``role_arn``; a flag with no value (``--scan-on-push``) is
    ``"true"``. The server checks them against the type's settings.

    :raises CliError: (exit 2) a word that is not such a flag.
    """
    out: dict[str, str] = {}
    words = list(extra)
    while words:
        word = words.pop(0)
        flag, eq, value = word.partition("=")
        name = flag[2:]
        if not flag.startswith("--") or not re.fullmatch(r"[a-z][a-z0-9-]{0,39}", name):
            raise CliError(f"unrecognized argument {word!r}", exit_code=2)
        if not eq:
            value = words.pop(0) if words and not words[0].startswith("--") else "true"
        out[name.replace("-", "_")] = value
    return out


def _registry_types(api: ApiClient, args: argparse.Namespace) -> int:
    types = api.request("GET", "/replication/adapters").json()
    infos = api.request("GET", "/replication/adapterinfos").json()
    for name in types:
        print(name)
        for option in (infos.get(name) or {}).get("options") or []:
            flag = "--" + option["name"].replace("_", "-")
            need = " (required)" if option.get("required") else ""
            choices = f" [{'|'.join(option['choices'])}]" if option.get("choices") else ""
            print(f"  {flag}{choices}{need}: {option['help']}")
    return 0


def _ping(api: ApiClient, name: str, registry_id: int) -> int:
    try:
        api.request("POST", f"{REGISTRIES}/ping", json={"id": registry_id})
    except CliError as e:
        print(f"seawall: {name} is unhealthy: {e}", file=sys.stderr)
        return 1
    print(f"{name} is healthy")
    return 0


def _registry_list(api: ApiClient, args: argparse.Namespace) -> int:
    rows = [
        [str(r["id"]), r["name"], r["type"], r["url"], r.get("status") or ""]
        for r in api.all(REGISTRIES)
    ]
    table(["ID", "NAME", "TYPE", "URL", "STATUS"], rows)
    return 0


def _registry_ping(api: ApiClient, args: argparse.Namespace) -> int:
    found = api.find("registry", REGISTRIES, args.name)
    return _ping(api, found["name"], int(found["id"]))


def _registry_delete(api: ApiClient, args: argparse.Namespace) -> int:
    found = api.find("registry", REGISTRIES, args.name)
    api.request("DELETE", f"{REGISTRIES}/{found['id']}")
    print(f"deleted registry {found['name']}")
    return 0


def _policy_update(api: ApiClient, args: argparse.Namespace) -> int:
    found = api.find("policy", POLICIES, args.name)
    body: dict[str, Any] = {
        k: v
        for k, v in (
            ("max_deletions", args.max_deletions),
            ("max_deletion_fraction", args.max_deletion_fraction),
            ("description", args.description),
            ("enabled", args.enabled),
            ("deletion", args.deletion),
        )
        if v is not None
    }
    if args.filter is not None:
        body["filters"] = [parse_filter(f) for f in args.filter]
    if args.trigger or args.cron:
        trigger = args.trigger or "scheduled"
        if args.cron and trigger != "scheduled":
            raise CliError(f"--cron applies to --trigger scheduled, not {trigger}", exit_code=2)
        settings = {"cron": args.cron or ""}
        if args.timezone:
            settings["timezone"] = args.timezone
        body["trigger"] = {"type": trigger, "trigger_settings": settings}
    if not body:
        raise CliError("policy update: give at least one setting to change", exit_code=2)
    api.request("PUT", f"{POLICIES}/{found['id']}", json=body)
    print(f"updated policy {found['name']}: {', '.join(sorted(body))}")
    return 0


def _policy_add(api: ApiClient, args: argparse.Namespace) -> int:
    if not args.src_registry and not args.dest_registry:
        raise CliError("policy add needs --src-registry or --dest-registry", exit_code=2)
    args.trigger = args.trigger or ("scheduled" if args.cron else "manual")
    if args.trigger == "scheduled" and not args.cron:
        raise CliError("--trigger scheduled needs --cron", exit_code=2)
    if args.cron and args.trigger != "scheduled":
        raise CliError(f"--cron applies to --trigger scheduled, not {args.trigger}", exit_code=2)
    filters = [parse_filter(f) for f in args.filter]

    def ref(name: str | None) -> dict[str, Any] | None:
        return {"id": api.find("registry", REGISTRIES, name)["id"]} if name else None

    settings: dict[str, Any] = {"cron": args.cron or ""}
    if args.timezone:
        settings["timezone"] = args.timezone
    body: dict[str, Any] = {
        "name": args.name,
        "description": args.description,
        "src_registry": ref(args.src_registry),
        "dest_registry": ref(args.dest_registry),
        "dest_namespace": args.dest_namespace,
        "filters": filters,
        "trigger": {"type": args.trigger, "trigger_settings": settings},
        "deletion": args.deletion,
        "override": not args.no_override,
        "enabled": not args.disabled,
        "single_active_replication": args.single_active,
    }
    if args.replace_count is not None:
        body["dest_namespace_replace_count"] = args.replace_count
    if args.bandwidth is not None:
        body["speed_bytes_per_second"] = args.bandwidth
    new_id = api.create(POLICIES, body)
    print(f"added policy {args.name} (id {new_id})")
    return 0


def _policy_list(api: ApiClient, args: argparse.Namespace) -> int:
    policies = list(api.all(POLICIES))
    if args.json:
        return print_json(policies)
    rows = [
        [
            str(p["id"]),
            p["name"],
            f"{side_name(p.get('src_registry'))} -> {side_name(p.get('dest_registry'))}",
            (p.get("trigger") or {}).get("type", ""),
            "yes" if p.get("enabled") else "no",
        ]
        for p in policies
    ]
    table(["ID", "NAME", "DIRECTION", "TRIGGER", "ENABLED"], rows)
    return 0


def _policy_show(api: ApiClient, args: argparse.Namespace) -> int:
    p = api.find("policy", POLICIES, args.name)
    if args.json:
        return print_json(p)
    trigger = p.get("trigger") or {}
    settings = trigger.get("trigger_settings") or {}
    when = trigger.get("type", "manual")
    if when == "scheduled":
        when += f" ({settings.get('cron')} {settings.get('timezone') or 'UTC'})"
    speed = p.get("speed_bytes_per_second") or -1
    lines = [
        ("name", f"{p['name']} (id {p['id']})"),
        ("description", p.get("description") or ""),
        ("source", side_name(p.get("src_registry"))),
        ("destination", side_name(p.get("dest_registry"))),
        ("namespace", f"{p.get('dest_namespace') or '(kept)'}"),
        ("replace count", str(p.get("dest_namespace_replace_count"))),
        ("filters", "; ".join(format_filter(f) for f in p.get("filters") or []) or "(all)"),
        ("trigger", when),
        ("enabled", "yes" if p.get("enabled") else "no"),
        ("override", "yes" if p.get("override") else "no"),
        ("deletion", deletion_text(p)),
        ("bandwidth", f"{speed} bytes/s" if speed > 0 else "unlimited"),
        ("single active", "yes" if p.get("single_active_replication") else "no"),
    ]
    for key, value in lines:
        print(f"{key + ':':15}{value}")
    return 0


def _policy_delete(api: ApiClient, args: argparse.Namespace) -> int:
    p = api.find("policy", POLICIES, args.name)
    api.request("DELETE", f"{POLICIES}/{p['id']}")
    print(f"deleted policy {p['name']}")
    return 0


def _replicate(api: ApiClient, args: argparse.Namespace) -> int:
    p = api.find("policy", POLICIES, args.policy)
    eid = api.create(EXECUTIONS, {"policy_id": p["id"], "dry_run": args.dry_run})
    kind = "dry run" if args.dry_run else "run"
    print(f"started {kind} {eid} of policy {p['name']}", flush=True)
    if not args.wait:
        print(f"follow it with `seawall execution tasks {eid}`")
        return 0
    try:
        execution = _follow(api, eid)
    except KeyboardInterrupt:
        print(f"\nstill running; stop it with `seawall execution stop {eid}`", file=sys.stderr)
        return 130
    if args.dry_run:
        plan_table(list(api.all(f"{EXECUTIONS}/{eid}/tasks")))
    if execution.get("status_text"):
        print(execution["status_text"])
    return 0 if execution["status"] == "Succeed" else 1


def _follow(api: ApiClient, eid: int, refresh_seconds: float = 1.0) -> dict[str, Any]:
    """Show the run's progress until it ends: each GET answers at the end of the run or after
    ``refresh_seconds`` (the API's ``?wait=``), so the end is seen at once."""
    tty = sys.stdout.isatty()
    last = ""
    wait = 0.0  # the first line at once
    while True:
        asked = time.monotonic()
        execution: dict[str, Any] = api.get(f"{EXECUTIONS}/{eid}", wait=wait)
        line = progress_line(execution)
        if tty:
            print(f"\r\x1b[2K{line}", end="", flush=True)
        elif line != last:
            print(line, flush=True)
        last = line
        if execution["status"] not in ("InProgress", "Pending"):
            if tty:
                print()
            return execution
        # a server without ?wait= (an older Seawall) answers at once: pace the loop anyway
        time.sleep(max(0.0, wait - (time.monotonic() - asked)))
        wait = refresh_seconds


def _execution_list(api: ApiClient, args: argparse.Namespace) -> int:
    params = {}
    if args.policy:
        params["policy_id"] = api.find("policy", POLICIES, args.policy)["id"]
    rows = [
        [str(e["id"]), str(e["policy_id"]), e["status"], e["trigger"], e.get("start_time") or "",
         f"{e.get('succeed', 0)}/{e.get('total', 0)}", "yes" if e.get("dry_run") else ""]
        for e in api.all(EXECUTIONS, **params)
    ]  # fmt: skip
    table(["ID", "POLICY", "STATUS", "TRIGGER", "STARTED", "DONE", "DRY RUN"], rows)
    return 0


def _execution_stop(api: ApiClient, args: argparse.Namespace) -> int:
    api.request("PUT", f"{EXECUTIONS}/{args.id}")
    print(f"asked execution {args.id} to stop")
    return 0


def _execution_tasks(api: ApiClient, args: argparse.Namespace) -> int:
    rows = [
        [str(t["id"]), t["operation"], t["status"], t.get("outcome") or "",
         t.get("src_resource") or "-", t.get("dst_resource") or "-", t.get("reason") or ""]
        for t in api.all(f"{EXECUTIONS}/{args.id}/tasks")
    ]  # fmt: skip
    table(["ID", "OPERATION", "STATUS", "OUTCOME", "SOURCE", "DESTINATION", "REASON"], rows)
    return 0


def _execution_log(api: ApiClient, args: argparse.Namespace) -> int:
    text = api.request("GET", f"{EXECUTIONS}/{args.id}/tasks/{args.task_id}/log").text
    print(text, end="" if text.endswith("\n") or not text else "\n")
    return 0


def _webhook(api: ApiClient, args: argparse.Namespace) -> int:
    handler = _WEBHOOK_HANDLERS[args.webhook_action]
    return handler(api, args)


def _find_webhook(api: ApiClient, policy: dict[str, Any], ref: str) -> dict[str, Any]:
    hooks = list(api.all(f"{POLICIES}/{policy['id']}/webhooks"))
    for h in hooks:
        if h["name"] == ref:
            return h
    for h in hooks:
        if ref.isdigit() and h["id"] == int(ref):
            return h
    raise CliError(
        f"policy {policy['name']} has no webhook {ref!r} "
        f"(`seawall policy webhook list {policy['name']}` shows them)"
    )


def _webhook_add(api: ApiClient, args: argparse.Namespace) -> int:
    p = api.find("policy", POLICIES, args.policy)
    auth = sys.stdin.readline().rstrip("\n") if args.auth_header == "-" else args.auth_header
    name = args.name or urlsplit(args.address).hostname or args.address
    body: dict[str, Any] = {
        "name": name,
        "address": args.address,
        "format": args.format,
        "auth_header": auth,
        "enabled": not args.disabled,
        "skip_cert_verify": args.skip_cert_verify,
        "description": args.description,
    }
    if args.event:
        body["event_types"] = [e.upper() for e in args.event]
    new_id = api.create(f"{POLICIES}/{p['id']}/webhooks", body)
    print(f"added webhook {name} (id {new_id}) to policy {p['name']}")
    return 0


def _webhook_list(api: ApiClient, args: argparse.Namespace) -> int:
    p = api.find("policy", POLICIES, args.policy)
    hooks = list(api.all(f"{POLICIES}/{p['id']}/webhooks"))
    if args.json:
        return print_json(hooks)
    table(
        ["ID", "NAME", "FORMAT", "EVENTS", "AUTH", "ENABLED", "ADDRESS"],
        [webhook_row(h) for h in hooks],
    )
    return 0


def _webhook_rm(api: ApiClient, args: argparse.Namespace) -> int:
    p = api.find("policy", POLICIES, args.policy)
    h = _find_webhook(api, p, args.webhook)
    api.request("DELETE", f"{POLICIES}/{p['id']}/webhooks/{h['id']}")
    print(f"removed webhook {h['name']} (id {h['id']}) from policy {p['name']}")
    return 0


def _webhook_test(api: ApiClient, args: argparse.Namespace) -> int:
    p = api.find("policy", POLICIES, args.policy)
    h = _find_webhook(api, p, args.webhook)
    delivery_id = api.create(f"{POLICIES}/{p['id']}/webhooks/{h['id']}/test", {})
    print(
        f"queued test delivery {delivery_id} to {h['address']}; "
        f"`seawall policy deliveries {p['name']} --webhook {h['id']}` shows how it went"
    )
    return 0


def _deliveries(api: ApiClient, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CliError("--limit must be at least 1", exit_code=2)
    p = api.find("policy", POLICIES, args.policy)
    params: dict[str, Any] = {}
    if args.webhook:
        path = f"{POLICIES}/{p['id']}/webhooks/{_find_webhook(api, p, args.webhook)['id']}"
        path += "/deliveries"
    else:
        path = f"{POLICIES}/{p['id']}/deliveries"
    if args.status:
        params["status"] = args.status
    items: list[dict[str, Any]] = []
    for item in api.all(path, **params):
        items.append(item)
        if len(items) >= args.limit:
            break
    if args.json:
        return print_json(items)
    table(
        ["ID", "TIME", "WEBHOOK", "EVENT", "EXECUTION", "STATUS", "ATTEMPTS", "HTTP", "ERROR"],
        [delivery_row(d) for d in items],
    )
    return 0


_WEBHOOK_HANDLERS = {
    "add": _webhook_add,
    "list": _webhook_list,
    "rm": _webhook_rm,
    "test": _webhook_test,
}

_HANDLERS = {
    ("registry", "add"): _registry_add,
    ("registry", "list"): _registry_list,
    ("registry", "types"): _registry_types,
    ("registry", "ping"): _registry_ping,
    ("registry", "delete"): _registry_delete,
    ("policy", "add"): _policy_add,
    ("policy", "update"): _policy_update,
    ("policy", "list"): _policy_list,
    ("policy", "show"): _policy_show,
    ("policy", "delete"): _policy_delete,
    ("policy", "webhook"): _webhook,
    ("policy", "deliveries"): _deliveries,
    ("replicate", None): _replicate,
    ("execution", "list"): _execution_list,
    ("execution", "stop"): _execution_stop,
    ("execution", "tasks"): _execution_tasks,
    ("execution", "log"): _execution_log,
}
