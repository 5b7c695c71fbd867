"""kurz on real PostgreSQL 15 (started here by scripts/pg-cluster): the API
against a primary with 2 streaming replicas, read-after-write with a delayed
replica, a replica killed and a primary stopped under load, a SIGKILLed kurz
losing no acknowledged create, and two shards failing independently."""

import http.client
import os
import random
import subprocess
import threading
import time

import pytest

import pgcluster
from kurztest import (KURZ_BIN, CREATE, assert_error, auth, child_env, create, create_ok, get,
                      metric_sum, metrics, request, unique_url)

pytestmark = pytest.mark.skipif(not pgcluster.available(),
                                reason="PostgreSQL 15 binaries not installed "
                                       "(/usr/lib/postgresql/15/bin; scripts/install-deps)")

# L1 off: every redirect really reads the store. Fast click flushes and
# replica checks keep the test short.
FAST = ["--create-rate-limit", "0", "--l1-size", "0", "--click-flush-interval", "200ms",
        "--replica-check-interval", "250ms", "--db-pool-min-idle", "2"]


@pytest.fixture(scope="module")
def cluster():
    import psycopg2  # noqa: F401  (fail loudly: install-deps installs python3-psycopg2)
    c = pgcluster.Cluster(shards=1)
    try:
        c.up()
        yield c
    finally:
        c.down()


@pytest.fixture(scope="module")
def sharded():
    c = pgcluster.Cluster(shards=2)
    try:
        c.up()
        yield c
    finally:
        c.down()


def pg_args(c):
    return ["--database", c.env["KURZ_DATABASE"], "--replicas", c.env["KURZ_REPLICAS"]]


def tool(args, env):
    r = subprocess.run([KURZ_BIN] + args, capture_output=True, text=True, timeout=60,
                       env=child_env(env))
    assert r.returncode == 0, "kurz %s: %d %s %s" % (args, r.returncode, r.stdout, r.stderr)
    return r.stdout.strip()


def link_row(c, code):
    rows = c.query("SELECT url, clicks FROM links WHERE code = %s", (code,))
    return rows[0] if rows else None


def test_api_on_primary_and_replicas(cluster, kurz):
    env = {"KURZ_DATABASE": cluster.env["KURZ_DATABASE"]}
    assert tool(["migrate"], env) == "schema version 2"
    key = tool(["admin", "create-key", "--name", "pgtest"], env)
    s = kurz.start(pg_args(cluster) + FAST)

    url = unique_url("pg")
    a = create_ok(s.port, url)
    code = a["shortCode"]
    r = get(s.port, "/" + code)
    assert r.status == 302 and r.headers["location"] == url
    # Dedupe: the same URL again gives the same code, and one row.
    assert create_ok(s.port, url)["shortCode"] == code
    assert cluster.query("SELECT count(*) FROM links WHERE url = %s", (url,))[0][0] == 1
    # An alias, then the same alias again.
    alias = "pg-%d" % random.randrange(1 << 30)
    assert create_ok(s.port, unique_url("al"), alias=alias)["shortCode"] == alias
    assert_error(create(s.port, unique_url("al2"), alias=alias), 409, "ALIAS_TAKEN")
    assert get(s.port, "/" + alias).status == 302
    # Several creates in flight at once are group-committed; all redirect.
    urls = [unique_url("grp") for _ in range(40)]
    out = [None] * len(urls)

    def work(k):
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        for i in range(k, len(urls), 8):
            out[i] = create_ok(s.port, urls[i], conn=conn)["shortCode"]
        conn.close()
    ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert len(set(out)) == len(urls)
    for u, c in zip(urls, out):
        assert get(s.port, "/" + c).headers.get("location") == u
    # Clicks reach the primary (totals and the daily rollup).
    for _ in range(3):
        assert get(s.port, "/" + code).status == 302
    deadline = time.monotonic() + 10
    while link_row(cluster, code)[1] < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert link_row(cluster, code)[1] == 4
    assert cluster.query("SELECT sum(clicks) FROM clicks_daily WHERE code = %s",
                         (code,))[0][0] == 4
    j = get(s.port, "/api/v1/urls/" + code).json()
    assert j["totalClicks"] == 4
    # Delete: gone at once, even while replicas may still replay it.
    r = request(s.port, "DELETE", "/api/v1/urls/" + code, headers=auth(key))
    assert r.status == 200, r
    assert_error(get(s.port, "/" + code), 404, "URL_NOT_FOUND")
    assert link_row(cluster, code) is None
    assert cluster.query("SELECT count(*) FROM url_index WHERE code = %s", (code,))[0][0] == 0
    # Reads were served by the replicas.
    m = metrics(s.port)
    assert metric_sum(m, "kurz_pg_reads_total", node="replica1") > 0
    assert metric_sum(m, "kurz_pg_reads_total", node="replica2") > 0
    assert metric_sum(m, "kurz_pg_node_up", node="primary") == 1
    # The schema: hash partitions on the code, the partial expiry index.
    parts = cluster.query("SELECT count(*) FROM pg_inherits WHERE inhparent = 'links'::regclass")
    assert parts[0][0] == 16
    assert cluster.query("SELECT indexdef FROM pg_indexes WHERE indexname = "
                         "'links_expires_at'")[0][0].endswith("WHERE (expires_at > 0)")


