"""The hazard routes through the Flask test client, on SQLite and PostgreSQL, with the
test Redis: the whole closed loop with a send-back and an on-site acceptance proven by
GPS, the refusals (409, 404, 403, 400), photo limits, and the audit chain."""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest

from data import audit
from data.auth import create_token, create_user
from geo.types import Ping
from tests.citykit import ENTERPRISE_A, write_small_city
from tests.dashboard import webkit


def png_bytes(w: int = 4, h: int = 4) -> bytes:
    """A real (tiny) PNG."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + b"\x80\x20\x20" * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture
def hz(settings, engine, redis_client):
    """(ctx, client, tokens by role) on the small city, SQLite and PostgreSQL."""
    write_small_city(engine)
    webkit.make_users(engine)
    create_user(engine, "ent1", webkit.PASSWORD, "enterprise", enterprise_id="E1", display_name="老王餐饮店")
    create_user(engine, "ent2", webkit.PASSWORD, "enterprise", enterprise_id="E2")
    tokens = {role: create_token(engine, _role(user), user)[0] for role, user in {"officer": "off1", "officer2": "off2", "dispatcher": "disp1", "wall": "wall1",
                                 "admin": "admin1", "ent1": "ent1", "ent2": "ent2"}.items()}
    s = settings.model_copy(update={"tiles": "none", "photo_max_bytes": 4096})
    ctx, server, _app = webkit.build_web(s, engine, redis_client)
    yield ctx, server.test_client(), tokens
    ctx.feed.stop()


def _role(user):
    return {"off1": "officer", "off2": "officer", "disp1": "dispatcher", "wall1": "wall", "admin1": "admin",
            "ent1": "enterprise", "ent2": "enterprise"}[user]


def call(client, tokens, who, method, path, **kw):
    return client.open(f"/api/v1{path}", method=method, headers={"Authorization": f"Bearer {tokens[who]}"}, **kw)


def photo(client, tokens, who, hid, data, name="p.jpg", stage=None):
    form = {"file": (io.BytesIO(data), name)}
    if stage:
        form["stage"] = stage
    return call(client, tokens, who, "POST", f"/hazards/{hid}/photos", data=form, content_type="multipart/form-data")


def test_the_whole_loop_with_send_back_and_gps_acceptance(hz):
    ctx, c, tk = hz
    r = call(c, tk, "officer", "POST", "/hazards", json={"enterprise_id": "E1", "category": "SC01", "level": "major",
                                                         "description": "液化气钢瓶放在地下室", "visit_id": 7})
    assert r.status_code == 201, r.get_json()
    h = r.get_json()
    hid = h["id"]
    assert (h["state"], h["found_by"], h["finder_id"], h["visit_id"]) == ("reported", "inspector", "I1", 7)
    assert photo(c, tk, "officer", hid, png_bytes()).status_code == 201

    r = call(c, tk, "officer", "POST", f"/hazards/{hid}/assign", json={"note": "限期整改"})
    h = r.get_json()
    assert h["state"] == "rectifying" and h["deadline_ts"] == pytest.approx(time.time() + 30 * 86400, abs=60)

    # The enterprise sees it, uploads evidence from its own account and rectifies.
    assert [x["id"] for x in call(c, tk, "ent1", "GET", "/hazards").get_json()] == [hid]
    r = call(c, tk, "ent1", "POST", f"/hazards/{hid}/rectify", json={"note": "已移出"})
    assert r.status_code == 400 and "photo" in r.get_json()["message"]  # evidence first
    assert photo(c, tk, "ent1", hid, png_bytes(), name="after.png").status_code == 201
    assert call(c, tk, "ent1", "POST", f"/hazards/{hid}/rectify", json={"note": "已移出"}).get_json()["state"] == "rectified"

    # Sent back with a reason, rectified again.
    r = call(c, tk, "officer", "POST", f"/hazards/{hid}/reject", json={"reason": "备用瓶仍在操作间"})
    assert r.get_json()["state"] == "rectifying" and r.get_json()["send_backs"] == 1
    assert photo(c, tk, "ent1", hid, png_bytes(6, 6), name="again.png").status_code == 201
    call(c, tk, "ent1", "POST", f"/hazards/{hid}/rectify", json={"note": "备用瓶已移走"})

    # On site: a fix 800 m away is no proof; one at the door is.
    now = time.time()
    ctx.live.apply_pings([Ping("I1", now - 5, ENTERPRISE_A[1] + 0.0072, ENTERPRISE_A[2], acc_m=10)])
    r = call(c, tk, "officer", "POST", f"/hazards/{hid}/accept", json={"method": "on_site"})
    assert r.status_code == 409 and r.get_json()["error"] == "not_on_site", r.get_json()
    ctx.live.apply_pings([Ping("I1", now, ENTERPRISE_A[1] + 0.0002, ENTERPRISE_A[2], acc_m=8)])
    r = call(c, tk, "officer", "POST", f"/hazards/{hid}/accept", json={"method": "on_site"})
    assert r.status_code == 200 and r.get_json()["accept_method"] == "on_site"
    h = call(c, tk, "officer", "POST", f"/hazards/{hid}/close", json={"note": "销号"}).get_json()
    assert h["state"] == "closed"
    assert [e["action"] for e in h["history"]] == ["report", "assign", "rectify", "reject", "rectify", "accept",
                                                   "close"]
    assert h["history"][5]["detail"]["distance_m"] < 100
    assert len(h["photos"]) == 3 and {p["stage"] for p in h["photos"]} == {"finding", "rectification"}

    # Closed is final: an illegal transition answers 409.
    r = call(c, tk, "officer", "POST", f"/hazards/{hid}/assign", json={})
    assert r.status_code == 409 and r.get_json()["error"] == "transition_not_allowed"

    # The trail is in the audit log, and the chain verifies.
    trail = [e.action for e in audit.entries(ctx.engine) if e.target == f"hazard:{hid}"]
    assert trail == ["hazard_report", "hazard_photo", "hazard_assign", "hazard_photo", "hazard_rectify",
                     "hazard_reject", "hazard_photo", "hazard_rectify", "hazard_accept", "hazard_close"]
    assert audit.verify(ctx.engine) is None

    # The photo comes back as stored.
    pid = h["photos"][0]["id"]
    got = call(c, tk, "ent1", "GET", f"/hazards/{hid}/photos/{pid}")
    assert got.status_code == 200 and got.mimetype == "image/png" and got.data == png_bytes()


def test_outside_the_area_is_404_and_wrong_roles_403(hz):
    ctx, c, tk = hz
    hid = call(c, tk, "officer", "POST", "/hazards", json={"enterprise_id": "E1", "category": "EQ01",
                                                           "level": "general"}).get_json()["id"]
    # Officer 2 (grid G2) does not see E1's hazard nor E1 itself.
    assert call(c, tk, "officer2", "GET", f"/hazards/{hid}").status_code == 404
    assert call(c, tk, "officer2", "POST", f"/hazards/{hid}/assign", json={}).status_code == 404
    assert call(c, tk, "officer2", "GET", "/enterprises/E1").status_code == 404
    assert call(c, tk, "officer2", "POST", "/hazards", json={"enterprise_id": "E1", "category": "EQ01",
                                                             "level": "general"}).status_code == 404
    assert call(c, tk, "officer2", "GET", "/hazards").get_json() == []
    # Another enterprise's account sees nothing of E1.
    assert call(c, tk, "ent2", "GET", f"/hazards/{hid}").status_code == 404
    assert call(c, tk, "ent2", "GET", "/hazards?enterprise_id=E1").status_code == 404
    assert [e["id"] for e in call(c, tk, "ent2", "GET", "/enterprises").get_json()] == ["E2"]
    # Roles: an enterprise may not assign or accept; the wall may not change anything.
    assert call(c, tk, "ent1", "POST", f"/hazards/{hid}/assign", json={}).status_code == 403
    assert call(c, tk, "wall", "POST", "/hazards", json={}).status_code == 403
    assert call(c, tk, "ent1", "GET", "/red-light").status_code == 403
    denied = [e for e in audit.entries(ctx.engine, action="access_denied")]
    assert {e.target for e in denied} >= {f"/api/v1/hazards/{hid}/assign", "/api/v1/hazards"}


def test_a_malformed_body_gets_every_error(hz):
    _ctx, c, tk = hz
    r = call(c, tk, "dispatcher", "POST", "/hazards", json={"category": "NOPE", "level": "huge", "lat": 95,
                                                            "found_by": "ghost"})
    assert r.status_code == 400
    assert {e["field"] for e in r.get_json()["errors"]} == {"enterprise_id", "category", "level", "lat", "found_by"}


def test_refused_uploads_have_clear_errors_and_lose_nothing(hz):
    _ctx, c, tk = hz
    hid = call(c, tk, "officer", "POST", "/hazards", json={"enterprise_id": "E1", "category": "EQ01",
                                                           "level": "general"}).get_json()["id"]
    assert photo(c, tk, "officer", hid, png_bytes()).status_code == 201
    big = png_bytes()[:16] + b"\x00" * 5000
    r = photo(c, tk, "officer", hid, big)
    assert r.status_code == 413 and r.get_json()["error"] == "too_large" and "4096" in r.get_json()["message"]
    r = photo(c, tk, "officer", hid, "这不是照片，只是文字。".encode() * 4, name="evil.jpg")
    assert r.status_code == 415 and r.get_json()["error"] == "not_an_image"
    assert "evil.jpg" in r.get_json()["message"] and "content" in r.get_json()["message"]
    h = call(c, tk, "officer", "GET", f"/hazards/{hid}").get_json()
    assert len(h["photos"]) == 1
    assert call(c, tk, "officer", "GET", f"/hazards/{hid}/photos/{h['photos'][0]['id']}").data == png_bytes()


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h pixels, with a few bytes of data: a decompression bomb's shape."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_photos_get_a_thumbnail_and_undecodable_images_are_refused(hz):
    from PIL import Image

    _ctx, c, tk = hz
    hid = call(c, tk, "officer", "POST", "/hazards", json={"enterprise_id": "E1", "category": "EQ01",
                                                           "level": "general"}).get_json()["id"]
    # A real 1200x900 image (one colour, palette PNG, so it fits the fixture's 4096-byte limit).
    buf = io.BytesIO()
    img = Image.new("P", (1200, 900), 0)
    img.putpalette([200, 40, 40] + [0, 0, 0] * 255)
    img.save(buf, "PNG", optimize=True)
    big_photo = buf.getvalue()
    assert len(big_photo) <= 4096
    assert photo(c, tk, "officer", hid, big_photo, name="site.png").status_code == 201
    h = call(c, tk, "officer", "GET", f"/hazards/{hid}").get_json()
    pid = h["photos"][0]["id"]
    assert h["photos"][0]["thumbnail"] is True
    thumb = call(c, tk, "officer", "GET", f"/hazards/{hid}/photos/{pid}/thumb")
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    img = Image.open(io.BytesIO(thumb.data))
    assert img.format == "JPEG" and img.size == (320, 240)
    assert img.getpixel((160, 120))[0] > 150  # still the photo's red
    # The full photo is the bytes as uploaded.
    assert call(c, tk, "officer", "GET", f"/hazards/{hid}/photos/{pid}").data == big_photo

    # A PNG signature with a body cut short does not decode: refused, nothing stored.
    cut = png_bytes(40, 40)[:60]  # the signature, the header and half the pixel data
    r = photo(c, tk, "officer", hid, cut, name="cut.png")
    assert r.status_code == 415 and r.get_json()["error"] == "not_an_image" and "decode" in r.get_json()["message"]
    # A tiny file claiming 20000 x 20000 pixels (a decompression bomb) is refused before it is decoded.
    r = photo(c, tk, "officer", hid, _png_header_only(20000, 20000), name="bomb.png")
    assert r.status_code == 413 and r.get_json()["error"] == "too_large" and "pixels" in r.get_json()["message"]
    assert len(call(c, tk, "officer", "GET", f"/hazards/{hid}").get_json()["photos"]) == 1


def test_self_inspection_red_light_and_the_credit_face(hz):
    _ctx, c, tk = hz
    r = call(c, tk, "ent1", "POST", "/self-inspections", json={"items": [{"code": "SC01", "ok": True},
                                                                         {"code": "SC03", "ok": False}]})
    assert r.status_code == 201 and r.get_json()["hazards_found"] == 1
    assert call(c, tk, "ent1", "POST", "/self-inspections", json={"items": [{"code": "ZZ", "ok": 1}]}).status_code == 400
    red = {e["enterprise_id"]: [x["rule"] for x in e["reasons"]] for e in
           call(c, tk, "dispatcher", "GET", "/red-light").get_json()}
    assert red["E2"][0] == "no_self_inspection" and "no_self_inspection" not in red.get("E1", [])
    face = call(c, tk, "ent1", "GET", "/enterprises/E1").get_json()
    assert {"score", "score_trend", "hazards", "visits", "alerts", "red_light", "risk"} <= set(face)
    assert face["alerts"]["sensors"] == [{"id": "S1", "model": None}]
