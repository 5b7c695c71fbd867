"""What survives restarts, crashes and races: every acknowledged link, exact
click counts across a clean shutdown, one winner per alias, one server per
data directory."""

import http.client
import json
import signal
import threading
import time
from collections import Counter

import pytest

from kurztest import (CREATE, CODE_RE, assert_error, auth, create, create_ok, free_port, get,
                      list_codes, metric_sum, metrics, parse_time, request, unique_url)


def _create_many(port, urls, threads=4, **fields):
    """Creates every URL (several connections in parallel); returns the
    response bodies in the order of urls."""
    out = [None] * len(urls)

    def work(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for i in range(k, len(urls), threads):
                out[i] = create_ok(port, urls[i], conn=conn, **fields)
        finally:
            conn.close()

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(out), "some creates failed"
    return out


def _assert_all_redirect(port, pairs):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for code, url in pairs:
            r = get(port, "/" + code, conn=conn)
            assert r.status == 302, "code %s lost: %r" % (code, r)
            assert r.headers["location"] == url, (code, url, r.headers["location"])
    finally:
        conn.close()


def test_restart_keeps_every_link(kurz):
    s = kurz.start(["--create-rate-limit", "0"])
    urls = [unique_url("restart%d" % i) for i in range(200)]
    made = _create_many(s.port, urls)
    alias = "keep-me-%d" % (time.time_ns() % 10**6)
    aliased = create_ok(s.port, unique_url("ra"), alias=alias)
    expiring = create_ok(s.port, unique_url("rexp"), expiresIn=86400)
    pairs = [(j["shortCode"], j["originalUrl"]) for j in made + [aliased, expiring]]
    assert len({c for c, _ in pairs}) == len(pairs)

    s2 = kurz.restart(s)  # SIGTERM, exit 0, new process on the same dir
    _assert_all_redirect(s2.port, pairs)
    info = get(s2.port, "/api/v1/urls/" + expiring["shortCode"]).json()
    assert parse_time(info["expiresAt"]) == parse_time(expiring["expiresAt"])
    assert parse_time(info["createdAt"]) == parse_time(expiring["createdAt"])
    # The same URL still dedupes to its code; new codes never repeat old ones.
    assert create_ok(s2.port, urls[0])["shortCode"] == made[0]["shortCode"]
    new = _create_many(s2.port, [unique_url("after") for _ in range(100)])
    new_codes = {j["shortCode"] for j in new}
    assert len(new_codes) == 100
    assert not new_codes & {c for c, _ in pairs}, "a code was issued twice"


def _load(port, stop, acked, errors):
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            url = unique_url("load")
            body = json.dumps({"originalUrl": url})
            conn.request("POST", CREATE, body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            if r.status == 201:
                j = json.loads(data)
                acked.append((j["shortCode"], url))
            elif r.status != 503:
                errors.append((r.status, data))
        except (OSError, http.client.HTTPException):
            if conn:
                conn.close()
            conn = None
            time.sleep(0.05)
    if conn:
        conn.close()


def _run_load(s, seconds, stopper):
    """Creates from 4 threads; after `seconds`, calls stopper() while they are
    still going. Returns the (code, url) of every 201 received."""
    stop = threading.Event()
    acked, errors = [], []
    ts = [threading.Thread(target=_load, args=(s.port, stop, acked, errors)) for _ in range(4)]
    for t in ts:
        t.start()
    time.sleep(seconds)
    stopper()
    time.sleep(0.3)
    stop.set()
    for t in ts:
        t.join(60)
    assert not errors, "unexpected answers under load: %r" % errors[:5]
    return acked


def test_sigkill_during_create_load_loses_no_acknowledged_link(kurz):
    s = kurz.start(["--create-rate-limit", "0"])
    acked = _run_load(s, 2.0, s.kill)
    assert len(acked) >= 20, "load too light to mean anything: %d creates" % len(acked)
    assert len({c for c, _ in acked}) == len(acked), "duplicate codes under load"
    s2 = kurz.restart(s)
    _assert_all_redirect(s2.port, acked)
    new = {j["shortCode"] for j in _create_many(s2.port, [unique_url("n") for _ in range(50)])}
    assert not new & {c for c, _ in acked}, "a code was issued twice after a crash"


def test_sigterm_during_create_load_exits_0_and_keeps_acknowledged_links(kurz):
    s = kurz.start(["--create-rate-limit", "0"])
    stopped = []
    acked = _run_load(s, 1.5, lambda: stopped.append(s.stop()))
    assert stopped, "stop did not return"
    assert len(acked) >= 10, len(acked)
    s2 = kurz.restart(s)
    _assert_all_redirect(s2.port, acked)


def test_sigint_exits_0(kurz):
    s = kurz.start()
    assert get(s.port, "/health").status == 200
    s.stop(signal.SIGINT)


def _redirect_n(port, code, n, conns=4):
    """n GET redirects of code, spread over several connections (so over both
    loop threads)."""
    cs = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(conns)]
    try:
        for i in range(n):
            r = get(port, "/" + code, conn=cs[i % conns])
            assert r.status == 302, r
    finally:
        for c in cs:
            c.close()


def test_sigterm_keeps_exact_click_counts(kurz):
    # With a 60 s interval only the shutdown flush can write the counts.
    s = kurz.start(["--create-rate-limit", "0", "--click-flush-interval", "60s"])
    a = create_ok(s.port, unique_url("clicks-a"))["shortCode"]
    b = create_ok(s.port, unique_url("clicks-b"))["shortCode"]
    _redirect_n(s.port, a, 37)
    _redirect_n(s.port, b, 5)
    s2 = kurz.restart(s)
    ja = get(s2.port, "/api/v1/urls/" + a).json()
    jb = get(s2.port, "/api/v1/urls/" + b).json()
    assert ja["totalClicks"] == 37, ja
    assert jb["totalClicks"] == 5, jb
    assert ja["lastAccessAt"] is not None
    assert abs(parse_time(ja["lastAccessAt"]).timestamp() - time.time()) < 300, ja


def test_click_counts_appear_after_flush_interval(kurz):
    s = kurz.start(["--create-rate-limit", "0", "--click-flush-interval", "1s"])
    code = create_ok(s.port, unique_url("flush"))["shortCode"]
    _redirect_n(s.port, code, 9)
    deadline = time.time() + 10
    while True:
        j = get(s.port, "/api/v1/urls/" + code).json()
        if j["totalClicks"] == 9:
            break
        assert j["totalClicks"] < 9, "too many clicks: %r" % j
        assert time.time() < deadline, "clicks not flushed within 10 s: %r" % j
        time.sleep(0.25)
    assert j["lastAccessAt"] is not None
    time.sleep(2.5)  # more flushes must not count them twice
    assert get(s.port, "/api/v1/urls/" + code).json()["totalClicks"] == 9
    _redirect_n(s.port, code, 3, conns=1)
    deadline = time.time() + 10
    while get(s.port, "/api/v1/urls/" + code).json()["totalClicks"] != 12:
        assert time.time() < deadline, "second batch of clicks not flushed"
        time.sleep(0.25)


def _wait_clicks(port, code, n, timeout=10):
    deadline = time.time() + timeout
    while True:
        j = get(port, "/api/v1/urls/" + code).json()
        if j["totalClicks"] == n:
            return j
        assert j["totalClicks"] < n, "too many clicks: %r" % j
        assert time.time() < deadline, "not %d clicks within %d s: %r" % (n, timeout, j)
        time.sleep(0.1)


@pytest.mark.sqlite_only("SQLite logs each click flush and folds the log into the rollup later")
def test_flushed_clicks_survive_sigkill_before_the_fold(kurz):
    # A flush makes the clicks durable in the click log; the daily rollup
    # gets them up to a minute later. Reads count them from the flush on, and
    # a crash in between loses none: the next start folds the log.
    # No expiry cleanup: it would fold the log before the crash.
    s = kurz.start(["--create-rate-limit", "0", "--click-flush-interval", "1s",
                    "--cleanup-interval", "0"])
    a = create_ok(s.port, unique_url("log-a"))["shortCode"]
    b = create_ok(s.port, unique_url("log-b"))["shortCode"]
    _redirect_n(s.port, a, 23)
    _redirect_n(s.port, b, 4)
    _wait_clicks(s.port, a, 23)
    _wait_clicks(s.port, b, 4)
    st = get(s.port, "/api/v1/stats/url/" + a).json()
    assert st["totalClicks"] == 23 and st["clicksToday"] == 23, st
    assert sum(d["clicks"] for d in st["clickTimeline"]) == 23, st
    assert get(s.port, "/api/v1/stats/platform").json()["totalClicks"] == 27
    m = metrics(s.port)
    assert metric_sum(m, "kurz_sqlite_clicks_unfolded") >= 2, "not deferred: %r" % m
    assert metric_sum(m, "kurz_sqlite_click_folds_total") == 0
    s.kill()
    s2 = kurz.restart(s)
    m = metrics(s2.port)
    assert metric_sum(m, "kurz_sqlite_clicks_unfolded") == 0
    assert metric_sum(m, "kurz_sqlite_click_folds_total") == 1  # the start folded the log
    assert get(s2.port, "/api/v1/urls/" + a).json()["totalClicks"] == 23
    assert get(s2.port, "/api/v1/urls/" + b).json()["totalClicks"] == 4
    assert get(s2.port, "/api/v1/stats/platform").json()["totalClicks"] == 27
    # Folded and logged clicks add up.
    _redirect_n(s2.port, a, 2, conns=1)
    j = _wait_clicks(s2.port, a, 25)
    assert j["lastAccessAt"] is not None
    st = get(s2.port, "/api/v1/stats/url/" + a).json()
    assert st["totalClicks"] == 25 and st["clicksToday"] == 25, st
    assert st["clickTimeline"][-1]["clicks"] == 25, st


@pytest.mark.sqlite_only("SQLite logs each click flush and folds the log into the rollup later")
def test_idle_server_folds_its_click_log_on_time(kurz):
    s = kurz.start(["--create-rate-limit", "0", "--click-flush-interval", "200ms",
                    "--click-fold-interval", "1s", "--cleanup-interval", "0"])
    a = create_ok(s.port, unique_url("fold-idle"))["shortCode"]
    _redirect_n(s.port, a, 11)
    deadline = time.time() + 10
    while True:  # no more traffic: only the flush timer can bring the fold
        m = metrics(s.port)
        if (metric_sum(m, "kurz_sqlite_click_folds_total") >= 1
                and metric_sum(m, "kurz_sqlite_clicks_unfolded") == 0):
            break
        assert time.time() < deadline, "click log not folded within 10 s: %r" % m
        time.sleep(0.2)
    assert get(s.port, "/api/v1/urls/" + a).json()["totalClicks"] == 11
    st = get(s.port, "/api/v1/stats/url/" + a).json()
    assert st["totalClicks"] == 11 and st["clicksToday"] == 11, st
    assert get(s.port, "/api/v1/stats/platform").json()["totalClicks"] == 11


def test_click_fold_interval_must_be_positive(kurz):
    rc, out, err = kurz.run_expect_exit(["--listen", "127.0.0.1:%d" % free_port(),
                                         "--click-fold-interval", "0"])
    assert rc != 0 and "positive" in err, (rc, out, err)


@pytest.mark.sqlite_only("SQLite logs each click flush and folds the log into the rollup later")
def test_deleted_link_takes_its_logged_clicks_along(kurz):
    s = kurz.start(["--create-rate-limit", "0", "--click-flush-interval", "1s"])
    key = kurz.admin_key(s.data_dir)
    alias = "fold-del-%d" % (time.time_ns() % 10**6)
    create_ok(s.port, unique_url("fd1"), alias=alias)
    _redirect_n(s.port, alias, 6)
    _wait_clicks(s.port, alias, 6)
    r = request(s.port, "DELETE", "/api/v1/urls/" + alias, headers=auth(key))
    assert r.status == 200, r
    # The same alias again is a new link: none of the old clicks are its.
    create_ok(s.port, unique_url("fd2"), alias=alias)
    assert get(s.port, "/api/v1/urls/" + alias).json()["totalClicks"] == 0
    st = get(s.port, "/api/v1/stats/url/" + alias).json()
    assert st["totalClicks"] == 0 and st["clickTimeline"] == [], st
    # The platform keeps the clicks it served.
    assert get(s.port, "/api/v1/stats/platform").json()["totalClicks"] == 6
    s2 = kurz.restart(s)
    assert get(s2.port, "/api/v1/urls/" + alias).json()["totalClicks"] == 0
    assert get(s2.port, "/api/v1/stats/platform").json()["totalClicks"] == 6


def _wait_metric(port, name, pred, timeout=10):
    deadline = time.time() + timeout
    while True:
        m = metrics(port)
        if pred(metric_sum(m, name)):
            return m
        assert time.time() < deadline, "%s never reached the expected value: %r" % (name, m)
        time.sleep(0.2)


@pytest.mark.sqlite_only("SQLite writes the code and URL indexes of new links in periodic folds")
def test_new_links_are_found_before_the_index_fold_and_after_sigkill(kurz):
    # New links reach the code and URL indexes in a fold (once per
    # --click-fold-interval): until then, and after a crash before it, every
    # read finds them: redirects, the admin list in code order, and dedupe
    # (the same URL again gets the same code).
    s = kurz.start(["--create-rate-limit", "0", "--click-fold-interval", "1h"])
    key = kurz.admin_key(s.data_dir)
    urls = [unique_url("unindexed%d" % i) for i in range(60)]
    made = {j["shortCode"]: j["originalUrl"] for j in _create_many(s.port, urls)}
    alias = "unindexed-%d" % (time.time_ns() % 10**6)
    made[alias] = create_ok(s.port, unique_url("ua"), alias=alias)["originalUrl"]
    m = metrics(s.port)
    assert metric_sum(m, "kurz_sqlite_links_unindexed") == 61, m
    assert metric_sum(m, "kurz_sqlite_index_folds_total") == 0, m

    def check(port):
        codes = list_codes(port, key)
        assert codes == sorted(made), "list: %d codes, in order: %s" % (
            len(codes), codes == sorted(codes))
        _assert_all_redirect(port, made.items())
        again = _create_many(port, urls)
        for j in again:
            assert made.get(j["shortCode"]) == j["originalUrl"], "not deduplicated: %r" % j

    check(s.port)
    s.kill()
    s2 = kurz.restart(s)
    assert metric_sum(metrics(s2.port), "kurz_sqlite_links_unindexed") == 61
    check(s2.port)
    # The fold, when due: nothing waits any more, and everything is found.
    s2.stop()
    s3 = kurz.start(["--create-rate-limit", "0", "--click-fold-interval", "1s",
                     "--click-flush-interval", "200ms"], data_dir=s.data_dir)
    _wait_metric(s3.port, "kurz_sqlite_index_folds_total", lambda v: v >= 1)
    assert metric_sum(metrics(s3.port), "kurz_sqlite_links_unindexed") == 0
    check(s3.port)


def test_100_racing_creates_of_one_alias_one_wins(kurz):
    s = kurz.start(["--create-rate-limit", "0"])
    alias = "race-%d" % (time.time_ns() % 10**6)
    n = 100
    barrier = threading.Barrier(n)
    results = [None] * n

    def racer(i):
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        try:
            conn.connect()
            barrier.wait(30)
            url = "https://example.com/racer/%d" % i
            results[i] = (create(s.port, url, conn=conn, alias=alias), url)
        finally:
            conn.close()

    ts = [threading.Thread(target=racer, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(90)
    assert all(results), "some racers got no answer"
    statuses = Counter(r.status for r, _ in results)
    assert statuses == Counter({201: 1, 409: 99}), statuses
    for r, _ in results:
        if r.status == 409:
            assert_error(r, 409, "ALIAS_TAKEN")
    winner = next(url for r, url in results if r.status == 201)
    r = get(s.port, "/" + alias)
    assert r.status == 302 and r.headers["location"] == winner
    assert get(s.port, "/api/v1/urls/" + alias).json()["originalUrl"] == winner


@pytest.mark.sqlite_only("the SQLite store locks its data dir; PostgreSQL serves many")
def test_second_server_on_same_data_dir_exits_nonzero(kurz):
    s = kurz.start(["--create-rate-limit", "0"])
    rc, out, err = kurz.run_expect_exit(["--listen", "127.0.0.1:%d" % free_port(),
                                         "--data-dir", str(s.data_dir), "--threads", "2"])
    assert rc != 0
    assert "listening on" not in out
    assert (out + err).strip(), "no message saying why it exited"
    # The first one is unharmed.
    j = create_ok(s.port, unique_url("first"))
    assert get(s.port, "/" + j["shortCode"]).status == 302


def test_snowflake_codes(kurz):
    s = kurz.start(["--create-rate-limit", "0", "--codes", "snowflake", "--worker-id", "7"])
    made = _create_many(s.port, [unique_url("sf") for _ in range(60)], threads=3)
    codes = [j["shortCode"] for j in made]
    assert len(set(codes)) == 60, codes
    for c in codes:
        assert 1 <= len(c) <= 11 and all(ch.isascii() and ch.isalnum() for ch in c), c
    _assert_all_redirect(s.port, [(j["shortCode"], j["originalUrl"]) for j in made])
    s2 = kurz.restart(s)
    more = _create_many(s2.port, [unique_url("sf2") for _ in range(20)], threads=2)
    assert not {j["shortCode"] for j in more} & set(codes)
    _assert_all_redirect(s2.port, [(j["shortCode"], j["originalUrl"]) for j in made + more])


def test_compact_codes_are_not_sequential(kurz):
    s = kurz.start(["--create-rate-limit", "0"])
    codes = [create_ok(s.port, unique_url("seq"))["shortCode"] for _ in range(10)]
    assert all(CODE_RE.match(c) for c in codes)
    # Consecutive codes share no long prefix or suffix (a keyed permutation).
    shared = sum(1 for a, b in zip(codes, codes[1:]) if a[:4] == b[:4] or a[-4:] == b[-4:])
    assert shared <= 2, codes
    assert request(s.port, "GET", "/health").status == 200
