"""The README's first command, walked literally: `make run` in a fresh clone.

A new user clones the repository and types the README's run command, with
nothing configured: the data directory is the default relative ``./var``, the
broker and Redis are the embedded ones (Mosquitto and redis-server when they are
installed, as on this machine).  Only the web port is changed, so the test does
not collide with a demo a developer is running.  The clone is of the committed
HEAD (CI runs on a clean clone of main, so there it is the code under test).

Also here: an embedded service that dies at start is reported by name with its
last output, and nothing it started is left behind; SIGTERM stops everything
as Ctrl-C does.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from data.embedded import free_port
from tests.appkit import clean_env, get_json
from tests.mqttkit import wait_until

ROOT = Path(__file__).resolve().parents[1]
# Lines a clean stop must not print (ours; make's own "Interrupt" line is make's).
NOISE = re.compile(r"Traceback|^\S+ \S+ (WARNING|ERROR|CRITICAL) ", re.M)


def readme_commands() -> dict[str, str]:
    """The two commands the README opens with: {"run": ..., "test": ...}."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    cmds = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert len(cmds) == 2, f"the README opens with two commands, not {cmds}"
    return {"run": cmds[0], "test": cmds[1]}


def processes_under(path: Path) -> list[str]:
    """Processes whose command line or working directory lies in ``path``."""
    found = []
    needle = str(path)
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        try:
            cmd = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(pid_dir / "cwd")
        except OSError:
            continue  # gone, or not ours to read
        if needle in cmd or cwd == needle or cwd.startswith(needle + "/"):
            found.append(f"{pid_dir.name}: {cmd.strip()} (cwd {cwd})")
    return found


def wait_gone(path: Path, timeout_s: float = 15) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while (left := processes_under(path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_make_run_in_a_fresh_clone_shows_the_live_city_and_stops_clean(tmp_path):
    run = readme_commands()["run"]
    assert run == "make run"
    clone = tmp_path / "anjian"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    assert not (clone / "var").exists()
    port = free_port(18150)
    log_path = tmp_path / "make-run.log"
    with open(log_path, "wb") as log:
        # Its own session, as a terminal's foreground job: Ctrl-C is SIGINT to the group.
        proc = subprocess.Popen(run.split(), cwd=clone, env=clean_env(ANJIAN_WEB_PORT=port), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def output() -> str:
        return log_path.read_text(errors="replace")

    try:
        def up():
            assert proc.poll() is None, f"`make run` exited with {proc.returncode}:\n{output()[-4000:]}"
            return "Anjian is running" in output()

        # The first run creates .venv and installs the project: minutes, not seconds.
        wait_until(up, 600, 1.0)
        assert str(clone / "var") in output() or (clone / "var" / "runtime.json").exists()
        # The README's way to a token, in the clone, beside the running demo.
        tok = subprocess.run([".venv/bin/python", "app.py", "token", "create", "--role", "dispatcher"], cwd=clone,
                             env=clean_env(), capture_output=True, text=True, timeout=120, check=True)
        token = tok.stdout.strip().splitlines()[-1]

        def live():
            assert proc.poll() is None, f"`make run` exited with {proc.returncode}:\n{output()[-4000:]}"
            try:
                insp = get_json(f"{base}/api/v1/inspectors", token)
            except OSError:
                return None
            on = [i for i in insp if i.get("status") != "offline"]
            return on if len(on) >= 10 else None  # the simulator brings them on duty over seconds

        inspectors = wait_until(live, 120, 1.0)
        assert all(i["lat"] and i["lon"] for i in inspectors), inspectors
        health = get_json(f"{base}/api/v1/health")
        assert health["redis"] == health["broker"] == health["database"] == "ok", health
        before_stop = len(output())
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    left = wait_gone(clone)
    for line in left:  # never leave them running, whatever the assertion below says
        os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
    assert not left, "processes of the clone left running after Ctrl-C:\n" + "\n".join(left)
    tail = output()[before_stop:]
    assert not NOISE.search(tail), f"Ctrl-C printed warnings or tracebacks:\n{tail}"
    assert not (clone / "var" / "runtime.json").exists(), "the embedded services' address file is removed"


@pytest.mark.slow
def test_an_embedded_service_that_dies_at_start_is_named_and_nothing_is_left(tmp_path):
    """redis-server cannot open its log file (here a directory stands in its place):
    `python app.py` says which service died and what it wrote, stops the broker it
    had already started, and exits non-zero."""
    data = tmp_path / "var"
    (data / "redis" / "redis.log").mkdir(parents=True)
    env = clean_env(ANJIAN_WEB_PORT=free_port(18250), ANJIAN_EMBEDDED_REDIS="redis-server",
                    ANJIAN_EMBEDDED_BROKER="mosquitto")
    out = subprocess.run([sys.executable, str(ROOT / "app.py")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    err = out.stderr
    assert "error: the embedded Redis (redis-server) exited at start" in err, err
    assert "Can't open the log file: Is a directory" in err, err
    assert "Traceback" not in err, err
    assert not wait_gone(tmp_path, 10), "the embedded broker started before Redis is stopped"
    assert not (data / "runtime.json").exists()


@pytest.mark.slow
def test_sigterm_stops_the_demo_and_its_children(tmp_path):
    port = free_port(18350)
    base = f"http://127.0.0.1:{port}"
    env = clean_env(ANJIAN_WEB_PORT=port, ANJIAN_SIM_SCALE="tiny")
    log_path = tmp_path / "app.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=tmp_path, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: proc.poll() is None and "Anjian is running" in log_path.read_text(), 120, 0.05)
        # The address the banner prints answers as soon as it is printed (it once
        # came before the screens were built, and a signal then met a half-started web).
        with urllib.request.urlopen(f"{base}/login", timeout=10) as r:
            assert r.status == 200
        assert processes_under(tmp_path), "the embedded broker and Redis run in ./var"
        time.sleep(2)
        before = len(log_path.read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not wait_gone(tmp_path), "children left after SIGTERM"
    tail = log_path.read_text()[before:]
    assert not NOISE.search(tail), tail
