"""GET /detections on real SQLite files: pagination, filters, errors, a writer under load, a real HTTP server."""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask

from pose_fast.events import EventStore
from pose_fast.timestamps import iso_utc
from pose_fast.webapp.detections import bp, create_detections_app

T0 = 1_764_050_400.0  # 2025-11-25T06:00:00Z
N = 237
SOURCES = ("camera 0", "store-aisle.mp4")


def event(i):
    """The i-th scripted event (0-based): alternating kinds, two sources, one second apart."""
    return ("enter" if i % 2 == 0 else "exit", i // 2, i, T0 + i, i % 3, SOURCES[i % 5 == 0], "CPU")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "events.sqlite3"
    with EventStore(path) as store:
        for i in range(N):
            store.add(*event(i))
    return path


@pytest.fixture(scope="module")
def client(db):
    app = Flask("detections-test")  # the blueprint on a bare app, as the web app registers it
    app.config["DATABASE"] = str(db)
    app.register_blueprint(bp)
    return app.test_client()


def expected(i):
    kind, person, frame, ts, people, source, device = event(i)
    return {"id": i + 1, "kind": kind, "person_id": person, "timestamp": iso_utc(ts), "source": source,
            "frame_index": frame, "people_count": people, "device": device, "run_id": "", "track_id": person,
            "reason": None, "snapshot": None, "zone": None, "direction": None, "dwell_s": None}


def links(header):
    out = {}
    for part in header.split(", "):
        url, rel = part.split("; ")
        out[rel[len('rel="'):-1]] = url[1:-1]
    return out


def test_first_page_defaults(client):
    r = client.get("/detections")
    assert r.status_code == 200 and r.mimetype == "application/json"
    body = r.get_json()
    assert body["results"] == [expected(i) for i in range(50)]
    p = body["pagination"]
    assert {k: p[k] for k in ("page", "per_page", "count", "pages", "prev")} == {
        "page": 1, "per_page": 50, "count": N, "pages": 5, "prev": None}
    assert parse_qs(urlsplit(p["next"]).query) == {"page": ["2"], "per-page": ["50"]}
    rels = links(r.headers["Link"])
    assert set(rels) == {"next", "first", "last"}
    assert rels["next"] == p["next"]
    assert parse_qs(urlsplit(rels["last"]).query)["page"] == ["5"]


@pytest.mark.parametrize("query, per_page", [("per-page=7", 7), ("per_page=7", 7), ("per-page=1", 1),
                                             ("per-page=100", 100), ("per-page=101", 100), ("per_page=100000", 100),
                                             ("per-page=7&per_page=7", 7), ("per-page=+7", 7)])
def test_per_page_aliases_and_clamp(client, query, per_page):
    body = client.get(f"/detections?{query}").get_json()
    assert body["pagination"]["per_page"] == per_page
    assert len(body["results"]) == min(per_page, N)


def test_walking_next_links_visits_every_event_once_in_id_order(client):
    url, ids = "/detections?per_page=40&kind=exit", []
    pages = 0
    while url:
        r = client.get(url)
        body = r.get_json()
        assert all(row["kind"] == "exit" for row in body["results"])
        ids += [row["id"] for row in body["results"]]
        url = body["pagination"]["next"]
        pages += 1
    assert ids == [i + 1 for i in range(N) if i % 2 == 1]
    assert pages == body["pagination"]["pages"] == 3
    # and back again through prev
    prev = links(r.headers["Link"])["prev"]
    assert parse_qs(urlsplit(prev).query) == {"kind": ["exit"], "page": ["2"], "per-page": ["40"]}


@pytest.mark.parametrize("query, select", [
    ("kind=enter", lambda i: i % 2 == 0),
    ("source=store-aisle.mp4", lambda i: i % 5 == 0),
    ("source=camera%200&kind=exit", lambda i: i % 5 != 0 and i % 2 == 1),
    ("since=2025-11-25T06:01:00Z", lambda i: i >= 60),
    ("until=2025-11-25T06:01:00Z", lambda i: i < 60),
    ("since=2025-11-25T07:00:10%2B01:00&until=2025-11-25T06:00:20.000Z", lambda i: 10 <= i < 20),
    ("since=2025-11-25T06:00:10&until=2025-11-25T06:03:00Z&kind=enter&source=camera%200",
     lambda i: 10 <= i < 180 and i % 2 == 0 and i % 5 != 0),
    ("source=nowhere", lambda i: False),
])
def test_filters(client, query, select):
    want = [i for i in range(N) if select(i)]
    got, url = [], f"/detections?per-page=100&{query}"
    while url:
        body = client.get(url).get_json()
        assert body["pagination"]["count"] == len(want)
        got += body["results"]
        url = body["pagination"]["next"]
    assert got == [expected(i) for i in want]


def test_page_past_the_end_is_empty(client):
    r = client.get("/detections?page=6")
    assert r.status_code == 200
    body = r.get_json()
    assert body["results"] == [] and body["pagination"]["next"] is None
    assert parse_qs(urlsplit(body["pagination"]["prev"]).query)["page"] == ["5"]  # the last page
    assert client.get("/detections?page=2147483647").get_json()["results"] == []
    empty = client.get("/detections?source=nowhere&page=3").get_json()
    assert empty["pagination"]["prev"] is None and empty["pagination"]["pages"] == 0


@pytest.mark.parametrize("query, message", [
    ("page=abc", "page must be a whole number from 1 to 2147483647, got 'abc'"),
    ("page=", "page must be a whole number from 1 to 2147483647, got ''"),
    ("page=1.5", "page must be a whole number from 1 to 2147483647, got '1.5'"),
    ("page=0", "page must be at least 1, got '0'"),
    ("page=-3", "page must be at least 1, got '-3'"),
    ("page=99999999999999999999999", "page must be at most 2147483647, got '99999999999999999999999'"),
    ("per-page=0", "per-page must be at least 1, got '0'"),
    ("per_page=-1", "per_page must be at least 1, got '-1'"),
    ("per_page=ten", "per_page must be a whole number from 1 to 2147483647, got 'ten'"),
    ("per-page=1e3", "per-page must be a whole number from 1 to 2147483647, got '1e3'"),
    ("per-page=4294967296", "per-page must be at most 2147483647, got '4294967296'"),
    ("per-page=5&per_page=6", "per-page and per_page disagree ('5' vs '6'); give one of them"),
    ("kind=walk", "kind must be one of enter, exit, zone_enter, zone_exit, line_cross, got 'walk'"),
    ("source=", "source must be a non-empty name of at most 1000 characters"),
    ("since=yesterday", "since: not an ISO-8601 date-time: 'yesterday' (e.g. 2026-11-25T07:00:00Z)"),
    ("until=2025-13-01", "until: not an ISO-8601 date-time: '2025-13-01' (e.g. 2026-11-25T07:00:00Z)"),
    ("since=2025-11-26&until=2025-11-25", "since (2025-11-26) must not be later than until (2025-11-25)"),
])
def test_bad_parameters_are_400_json(client, query, message):
    r = client.get(f"/detections?{query}")
    assert r.status_code == 400 and r.mimetype == "application/json"
    assert r.get_json() == {"error": message, "status": 400}


def test_missing_or_uninitialised_database_is_a_clear_json_error(tmp_path):
    missing = tmp_path / "missing.db"
    r = create_detections_app(missing).test_client().get("/detections")
    assert r.status_code == 503
    # the file's name, not its absolute path: an error body tells a browser nothing about the server's folders
    assert r.get_json()["error"] == ("no events database at missing.db; run `pose-fast create-db --db missing.db` "
                                     "or start the demo with --db missing.db")
    assert str(tmp_path) not in r.get_data(as_text=True)
    blank = tmp_path / "blank.db"
    blank.write_bytes(b"")
    r = create_detections_app(blank).test_client().get("/detections")
    assert r.status_code == 503 and "run `pose-fast create-db" in r.get_json()["error"]
    app = Flask("no-db")
    app.register_blueprint(bp)
    r = app.test_client().get("/detections")
    assert r.status_code == 503 and "no events database configured" in r.get_json()["error"]


def test_consistent_pages_while_a_writer_is_under_load(tmp_path):
    """Tens of thousands of events written while the API pages through them: every page agrees with its count."""
    path = tmp_path / "load.db"
    total = 40_000
    store = EventStore(path, batch_size=2000, flush_interval=0.01)
    store.add(*event(0))
    store.flush()
    client = create_detections_app(path).test_client()
    done = threading.Event()
    errors = []

    def write():
        try:
            for i in range(1, total):
                store.add(*event(i))
                if i % 500 == 0:
                    done.wait(0.001)  # let the readers in now and then
            store.close()
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    checks = 0
    last_count = 0
    seen = []
    while not done.is_set() or checks < 10:
        for query, select in (("", lambda i: True), ("kind=exit&", lambda i: i % 2 == 1)):
            first = client.get(f"/detections?{query}per-page=100").get_json()
            count = first["pagination"]["count"]
            seen.append(count)
            assert count >= (last_count if not query else 0)
            if not query:
                last_count = count
            # the last page of this snapshot-sized listing, and a page in the middle
            for page in {max(1, -(-count // 100)), max(1, -(-count // 200))}:
                body = client.get(f"/detections?{query}per-page=100&page={page}").get_json()
                rows = body["results"]
                assert body["pagination"]["count"] >= count
                want = [i for i in range((page - 1) * 100 * (2 if query else 1), total) if select(i)][:len(rows)]
                assert rows == [expected(i) for i in want], (query, page)
                if body["pagination"]["count"] == count:
                    assert len(rows) == min(100, count - (page - 1) * 100)
            checks += 1
    writer.join()
    assert not errors, errors
    assert checks >= 10
    assert any(1 < n < total for n in seen), seen  # some pages were read while the writer was writing
    final = client.get("/detections?page=400&per-page=100").get_json()
    assert final["pagination"]["count"] == total and final["results"][-1] == expected(total - 1)


@pytest.fixture()
def http_server(db):
    from waitress.server import create_server

    server = create_server(create_detections_app(db), host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()
    thread.join(10)


def test_real_http_server(http_server):
    with urllib.request.urlopen(f"{http_server}/detections?page=2&per-page=10&kind=enter", timeout=30) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "application/json"
        body = json.loads(r.read())
        rels = links(r.headers["Link"])
    assert [row["id"] for row in body["results"]] == [i + 1 for i in range(20, 40, 2)]
    assert body["pagination"]["next"].startswith(f"{http_server}/detections?")
    assert rels["prev"] == f"{http_server}/detections?kind=enter&page=1&per-page=10"
    with urllib.request.urlopen(rels["next"], timeout=30) as r:
        assert json.loads(r.read())["pagination"]["page"] == 3
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{http_server}/detections?per-page=0", timeout=30)
    assert info.value.code == 400
    assert json.loads(info.value.read()) == {"error": "per-page must be at least 1, got '0'", "status": 400}


def test_listings_stay_right_when_events_are_deleted_or_the_file_is_replaced(tmp_path):
    """Counts and page positions learnt by earlier requests are dropped when events are deleted by hand, or when
    the database file is replaced by another one at the same path."""
    import apsw

    path = tmp_path / "e.db"
    client = create_detections_app(path).test_client()
    queries = ("", "kind=exit&", "since=2025-11-25T06:00:30Z&")
    selects = (lambda row: True, lambda row: row["kind"] == "exit",
               lambda row: row["timestamp"] >= "2025-11-25T06:00:30.000Z")

    def write(indexes):
        with EventStore(path) as store:
            for i in indexes:
                store.add(*event(i))
        return [dict(expected(i), id=n) for n, i in enumerate(indexes, start=1)]

    def check(stored):
        for query, select in zip(queries, selects):
            want = [row for row in stored if select(row)]
            for page in (1, 2, 3, 2):
                body = client.get(f"/detections?{query}per-page=40&page={page}").get_json()
                assert body["pagination"]["count"] == len(want), query
                assert body["results"] == want[(page - 1) * 40:page * 40], (query, page)

    check(write(range(300)))
    path.unlink()
    stored = write(range(1, 250))  # another file at the same path: other events at the same positions
    check(stored)
    conn = apsw.Connection(str(path))
    conn.execute("DELETE FROM events WHERE id BETWEEN 11 AND 60 OR id > 190")
    conn.close()
    check([row for row in stored if not (11 <= row["id"] <= 60 or row["id"] > 190)])


# -- what an attack run found (issue: hardening) -----------------------------------------------------------------
@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
def test_instants_outside_the_utc_years_are_400_json_not_500(db, since):
    r = create_detections_app(db).test_client().get("/detections", query_string={"since": since})  # + as %2B
    assert r.status_code == 400 and r.is_json, r.get_data(as_text=True)[:200]
    assert "outside the years 1 to 9999" in r.get_json()["error"]


def test_instants_before_year_1000_compare_as_instants(db):
    """Stored and compared zero-padded: a since before year 1000 returned nothing, and since=0999 with a later
    until was a 400 ('since after until')."""
    client = create_detections_app(db).test_client()
    assert client.get("/detections?since=0999-01-01").get_json()["pagination"]["count"] == N
    r = client.get("/detections?since=0999-01-01&until=2026-01-01")
    assert r.status_code == 200 and r.get_json()["pagination"]["count"] == N


@pytest.mark.parametrize("path, method, status", [("/nowhere", "GET", 404), ("/detections", "POST", 405),
                                                  ("/detections", "DELETE", 405)])
def test_every_error_is_json(db, path, method, status):
    r = create_detections_app(db).test_client().open(path, method=method)
    assert r.status_code == status and r.is_json
    body = r.get_json()
    assert body["status"] == status and body["error"] and "\n" not in body["error"]
    if status == 405:
        assert "GET" in r.headers["Allow"]