def test_read_after_write_with_delayed_replica(cluster, kurz):
    s = kurz.start(pg_args(cluster) + FAST)
    for n in ("replica1", "replica2"):
        cluster.set_conf(0, n, "recovery_min_apply_delay = '5s'")
    try:
        time.sleep(0.3)
        codes = []
        for i in range(15):
            u = unique_url("raw")
            code = create_ok(s.port, u)["shortCode"]
            r = get(s.port, "/" + code)
            assert r.status == 302 and r.headers["location"] == u, r
            codes.append(code)
        # The replicas really did not have them yet: the primary answered.
        missing = cluster.query("SELECT count(*) FROM links WHERE code = ANY(%s)", (codes,),
                                node="replica1")[0][0]
        assert missing < len(codes)
        m = metrics(s.port)
        assert metric_sum(m, "kurz_pg_lookups_total", **{"class": "primary_fallback"}) >= 1
    finally:
        for n in ("replica1", "replica2"):
            cluster.set_conf(0, n, "recovery_min_apply_delay = 0")
    cluster.wait_replayed(timeout=15)


def _redirect_load(port, codes, stop, failures, counts):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while not stop.is_set():
        code = random.choice(codes)
        try:
            r = get(port, "/" + code, conn=conn)
            counts[0] += 1
            if r.status != 302:
                failures.append((time.monotonic(), r.status))
        except Exception as e:  # a dropped connection counts as a failure
            failures.append((time.monotonic(), repr(e)))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.close()


def test_replica_killed_under_load_and_returns(cluster, kurz):
    s = kurz.start(pg_args(cluster) + FAST)
    codes = [create_ok(s.port, unique_url("rk"))["shortCode"] for _ in range(20)]
    cluster.wait_replayed()
    stop, failures, counts = threading.Event(), [], [0]
    ts = [threading.Thread(target=_redirect_load, args=(s.port, codes, stop, failures, counts))
          for _ in range(3)]
    [t.start() for t in ts]
    try:
        time.sleep(1.0)
        killed_at = time.monotonic()
        cluster.stop(0, "replica1", mode="immediate")
        time.sleep(2.0)
        before = counts[0]
        time.sleep(1.0)
        assert counts[0] > before, "redirects stalled after the replica died"
        m = metrics(s.port)
        assert metric_sum(m, "kurz_pg_node_up", node="replica1") == 0
        cluster.restart_all()
        back = time.monotonic()
        while time.monotonic() - back < 10:
            m = metrics(s.port)
            if metric_sum(m, "kurz_pg_node_up", node="replica1") == 1:
                break
            time.sleep(0.2)
        assert metric_sum(m, "kurz_pg_node_up", node="replica1") == 1, "replica1 never returned"
        reads = metric_sum(m, "kurz_pg_reads_total", node="replica1")
        time.sleep(1.0)
        assert metric_sum(metrics(s.port), "kurz_pg_reads_total", node="replica1") > reads, \
            "replica1 is up but gets no reads"
    finally:
        stop.set()
        [t.join() for t in ts]
    # The detection is immediate (a failed read moves on to the next node):
    # no redirect failed, not even inside a 5 s detection window.
    late = [f for f in failures if f[0] > killed_at + 5]
    assert not late, "failed redirects after the detection window: %r" % late[:5]
    assert not failures, "failed redirects: %r" % failures[:5]
    assert counts[0] > 50


