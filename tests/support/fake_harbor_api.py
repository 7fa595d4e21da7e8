"""The Harbor fake's ``/api/v2.0`` (Harbor's published v2.0 swagger), answered from its own
state (projects, robot accounts, webhook policies) and the real registry behind it.

Routes (the counting key is the swagger's path template):

- ``GET|HEAD|POST /projects``, ``GET /projects/{project_name_or_id}``;
- ``GET /projects/{project_name}/repositories``;
- ``GET /projects/{project_name}/repositories/{repository_name}/artifacts`` (``with_tag``);
- ``DELETE …/artifacts/{reference}/tags/{tag_name}``;
- ``GET|POST /projects/{project_name_or_id}/webhook/policies``,
  ``GET|PUT|DELETE …/webhook/policies/{webhook_policy_id}``;
- ``POST /robots``; ``GET /quotas?reference=project&reference_id=``.

Lists are paged by ``page`` (from 1) and ``page_size`` (default 10, at most 100: more is
``422``) with ``X-Total-Count`` and ``Link: <…>; rel="prev"/"next"``. ``{repository_name}`` is
the name inside the project URL-encoded twice (``a%252Fb``); a raw ``/`` in it matches no
route (404), as in Harbor. Errors are ``{"errors": [{"code", "message"}]}``.

Simplifications: artifacts are the tagged manifests of the registry behind (untagged ones
cannot be enumerated through its OCI API); an artifact's ``size`` is its manifest's size and
``media_type`` its manifest media type; ``with_detail`` is ignored; users are created by the
test, robots through the API by an administrator only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web

from tests.support import fake_harbor_hooks_api as hooks_api
from tests.support.fake_acr_metadata import TagInfo, listed_tags
from tests.support.fake_harbor_auth import Account, robot_permissions
from tests.support.fake_harbor_http import (
    NO_ACCESS,
    PREFIX,
    Project,
    caller,
    harbor_error,
    paged,
    refuse,
    visible,
)
from tests.support.fake_harbor_webhooks import now_iso

if TYPE_CHECKING:
    from tests.support.fake_harbor import FakeHarbor

__all__ = ["route"]

PROJECT_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
Handler = Any


def route(fake: FakeHarbor, request: web.Request) -> tuple[str, Handler]:
    """``(counting key, handler)`` of an ``/api/v2.0/...`` request."""
    raw = request.rel_url.raw_path[len(PREFIX) :]
    parts = raw.strip("/").split("/")
    m = request.method
    n = len(parts)
    if parts == ["projects"]:
        return f"{m} {PREFIX}/projects", lambda r: projects(fake, r)
    if parts == ["robots"]:
        return f"{m} {PREFIX}/robots", lambda r: robots(fake, r)
    if parts == ["quotas"]:
        return f"{m} {PREFIX}/quotas", lambda r: quotas(fake, r)
    if n >= 2 and parts[0] == "projects":
        project = unquote(parts[1])
        base = f"{m} {PREFIX}/projects/{{project_name_or_id}}"
        if n == 2:
            return base, lambda r: one_project(fake, r, project)
        if n == 3 and parts[2] == "repositories":
            key = f"{m} {PREFIX}/projects/{{project_name}}/repositories"
            return key, lambda r: repositories(fake, r, project)
        if n == 4 and parts[2] == "repositories":
            repo = f"{project}/{unquote(unquote(parts[3]))}"
            key = f"{m} {PREFIX}/projects/{{project_name}}/repositories/{{repository_name}}"
            return key, lambda r: one_repository(fake, r, repo)
        if n >= 5 and parts[2] == "repositories" and parts[4] == "artifacts":
            repo = f"{project}/{unquote(unquote(parts[3]))}"
            art = (
                f"{m} {PREFIX}/projects/{{project_name}}/repositories/{{repository_name}}/artifacts"
            )
            if n == 5:
                return art, lambda r: artifacts(fake, r, repo)
            if n == 8 and parts[6] == "tags":
                reference, tag = unquote(parts[5]), unquote(parts[7])
                key = f"{art}/{{reference}}/tags/{{tag_name}}"
                return key, lambda r: delete_tag(fake, r, repo, reference, tag)
        if parts[2:4] == ["webhook", "policies"] and n in (4, 5):
            key = f"{base}/webhook/policies" + ("/{webhook_policy_id}" if n == 5 else "")
            policy_id = parts[4] if n == 5 else None
            return key, lambda r: hooks_api.policies(fake, r, project, policy_id)
    return f"{m} {PREFIX}/other", lambda r: _no_route(r)


async def _no_route(request: web.Request) -> web.Response:
    await request.read()
    return harbor_error(404, "NOT_FOUND", f"no route {request.path}")


# -- projects --------------------------------------------------------------------------------


async def projects(fake: FakeHarbor, request: web.Request) -> web.StreamResponse:
    account = caller(fake, request)
    if isinstance(account, web.Response):
        return account
    if request.method == "HEAD":
        if account is None:
            return web.Response(status=401)
        return web.Response(
            status=200 if fake.project(request.query.get("project_name", "")) else 404
        )
    if request.method == "POST":
        return await create_project(fake, request, account)
    if request.method != "GET":
        return harbor_error(405, "METHOD_NOT_ALLOWED", "GET, HEAD or POST")
    name = request.query.get("name", "")
    shown = [
        p.wire()
        for p in fake.all_projects()
        if visible(account, p) and (not name or name in p.name)
    ]
    return paged(request, shown)


async def create_project(
    fake: FakeHarbor, request: web.Request, account: Account | None
) -> web.Response:
    if account is None:
        return harbor_error(401, "UNAUTHORIZED", NO_ACCESS)
    if account.is_robot and account.level != "system":
        return harbor_error(403, "FORBIDDEN", "Only system level robot can create project")
    if account.is_robot and not account.may(None, "project", "create"):
        return harbor_error(403, "FORBIDDEN", f"{account.name} may not create projects")
    if fake.only_admin_creates_projects and not account.admin:
        return harbor_error(403, "FORBIDDEN", "Only system admin can create project")
    try:
        body = await request.json()
    except ValueError:
        return harbor_error(400, "BAD_REQUEST", "the body is not JSON")
    name = body.get("project_name") if isinstance(body, dict) else None
    if not isinstance(name, str) or len(name) > 255 or not PROJECT_NAME.match(name):
        return harbor_error(400, "BAD_REQUEST", f"project name {name!r} is not valid")
    metadata = {str(k): str(v) for k, v in (body.get("metadata") or {}).items() if v is not None}
    if body.get("public") is not None and "public" not in metadata:
        metadata["public"] = "true" if body["public"] else "false"
    metadata.setdefault("public", "false")
    if metadata["public"] not in ("true", "false"):
        return harbor_error(
            400,
            "BAD_REQUEST",
            f"metadata.public should only be 'true' or 'false', but got: '{metadata['public']}'",
        )
    limit = body.get("storage_limit")
    if not account.admin or not isinstance(limit, int) or limit == 0:
        limit = fake.default_storage_limit_bytes  # only an administrator's limit counts
    if limit < -1:
        return harbor_error(400, "BAD_REQUEST", "storage_limit must be -1 or positive")
    project = fake.add_project(name, metadata, limit, account.name)
    if project is None:
        return harbor_error(409, "CONFLICT", f"The project named {name} already exists")
    return web.Response(status=201, headers={"Location": f"{PREFIX}/projects/{project.id}"})


async def one_project(fake: FakeHarbor, request: web.Request, ref: str) -> web.Response:
    account = caller(fake, request)
    if isinstance(account, web.Response):
        return account
    project = fake.project(ref, by_name=request.headers.get("X-Is-Resource-Name") == "true")
    if project is None:
        return harbor_error(404, "NOT_FOUND", f"project {ref} not found")
    if request.method != "GET":
        return harbor_error(405, "METHOD_NOT_ALLOWED", "GET")
    if not visible(account, project):
        return refuse(account, f"read project {project.name}")
    return web.json_response(project.wire(len(await fake.repository_names(project.name))))


async def quotas(fake: FakeHarbor, request: web.Request) -> web.Response:
    account = caller(fake, request)
    if isinstance(account, web.Response):
        return account
    if account is None or not account.admin:
        return refuse(account, "list quotas")
    wanted = request.query.get("reference_id", "")
    shown = [
        {
            "id": p.id,
            "ref": {"id": p.id, "name": p.name, "owner_name": p.owner},
            "hard": {"storage": p.storage_limit},
            "used": {"storage": 0},
        }
        for p in fake.all_projects()
        if not wanted or str(p.id) == wanted
    ]
    return paged(request, shown)


# -- repositories, artifacts, tags ---------------------------------------------------------------


def _readable(
    fake: FakeHarbor, request: web.Request, name: str, resource: str, action: str = "list"
) -> tuple[Account | None, Project] | web.Response:
    account = caller(fake, request)
    if isinstance(account, web.Response):
        return account
    project = fake.project(name)
    if project is None:
        return harbor_error(404, "NOT_FOUND", f"project {name} not found")
    if not project.public and not (account and account.may(name, resource, action)):
        return refuse(account, f"{action} the {resource}s of project {name}")
    return account, project


def _repository(fake: FakeHarbor, project: Project, repo: str, artifacts: int) -> dict[str, Any]:
    return {
        "id": fake.ids.get(("repository", repo)),
        "project_id": project.id,
        "name": repo,
        "artifact_count": artifacts,
        "pull_count": 0,
        "creation_time": project.creation_time,
        "update_time": project.creation_time,
    }


async def one_repository(fake: FakeHarbor, request: web.Request, repo: str) -> web.Response:
    checked = _readable(fake, request, repo.split("/")[0], "repository", "read")
    if isinstance(checked, web.Response):
        return checked
    if request.method != "GET":
        return harbor_error(405, "METHOD_NOT_ALLOWED", "GET")
    if repo not in await fake.repository_names(checked[1].name):
        return harbor_error(404, "NOT_FOUND", f"repository {repo} not found")
    listed = await listed_tags(fake, repo) or []  # type: ignore[arg-type]
    return web.json_response(_repository(fake, checked[1], repo, len({t.digest for t in listed})))


async def repositories(fake: FakeHarbor, request: web.Request, name: str) -> web.Response:
    checked = _readable(fake, request, name, "repository")
    if isinstance(checked, web.Response):
        return checked
    _, project = checked
    shown = []
    for repo in await fake.repository_names(name):
        listed = await listed_tags(fake, repo) or []  # type: ignore[arg-type]
        shown.append(_repository(fake, project, repo, len({t.digest for t in listed})))
    return paged(request, shown)


def _artifact(fake: FakeHarbor, project: Project, repo: str, tags: list[TagInfo], with_tag: bool):
    first = tags[0]
    repo_id = fake.ids.get(("repository", repo))
    art_id = fake.ids.get(("artifact", repo, first.digest))
    out: dict[str, Any] = {
        "id": art_id,
        "type": "IMAGE",
        "media_type": first.media_type,
        "manifest_media_type": first.media_type,
        "project_id": project.id,
        "repository_id": repo_id,
        "repository_name": repo,
        "digest": first.digest,
        "size": first.size,
        "push_time": project.creation_time,
        "pull_time": "0001-01-01T00:00:00.000Z",
        "extra_attrs": {},
        "annotations": None,
        "references": None,
        "labels": None,
        "addition_links": {},
    }
    if with_tag:
        out["tags"] = [
            {
                "id": fake.ids.get(("tag", repo, t.name)),
                "repository_id": repo_id,
                "artifact_id": art_id,
                "name": t.name,
                "push_time": project.creation_time,
                "pull_time": "0001-01-01T00:00:00.000Z",
                "immutable": False,
            }
            for t in tags
        ]
    return out


async def artifacts(fake: FakeHarbor, request: web.Request, repo: str) -> web.Response:
    checked = _readable(fake, request, repo.split("/")[0], "artifact")
    if isinstance(checked, web.Response):
        return checked
    _, project = checked
    # Harbor lists an unknown repository as empty (200 []): its handler does not look it up
    listed = await listed_tags(fake, repo) or []  # type: ignore[arg-type]
    by_digest: dict[str, list[TagInfo]] = {}
    for tag in listed:
        by_digest.setdefault(tag.digest, []).append(tag)
    with_tag = request.query.get("with_tag", "true") != "false"
    shown = [_artifact(fake, project, repo, tags, with_tag) for tags in by_digest.values()]
    return paged(request, shown)


async def delete_tag(
    fake: FakeHarbor, request: web.Request, repo: str, reference: str, tag: str
) -> web.StreamResponse:
    account = caller(fake, request)
    if isinstance(account, web.Response):
        return account
    name = repo.split("/")[0]
    if fake.project(name) is None:
        return harbor_error(404, "NOT_FOUND", f"project {name} not found")
    if request.method != "DELETE":
        return harbor_error(405, "METHOD_NOT_ALLOWED", "DELETE")
    if account is None or not account.may(name, "tag", "delete"):
        return refuse(account, f"delete tags in project {name}")
    listed = await listed_tags(fake, repo) or []  # type: ignore[arg-type]
    digest = next((t.digest for t in listed if reference in (t.name, t.digest)), None)
    if digest is None:
        return harbor_error(404, "NOT_FOUND", f"artifact {repo}@{reference} not found")
    if not any(t.name == tag and t.digest == digest for t in listed):
        return harbor_error(404, "NOT_FOUND", f"tag {tag} of {repo}@{reference} not found")
    answer = await fake.upstream.forward(request, "DELETE", f"/v2/{repo}/manifests/{tag}", None)
    if answer.status not in (200, 202):
        return answer
    return web.Response(status=200)


# -- robot accounts --------------------------------------------------------------------------


async def robots(fake: FakeHarbor, request: web.Request) -> web.Response:
    account = caller(fake, request)
    if isinstance(account, web.Response):
        return account
    if request.method != "POST":
        return harbor_error(405, "METHOD_NOT_ALLOWED", "POST")
    if account is None or not account.admin:
        return refuse(account, "create robot accounts")
    body = await request.json()
    level, name = body.get("level"), body.get("name", "")
    perms = body.get("permissions") or []
    if level not in ("project", "system") or not PROJECT_NAME.match(str(name)):
        return harbor_error(400, "BAD_REQUEST", "bad robot level or name")
    if level == "project":
        kinds = {(p.get("kind"), p.get("namespace")) for p in perms}
        if len(perms) != 1 or next(iter(kinds))[0] != "project":
            return harbor_error(400, "BAD_REQUEST", "a project robot has one project permission")
        if fake.project(str(perms[0].get("namespace"))) is None:
            return harbor_error(404, "NOT_FOUND", "project not found")
    try:
        robot = fake.accounts.create_robot(
            str(name), level, robot_permissions(perms), str(body.get("secret") or "")
        )
    except KeyError:
        return harbor_error(409, "CONFLICT", f"robot account {name} already exists")
    created = {
        "id": fake.ids.get(("robot", robot.name)),
        "name": robot.name,
        "secret": robot.password,
        "creation_time": now_iso(),
        "expires_at": -1,
    }
    return web.json_response(created, status=201)
