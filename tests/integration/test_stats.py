"""The stats service and the roles: GET /api/v1/stats/url/{code} and
/api/v1/stats/platform answered from the click rollups and the maintained
platform counters (SQLite here), and on PostgreSQL a create-role, a
lookup-role and a stats-role process sharing one database, each refusing the
others' routes."""

import datetime
import subprocess
import time

import pytest

import pgcluster
from kurztest import (CREATE, KURZ_BIN, assert_error, auth, child_env, create_ok, get,
                      metric_sum, metrics, request, unique_url)

FAST = ["--create-rate-limit", "0", "--click-flush-interval", "100ms"]


def today():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def wait_for(fn, timeout=10.0):
    """Polls fn until it returns a true value (click flushes are periodic)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def link_stats(port, code):
    r = get(port, "/api/v1/stats/url/" + code)
    assert r.status == 200, r
    return r.json()


def platform(port):
    r = get(port, "/api/v1/stats/platform")
    assert r.status == 200, r
    return r.json()


def test_link_stats_count_clicks(kurz):
    s = kurz.start(FAST)
    code = create_ok(s.port, unique_url("st"))["shortCode"]
    j = link_stats(s.port, code)
    assert j["shortCode"] == code
    assert (j["totalClicks"], j["clicksToday"], j["clicksThisWeek"], j["clicksThisMonth"]) == \
        (0, 0, 0, 0)
    assert j["firstClickAt"] is None and j["lastClickAt"] is None and j["clickTimeline"] == []

    before = time.time()
    for _ in range(7):
        assert get(s.port, "/" + code).status == 302
    j = wait_for(lambda: (lambda x: x if x["totalClicks"] == 7 else None)(
        link_stats(s.port, code)))
    assert j, "7 clicks not reported: %r" % link_stats(s.port, code)
    assert j["clicksToday"] == j["clicksThisWeek"] == j["clicksThisMonth"] == 7
    assert j["clickTimeline"] == [{"date": today(), "clicks": 7}]
    first = datetime.datetime.strptime(j["firstClickAt"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert before - 2 <= first <= time.time() + 1
    assert j["lastClickAt"] >= j["firstClickAt"]
    # Another link's clicks are its own.
    other = create_ok(s.port, unique_url("st2"))["shortCode"]
    assert get(s.port, "/" + other).status == 302
    assert wait_for(lambda: link_stats(s.port, other)["totalClicks"] == 1)
    assert link_stats(s.port, code)["totalClicks"] == 7


def test_stats_errors(kurz):
    s = kurz.start(FAST)
    r = get(s.port, "/api/v1/stats/url/nosuch1")
    assert_error(r, 404, "URL_NOT_FOUND")
    assert r.json()["shortCode"] == "nosuch1"
    assert_error(get(s.port, "/api/v1/stats/url/bad%20code"), 404, "URL_NOT_FOUND")
    assert_error(get(s.port, "/api/v1/stats/url/"), 404, "URL_NOT_FOUND")
    r = request(s.port, "POST", "/api/v1/stats/platform", {})
    assert r.status == 405 and "GET" in r.headers.get("allow", ""), r
    assert request(s.port, "DELETE", "/api/v1/stats/url/abc1234").status == 405
    # The stats route has its own metrics label.
    assert metric_sum(metrics(s.port), "kurz_http_requests_total", route="stats",
                      status="404") >= 2


def test_platform_totals_follow_creates_clicks_deletes(kurz):
    s = kurz.start(FAST + ["--cleanup-interval", "0"])
    key = kurz.admin_key(s.data_dir)
    p0 = platform(s.port)
    assert p0["totalUrls"] == 0 and p0["totalClicks"] == 0 and p0["activeUrls"] == 0
    assert p0["clicksToday"] == 0 and p0["lastUpdated"]

    codes = [create_ok(s.port, unique_url("pl"))["shortCode"] for _ in range(5)]
    # Deduplicated creates are not new links.
    create_ok(s.port, "https://example.com/same-url-once")
    create_ok(s.port, "https://example.com/same-url-once")
    # Totals may come from a PostgreSQL replica: visible once replayed (ms).
    p = wait_for(lambda: (lambda x: x if x["totalUrls"] == 6 else None)(platform(s.port)))
    p = p or platform(s.port)
    assert p["totalUrls"] == 6 and p["activeUrls"] == 6

    for c in codes[:3]:
        for _ in range(2):
            assert get(s.port, "/" + c).status == 302
    p = wait_for(lambda: (lambda x: x if x["totalClicks"] == 6 else None)(platform(s.port)))
    assert p, platform(s.port)
    assert p["clicksToday"] == 6

    r = request(s.port, "DELETE", "/api/v1/urls/" + codes[0], headers=auth(key))
    assert r.status == 200, r
    p = wait_for(lambda: (lambda x: x if x["totalUrls"] == 5 else None)(platform(s.port)))
    p = p or platform(s.port)
    assert p["totalUrls"] == 5 and p["activeUrls"] == 5
    # Clicks already served stay counted: the platform's history.
    assert p["totalClicks"] == 6
    assert_error(get(s.port, "/api/v1/stats/url/" + codes[0]), 404, "URL_NOT_FOUND")

    # A link that expired but is not cleaned up yet is counted, not active.
    create_ok(s.port, unique_url("exp"), expiresIn=1)
    time.sleep(2.1)
    p = platform(s.port)
    assert p["totalUrls"] == 6 and p["activeUrls"] == 5


def test_platform_totals_survive_restart_and_cleanup(kurz):
    s = kurz.start(FAST + ["--cleanup-interval", "1s"])
    create_ok(s.port, unique_url("keep"))
    create_ok(s.port, unique_url("gone"), expiresIn=1)
    assert platform(s.port)["totalUrls"] == 2
    # The cleanup job deletes the expired link and the counter follows.
    assert wait_for(lambda: platform(s.port)["totalUrls"] == 1, timeout=15)
    assert platform(s.port)["activeUrls"] == 1
    s2 = kurz.restart(s)
    assert platform(s2.port)["totalUrls"] == 1


def test_role_needs_postgres(kurz):
    rc, out, err = kurz.run_expect_exit(["--role", "lookup", "--listen", "127.0.0.1:0",
                                         "--data-dir", str(kurz.new_data_dir())])
    assert rc != 0 and "--database" in err
    rc, out, err = kurz.run_expect_exit(["--role", "bogus"])
    assert rc != 0 and "--role" in err
    # --role all is the default and serves everything on SQLite.
    s = kurz.start(FAST + ["--role", "all"])
    code = create_ok(s.port, unique_url("all"))["shortCode"]
    assert get(s.port, "/" + code).status == 302
    assert link_stats(s.port, code)["shortCode"] == code
    for h in ("/health", "/health/create", "/health/lookup", "/health/stats"):
        r = get(s.port, h)
        assert r.status == 200 and r.json()["status"] == "UP", (h, r)


# ---- roles on PostgreSQL ---------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    if not pgcluster.available():
        pytest.skip("PostgreSQL 15 binaries not installed (scripts/install-deps)")
    c = pgcluster.Cluster(shards=1)
    try:
        c.up()
        yield c
    finally:
        c.down()


def test_roles_on_one_postgres(cluster, kurz):
    db = ["--database", cluster.env["KURZ_DATABASE"], "--replicas", cluster.env["KURZ_REPLICAS"],
          "--db-pool-min-idle", "1", "--replica-check-interval", "250ms"] + FAST
    cr = kurz.start(db + ["--role", "create"])
    lk = kurz.start(db + ["--role", "lookup"])
    st = kurz.start(db + ["--role", "stats"])

    code = create_ok(cr.port, unique_url("roles"))["shortCode"]
    for _ in range(3):
        r = get(lk.port, "/" + code)
        assert r.status == 302, r
    r = get(lk.port, "/api/v1/urls/" + code)
    assert r.status == 200 and r.json()["shortCode"] == code
    # The lookup process counted the clicks and flushed them itself; the
    # stats process reads them from the shared store.
    j = wait_for(lambda: (lambda x: x if x["totalClicks"] == 3 else None)(
        link_stats(st.port, code)))
    assert j, link_stats(st.port, code)
    assert j["clickTimeline"] == [{"date": today(), "clicks": 3}]
    assert wait_for(lambda: (lambda p: p["totalUrls"] >= 1 and p["totalClicks"] >= 3 and
                             p["activeUrls"] >= 1)(platform(st.port)))

    # Each role refuses the others' routes with 404 naming the right service.
    def refused(port, method, path, service, body=None):
        r = request(port, method, path, body)
        assert_error(r, 404, "NOT_FOUND")
        assert r.json()["service"] == service, r

    refused(lk.port, "POST", CREATE, "create", {"originalUrl": unique_url("x")})
    refused(lk.port, "GET", "/api/v1/stats/platform", "stats")
    refused(lk.port, "DELETE", "/api/v1/urls/" + code, "create")
    refused(lk.port, "GET", "/health/create", "create")
    refused(st.port, "GET", "/" + code, "lookup")
    refused(st.port, "POST", CREATE, "create", {"originalUrl": unique_url("x")})
    refused(st.port, "GET", "/api/v1/urls/" + code, "lookup")
    refused(cr.port, "GET", "/" + code, "lookup")
    refused(cr.port, "GET", "/api/v1/stats/url/" + code, "stats")
    refused(cr.port, "GET", "/health/stats", "stats")
    # Every role answers its own health, /health and /metrics.
    for srv, role in ((cr, "create"), (lk, "lookup"), (st, "stats")):
        for path in ("/health", "/health/" + role):
            r = get(srv.port, path)
            assert r.status == 200 and r.json()["role"] == role, (path, r)
        assert get(srv.port, "/metrics").status == 200
    # Admin routes belong to create; the key lives in PostgreSQL.
    k = subprocess.run([KURZ_BIN, "admin", "create-key", "--name", "roles"], capture_output=True,
                       text=True, timeout=60,
                       env=child_env({"KURZ_DATABASE": cluster.env["KURZ_DATABASE"]}))
    assert k.returncode == 0, k.stderr
    admin = k.stdout.strip()
    assert request(cr.port, "GET", "/api/v1/urls?limit=5", headers=auth(admin)).status == 200
    assert request(cr.port, "DELETE", "/api/v1/urls/" + code, headers=auth(admin)).status == 200
    # The stats process reads replicas: the delete shows once replayed (ms).
    assert wait_for(lambda: get(st.port, "/api/v1/stats/url/" + code).status == 404)
    assert_error(get(st.port, "/api/v1/stats/url/" + code), 404, "URL_NOT_FOUND")