def test_primary_stopped_creates_503_fast_redirects_continue(cluster, kurz):
    s = kurz.start(pg_args(cluster) + FAST)
    pairs = []
    for _ in range(10):
        u = unique_url("ps")
        pairs.append((create_ok(s.port, u)["shortCode"], u))
    cluster.wait_replayed()
    cluster.stop(0, "primary")
    try:
        for _ in range(3):
            t0 = time.monotonic()
            r = create(s.port, unique_url("down"))
            took = time.monotonic() - t0
            assert_error(r, 503, "SERVICE_UNAVAILABLE")
            assert r.headers.get("retry-after"), r
            assert took < 2.0, "create took %.2fs with the primary down" % took
        for code, u in pairs:
            r = get(s.port, "/" + code)
            assert r.status == 302 and r.headers["location"] == u, r
    finally:
        cluster.restart_all()
    deadline = time.monotonic() + 15
    while True:
        r = create(s.port, unique_url("back"))
        if r.status == 201:
            break
        assert time.monotonic() < deadline, "creates did not recover: %r" % r
        time.sleep(0.2)
    assert get(s.port, "/" + r.json()["shortCode"]).status == 302


def test_sigkill_during_creates_loses_no_201(cluster, kurz):
    s = kurz.start(pg_args(cluster) + FAST)
    acked, stop = [], threading.Event()

    def work():
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        while not stop.is_set():
            u = unique_url("kill")
            try:
                r = create(s.port, u, conn=conn)
            except Exception:
                return
            if r.status == 201:
                acked.append((r.json()["shortCode"], u))
    ts = [threading.Thread(target=work) for _ in range(6)]
    [t.start() for t in ts]
    time.sleep(1.5)
    s.kill()
    stop.set()
    [t.join() for t in ts]
    assert len(acked) > 20
    codes = [c for c, _ in acked]
    rows = dict(cluster.query("SELECT code, url FROM links WHERE code = ANY(%s)", (codes,)))
    lost = [(c, u) for c, u in acked if rows.get(c) != u]
    assert not lost, "acknowledged creates missing after SIGKILL: %r" % lost[:5]


def test_two_shards_fail_independently(sharded, kurz):
    shards_file = sharded.env["KURZ_SHARDS"]
    s = kurz.start(["--shards", shards_file] + FAST)
    pairs = []
    for _ in range(40):
        u = unique_url("sh")
        pairs.append((create_ok(s.port, u)["shortCode"], u))
    owner = {}
    for k in range(2):
        for (code,) in sharded.query("SELECT code FROM links", shard=k):
            owner[code] = k
    assert all(c in owner for c, _ in pairs)
    on = [sum(1 for c, _ in pairs if owner[c] == k) for k in range(2)]
    assert on[0] > 5 and on[1] > 5, "codes not spread over both shards: %r" % on
    # Dedupe works across shards (the URL's entry may live on the other one).
    for c, u in pairs[:10]:
        assert create_ok(s.port, u)["shortCode"] == c
    sharded.wait_replayed()
    sharded.stop(1, "replica1")
    sharded.stop(1, "primary")
    try:
        for c, u in pairs:
            r = get(s.port, "/" + c)
            if owner[c] == 0:
                assert r.status == 302 and r.headers["location"] == u, r
            else:
                assert_error(r, 503, "SERVICE_UNAVAILABLE")
        # New links still get made: generated codes avoid the dead shard.
        for _ in range(10):
            u = unique_url("sh-down")
            c = create_ok(s.port, u)["shortCode"]
            assert get(s.port, "/" + c).headers.get("location") == u
    finally:
        sharded.restart_all()
    deadline = time.monotonic() + 15
    c, u = next(p for p in pairs if owner[p[0]] == 1)
    while get(s.port, "/" + c).status != 302:
        assert time.monotonic() < deadline, "shard s1 did not come back"
        time.sleep(0.2)


def test_the_database_urls_own_options_reach_every_session(cluster, kurz):
    """kurz adds its own session settings (enable_seqscan and jit off,
    docs/POSTGRES.md) to the URL's "options"; the URL's own still apply."""
    url = cluster.env["KURZ_DATABASE"]
    url += ("&" if "?" in url else "?") + "options=-c%20default_transaction_read_only%3Don"
    rc, out, err = kurz.run_expect_exit(["--database", url] + FAST)
    assert rc != 0 and "read-only transaction" in out + err, (rc, out, err)
