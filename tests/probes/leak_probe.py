"""Run only by tests/test_hygiene.py in a pytest of its own (the file name is not
collected): a test that leaves a Redis key behind, and one that cleans up."""

from __future__ import annotations

import os

import redis

from tests.conftest import TEST_REDIS_URL, unique


def test_leaves_a_key_behind():
    ns = unique(os.environ["ANJIAN_LEAK_PROBE_PREFIX"])
    redis.Redis.from_url(TEST_REDIS_URL).set(f"{ns}:forgotten", 1)


def test_cleans_up(redis_client, namespace):
    redis_client.set(f"{namespace}:tidy", 1)
