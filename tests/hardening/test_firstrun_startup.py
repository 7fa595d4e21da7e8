"""First run: every start-up mistake is one line on stderr saying what to do — never a
traceback, never a "serving" line first — and account commands do not create an empty data
directory where there is none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import free_port


def _run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    root = str(Path(__file__).resolve().parents[2])
    clean["PYTHONPATH"] = os.pathsep.join(filter(None, [root, clean.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "seawall", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def _one_line(done: subprocess.CompletedProcess, *words: str) -> str:
    assert done.returncode != 0, done
    assert "Traceback" not in done.stderr, done.stderr
    assert "serving" not in done.stdout, done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("setup", "args", "words"),
    [
        ("file", ["--data-dir", "afile"], ["is a file", "--data-dir"]),
        ("", ["--port", "99999"], ["port", "65535"]),
        ("abc", ["--config", "abc.toml"], ["port", "'abc'", "integer"]),
        ("", ["--config", "missing.toml"], ["missing.toml", "does not exist"]),
        ("", ["--host", "10.255.255.1"], ["10.255.255.1", "not an address of this machine"]),
    ],
)
def test_a_start_up_mistake_is_one_line(
    tmp_path: Path, setup: str, args: list[str], words: list[str]
) -> None:
    if setup == "file":
        (tmp_path / "afile").write_text("not a directory")
    if setup == "abc":
        (tmp_path / "abc.toml").write_text('port = "abc"\n')
    port = [] if "--port" in args or setup == "abc" else ["--port", str(free_port())]
    _one_line(_run(tmp_path, "serve", *port, *args), *words)


def test_an_unreachable_postgresql_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql://u:secret@127.0.0.1:{free_port()}/db"
    done = _run(tmp_path, "serve", "--port", str(free_port()), env={"SEAWALL_DATABASE_URL": url})
    line = _one_line(done, "cannot open the database", "database_url")
    assert "secret" not in line


def test_a_config_file_typo_names_the_key_and_the_nearest_one(tmp_path: Path) -> None:
    (tmp_path / "seawall.toml").write_text("prot = 5030\n")
    done = _run(tmp_path, "serve", "--config", "seawall.toml")
    assert done.returncode == 2
    _one_line(done, "'prot'", "did you mean port")
    (tmp_path / "nested.toml").write_text("[auth]\nanonymous_pul = true\n")
    done = _run(tmp_path, "serve", "--config", "nested.toml")
    assert done.returncode == 2
    _one_line(done, "auth.anonymous_pul", "did you mean auth.anonymous_pull")


def test_an_unknown_env_setting_is_named(tmp_path: Path) -> None:
    # inside a settings group: refused
    done = _run(tmp_path, "robot", "list", env={"SEAWALL_AUTH__ANONYMOUS_PUL": "true"})
    assert done.returncode == 2
    _one_line(done, "SEAWALL_AUTH__ANONYMOUS_PUL", "SEAWALL_AUTH__ANONYMOUS_PULL")
    # a top-level name may be meant for something else: a warning naming the nearest setting
    done = _run(tmp_path, "robot", "list", env={"SEAWALL_PROT": "5030"})
    assert "SEAWALL_PROT" in done.stderr and "SEAWALL_PORT" in done.stderr
    # variables read elsewhere are no settings and pass silently
    quiet = {"SEAWALL_PASSWORD": "x", "SEAWALL_CREDENTIALS_DIR": "/tmp", "SEAWALL_TEST_X": "1"}
    done = _run(tmp_path, "robot", "list", env=quiet)
    assert "not a setting" not in done.stderr and "unknown setting" not in done.stderr


@pytest.mark.parametrize("kind", ["robot", "user"])
def test_account_list_without_a_data_dir_says_where_it_looked(tmp_path: Path, kind: str) -> None:
    done = _run(tmp_path, kind, "list")
    assert done.returncode == 1
    line = _one_line(done, str(tmp_path / "seawall-data"), "--data-dir")
    assert "no Seawall database" in line
    assert not (tmp_path / "seawall-data").exists()
