"""`python app.py token list|revoke` and `user deactivate|activate`, as an operator runs
them.  docs/api.md promised that "a revoked token takes effect within 10 s", but no
command revoked a token or kept a user out (a hostile-input sweep found only `create`).
Each step is audited; a revoked token and a deactivated user's token are refused by a
web process that had them cached, within its cache time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from data import audit
from data.auth import TOKEN_CACHE_S, TokenAuthenticator
from data.db import make_engine, migrate
from tests.appkit import clean_env
from tests.mqttkit import wait_until

ROOT = Path(__file__).resolve().parents[1]
APP = [sys.executable, str(ROOT / "app.py")]


def test_an_operator_revokes_a_token_and_keeps_a_user_out(tmp_path):
    db = tmp_path / "anjian.sqlite3"
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    env = clean_env(ANJIAN_DATA_DIR=tmp_path / "var", ANJIAN_DATABASE_URL=f"sqlite:///{db}",
                    ANJIAN_NEW_USER_PASSWORD="pw-chen-1234")

    def run(*argv: str, ok: bool = True) -> str:
        p = subprocess.run([*APP, *argv], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert (p.returncode == 0) == ok, (argv, p.returncode, p.stdout, p.stderr)
        return p.stdout if ok else p.stderr

    run("user", "create", "chen", "--role", "dispatcher")
    first = run("token", "create", "--role", "dispatcher", "--user", "chen").strip().splitlines()[-1]
    second = run("token", "create", "--role", "dispatcher", "--user", "chen").strip().splitlines()[-1]
    wall = run("token", "create", "--role", "wall").strip().splitlines()[-1]
    listed = run("token", "list", "--user", "chen")
    assert listed.count(" chen ") == 2 and listed.count(" live") == 2 and first not in listed
    web = TokenAuthenticator(engine)  # a web process, which caches what it read
    assert web.authenticate(first).username == "chen" and web.authenticate(second).username == "chen"

    first_id = min(int(line.split()[0]) for line in listed.splitlines()[1:])
    assert "1 token(s) revoked" in run("token", "revoke", str(first_id), "--actor", "ops-li")
    wait_until(lambda: web.authenticate(first) is None, TOKEN_CACHE_S + 5)
    assert web.authenticate(second).username == "chen"
    assert "(already revoked)" in run("token", "revoke", str(first_id))
    assert "no token 999" in run("token", "revoke", "999", ok=False)

    run("user", "deactivate", "chen", "--actor", "ops-li")
    wait_until(lambda: web.authenticate(second) is None, TOKEN_CACHE_S + 5)
    assert web.authenticate(wall) is not None, "someone else's token went too"
    assert "live (user deactivated)" in run("token", "list", "--user", "chen")
    run("user", "activate", "chen")
    assert TokenAuthenticator(engine).authenticate(second).username == "chen"
    assert "no user 'nobody'" in run("user", "deactivate", "nobody", ok=False)

    assert "1 token(s) revoked" in run("token", "revoke", "--user", "chen")  # the first was revoked already
    done = [(e.action, e.actor, e.target) for e in audit.entries(engine)
            if e.action in ("token_revoke", "user_deactivate", "user_activate")]
    assert done[:2] == [("token_revoke", "ops-li", "chen"), ("user_deactivate", "ops-li", "chen")]
    assert [a for a, _, _ in done].count("token_revoke") == 2 and TokenAuthenticator(engine).authenticate(second) is None
    assert audit.verify(engine) is None
