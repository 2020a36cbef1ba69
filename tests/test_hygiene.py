"""The session-end check of tests/conftest.py: a run whose tests leave Redis keys
behind fails (exit code 1), and names the keys; a tidy run passes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import redis

from tests.conftest import TEST_REDIS_URL

ROOT = Path(__file__).resolve().parents[1]
PROBE = "tests/probes/leak_probe.py"


def _pytest(node: str, prefix: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANJIAN_LEAK_PROBE_PREFIX": prefix}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           f"{PROBE}::{node}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_a_run_that_leaves_keys_behind_fails():
    prefix = f"leak{uuid.uuid4().hex[:6]}x"
    r = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        run = _pytest("test_leaves_a_key_behind", prefix)
        assert run.returncode == 1, run.stdout + run.stderr
        assert "left 1 Redis keys behind" in run.stdout and ":forgotten" in run.stdout, run.stdout
        assert "(1 without expiry)" in run.stdout
        assert list(r.scan_iter(match=f"{prefix}*")) == [], "the check deletes what it reported"
    finally:
        for k in r.scan_iter(match=f"{prefix}*"):
            r.delete(k)
        r.close()


def test_a_tidy_run_passes():
    run = _pytest("test_cleans_up", f"tidy{uuid.uuid4().hex[:6]}x")
    assert run.returncode == 0, run.stdout + run.stderr
