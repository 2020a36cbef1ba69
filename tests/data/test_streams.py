"""data/streams.py on SQLite and PostgreSQL: migration 0006_reviews matches the models, a
stream is linked to the inspector's visit (open at the announcement, or overlapped when it
ends), ended streams keep their recording, and a notice applied twice changes nothing."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, select

from data.models import Base, StreamRow, Visit
from data.streams import StreamStore
from geo.types import StreamNotice
from tests.citykit import write_small_city

T0 = 1_780_000_000.0
HLS = "http://cam.example/I1/live.m3u8"


def add_visit(engine, inspector_id="I1", start=T0, end=T0 + 600, ended=False, enterprise_id="E1") -> int:
    with engine.begin() as conn:
        return conn.execute(insert(Visit).values(
            enterprise_id=enterprise_id, inspector_id=inspector_id, unit_id="U1", start_ts=start, end_ts=end,
            stay_key=f"{inspector_id}|{enterprise_id}|{start!r}", ended=ended).returning(Visit.id)).scalar_one()


def rows(engine):
    with engine.connect() as conn:
        return conn.execute(select(StreamRow).order_by(StreamRow.id)).all()


def test_migration_matches_the_models(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    mine = [d for d in diff if any(t in repr(d) for t in ("streams", "visit_reviews", "hazard_discussions", "advice"))]
    assert mine == []


def test_live_then_ended_links_the_open_visit_and_keeps_the_recording(engine):
    write_small_city(engine)
    vid = add_visit(engine)
    add_visit(engine, inspector_id="I2", enterprise_id="E2")  # another inspector's visit: not this stream's
    s = StreamStore(engine)
    s.apply([StreamNotice("I1", T0 + 60, "live", HLS, "http://cam.example/I1/whep", msg_id="a")])
    s.apply([StreamNotice("I1", T0 + 60, "live", HLS, msg_id="a")])  # redelivered: nothing new
    (r,) = rows(engine)
    assert (r.visit_id, r.state, r.started_at, r.ended_at, r.whep_url) == (vid, "live", T0 + 60, None,
                                                                          "http://cam.example/I1/whep")
    assert s.live()["I1"]["visit_id"] == vid and "I2" not in s.live()
    s.apply([StreamNotice("I1", T0 + 400, "ended", HLS, recording_url="https://vod.example/I1/rec.mp4")])
    s.apply([StreamNotice("I1", T0 + 400, "ended", HLS, recording_url="https://vod.example/I1/rec.mp4")])
    (r,) = rows(engine)
    assert (r.state, r.ended_at, r.recording_url) == ("ended", T0 + 400, "https://vod.example/I1/rec.mp4")
    assert s.live() == {}
    assert [x["id"] for x in s.for_visit(vid)] == [r.id]


def test_a_stream_announced_before_the_visit_is_confirmed_is_linked_when_it_ends(engine):
    write_small_city(engine)
    s = StreamStore(engine)
    s.apply([StreamNotice("I1", T0 + 10, "live", HLS)])
    assert rows(engine)[0].visit_id is None
    vid = add_visit(engine, start=T0, end=T0 + 300)  # the geo engine confirms the stay later
    assert s.live(now=T0 + 300)["I1"]["visit_id"] == vid  # the console's badge links it meanwhile
    assert [x["hls_url"] for x in StreamStore(engine).for_visit(vid)] == [HLS]  # found by time meanwhile
    s.apply([StreamNotice("I1", T0 + 200, "ended", None, recording_url="https://vod.example/r.mp4")])
    (r,) = rows(engine)
    assert (r.visit_id, r.state, r.recording_url) == (vid, "ended", "https://vod.example/r.mp4")


def test_no_visit_at_the_time_leaves_the_stream_unlinked_and_an_unseen_end_is_kept(engine):
    write_small_city(engine)
    vid = add_visit(engine, start=T0, end=T0 + 300, ended=True)
    s = StreamStore(engine)
    s.apply([StreamNotice("I1", T0 + 5000, "live", HLS)])
    s.apply([StreamNotice("I1", T0 + 100, "ended", "http://cam.example/old.m3u8",
                          recording_url="http://vod.example/old.mp4")])
    by_url = {r.hls_url: r for r in rows(engine)}
    assert by_url[HLS].visit_id is None
    old = by_url["http://cam.example/old.m3u8"]
    assert (old.visit_id, old.state, old.started_at, old.ended_at) == (vid, "ended", T0 + 100, T0 + 100)
    assert [x["hls_url"] for x in s.for_visit(vid)] == ["http://cam.example/old.m3u8"]


def test_an_end_that_names_no_stream_ends_every_open_stream_of_the_camera(engine):
    """The hostile-input sweep: a phone announced three streams (new URLs, no ends), then
    "ended" with no URL; only the newest ended, and the three older ones stayed live."""
    write_small_city(engine)
    s = StreamStore(engine)
    urls = [f"http://cam.example/I1/{k}.m3u8" for k in range(4)]
    for k, url in enumerate(urls):
        s.apply([StreamNotice("I1", T0 + 10 * k, "live", url)])
    s.apply([StreamNotice("I2", T0 + 5, "live", "http://cam.example/I2/live.m3u8")])  # another camera
    s.apply([StreamNotice("I1", T0 + 100, "live", "http://cam.example/I1/later.m3u8")])  # after the end
    s.apply([StreamNotice("I1", T0 + 60, "ended", None, recording_url="https://vod.example/r.mp4")])
    by_url = {r.hls_url: r for r in rows(engine)}
    assert [(by_url[u].state, by_url[u].ended_at) for u in urls] == [("ended", T0 + 60)] * 4
    assert by_url[urls[-1]].recording_url == "https://vod.example/r.mp4"  # the recording: the newest's
    assert by_url["http://cam.example/I1/later.m3u8"].state == "live"
    assert by_url["http://cam.example/I2/live.m3u8"].state == "live"
    assert set(s.live()) == {"I1", "I2"} and s.live()["I1"]["hls_url"] == "http://cam.example/I1/later.m3u8"
