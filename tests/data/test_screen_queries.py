"""The web process's reads (data/screen_queries.py), health probes (data/probes.py) and
login throttle (data/login_throttle.py), on a real Redis and on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import redis
from sqlalchemy import create_engine

from data import probes, screen_queries
from data.live import LiveState
from data.login_throttle import LoginThrottle
from geo.types import Ping
from tests.citykit import write_small_city


def test_changes_since_reads_back_only_to_what_the_browser_has(settings, redis_client):
    """The wall's diff source: inspectors moved after a version, across page boundaries of
    the change stream; a version older than the stream keeps is reported incomplete."""
    live = LiveState(redis_client, settings.redis_namespace)
    now = time.time()
    versions = {}
    for k in range(300):
        iid = f"I{k % 3 + 1}"
        live.apply_pings([Ping(iid, now - 300 + k, 22.65 + k * 1e-5, 114.03, acc_m=5.0, msg_id=f"c{k}")])
        versions[k] = live.version()
    ids, complete = screen_queries.changes_since(live, versions[299])
    assert (ids, complete) == (set(), True)
    ids, complete = screen_queries.changes_since(live, versions[297])
    assert complete and ids == {"I2", "I3"}  # moves 298 and 299 (I{k % 3 + 1})
    ids, complete = screen_queries.changes_since(live, versions[100])  # 199 entries back: over several pages
    assert complete and ids == {"I1", "I2", "I3"}
    old = screen_queries.CHANGES_READ_MAX
    try:
        screen_queries.CHANGES_READ_MAX = 150
        assert screen_queries.changes_since(live, versions[10]) == ({"I1", "I2", "I3"}, False)
    finally:
        screen_queries.CHANGES_READ_MAX = old


def test_the_push_feed_reads_the_stream_after_a_position(settings, redis_client):
    live = LiveState(redis_client, settings.redis_namespace)
    assert screen_queries.newest_change_id(live) == b"0-0"
    live.publish_change("alert", "7")
    start = screen_queries.newest_change_id(live)
    assert screen_queries.read_changes(live, start, 10, 1) == []
    live.publish_change("alert", "8,9")
    live.publish_change("inspector", "I1")
    got = screen_queries.read_changes(live, start, 10, 1)
    assert [(f[b"kind"], f[b"ids"]) for _id, f in got] == [(b"alert", b"8,9"), (b"inspector", b"I1")]
    assert screen_queries.read_changes(live, got[-1][0], 10, 1) == []


def test_registry_rows_of_the_small_city(engine):
    write_small_city(engine)
    insp, sens, names = screen_queries.registry_rows(engine)
    assert insp == {"I1": ("王强", "U1", "龙华区应急管理局执法科"), "I2": ("刘洋", "U2", "民治街道安监办")}
    assert sens["S1"][:5] == ("E1", 22.620, 114.020, "ST1", "G1")
    assert set(sens) == {"S1", "S2"}
    assert names == {"E1": "深圳市龙华区老王餐饮店", "E2": "深圳市华丰电子科技有限公司"}
    streets, grids, units, ents = screen_queries.city_rows(engine)
    assert [s.id for s in streets] == ["ST1", "ST2"] and [g.id for g in grids] == ["G1", "G2"]
    assert sorted(u.id for u in units) == ["U1", "U2"]
    assert [(e.id, e.risk) for e in ents] == [("E1", "red"), ("E2", "blue")]


def test_probes_answer_ok_or_why_not(engine, redis_client, tmp_path):
    assert probes.redis_status(redis_client) == "ok"
    away = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    assert probes.redis_status(away).startswith("unreachable: ")
    assert probes.database_status(engine) == "ok"
    gone = create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.sqlite3'}")
    assert probes.database_status(gone) == "unreachable: OperationalError"
    hidden = probes.database_url(create_engine("postgresql://anjian:s3cret@127.0.0.1:1/anjian"))
    assert "s3cret" not in hidden and hidden.startswith("postgresql://anjian:")


def test_the_login_throttle_locks_a_pair_out_and_lets_it_go(settings, redis_client):
    throttle = LoginThrottle(redis_client, settings.redis_namespace, max_failures=2, lockout_s=60)
    assert throttle.retry_after_s("Wang", "10.0.0.1") == 0
    assert throttle.fail("Wang", "10.0.0.1") == 1
    assert throttle.retry_after_s("wang ", "10.0.0.1") == 0  # the same pair (names are folded)
    assert throttle.fail("wang", "10.0.0.1") == 2
    assert 0 < throttle.retry_after_s("wang", "10.0.0.1") <= 60
    assert throttle.retry_after_s("wang", "10.0.0.2") == 0  # another address
    assert throttle.mark_refusal_audited("wang", "10.0.0.1") is True
    assert throttle.mark_refusal_audited("wang", "10.0.0.1") is False
    throttle.reset("wang", "10.0.0.1")
    assert throttle.retry_after_s("wang", "10.0.0.1") == 0
    # Redis holds no usernames: only hashes under the namespace.
    assert not [k for k in redis_client.keys(f"{settings.redis_namespace}:login:*") if b"wang" in k]
