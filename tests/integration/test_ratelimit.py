"""Per-client create rate limits: 429 RATE_LIMITED with Retry-After, redirects
unaffected, X-Forwarded-For believed only from trusted proxies."""

import re
import time

import pytest

import kurztest
from kurztest import assert_error, create, create_ok, get, metric_sum, metrics, unique_url


def _assert_limited(r):
    assert_error(r, 429, "RATE_LIMITED")
    ra = r.headers.get("retry-after", "")
    # A sliding-window estimate may ask for a little more than the window.
    assert re.fullmatch(r"\d+", ra) and 1 <= int(ra) <= 90, "Retry-After %r" % ra


def test_sixth_create_in_a_minute_is_429_and_redirects_still_work(kurz):
    s = kurz.start(["--create-rate-limit", "5"])
    made = [create_ok(s.port, unique_url("rl")) for _ in range(5)]
    r = create(s.port, unique_url("rl6"))
    _assert_limited(r)
    _assert_limited(create(s.port, unique_url("rl7")))
    # The same URL again is still a create attempt from the same client.
    _assert_limited(create(s.port, made[0]["originalUrl"]))
    for j in made:
        r = get(s.port, "/" + j["shortCode"])
        assert r.status == 302 and r.headers["location"] == j["originalUrl"]
    assert get(s.port, "/health").status == 200
    assert get(s.port, "/api/v1/urls/" + made[0]["shortCode"]).status == 200


def test_x_forwarded_for_ignored_without_trusted_proxies(kurz):
    s = kurz.start(["--create-rate-limit", "5"])
    for i in range(5):
        r = create(s.port, unique_url("xff"), headers={"X-Forwarded-For": "198.51.100.%d" % i})
        assert r.status == 201, r
    r = create(s.port, unique_url("xff"), headers={"X-Forwarded-For": "198.51.100.99"})
    _assert_limited(r)
    # The refusals are counted in /metrics.
    before = metric_sum(metrics(s.port), "kurz_rate_limited_total")
    for i in range(3):
        _assert_limited(create(s.port, unique_url("xff"),
                               headers={"X-Forwarded-For": "203.0.113.%d" % i}))
    after = metric_sum(metrics(s.port), "kurz_rate_limited_total")
    assert after >= before + 3, (before, after)


def test_x_forwarded_for_used_from_trusted_proxy(kurz):
    s = kurz.start(["--create-rate-limit", "5", "--trusted-proxies", "127.0.0.1"])
    a = {"X-Forwarded-For": "198.51.100.1"}
    b = {"X-Forwarded-For": "198.51.100.2"}
    for _ in range(5):
        assert create(s.port, unique_url("ta"), headers=a).status == 201
    _assert_limited(create(s.port, unique_url("ta"), headers=a))
    for _ in range(5):
        r = create(s.port, unique_url("tb"), headers=b)
        assert r.status == 201, "a different forwarded client has its own limit: %r" % r
    _assert_limited(create(s.port, unique_url("tb"), headers=b))
    # The proxy's own requests (no XFF) are a third client.
    assert create(s.port, unique_url("tc")).status == 201


def test_read_rate_limit(kurz):
    s = kurz.start(["--create-rate-limit", "0", "--read-rate-limit", "5"])
    j = create_ok(s.port, unique_url("read"))
    got = [get(s.port, "/" + j["shortCode"]) for _ in range(6)]
    assert [r.status for r in got[:5]] == [302] * 5, got
    _assert_limited(got[5])
    # Creates are a different class.
    assert create(s.port, unique_url("read2")).status == 201


@pytest.mark.skipif(not kurztest.TEST_BACKEND.startswith("redis"),
                    reason="the limiter shared through Redis counts in wall-clock windows")
def test_limit_holds_across_a_window_boundary(kurz):
    # A client that used its whole limit just before a minute boundary gets
    # nothing more just after it: the sliding estimate still counts the
    # previous window almost whole. (It once let one more through.)
    s = kurz.start(["--create-rate-limit", "5"])
    wait = 59.0 - time.time() % 60  # to 1 s before the next boundary
    time.sleep(wait if wait > 0 else wait + 60)
    for _ in range(5):
        assert create(s.port, unique_url("edge")).status == 201
    time.sleep(60.2 - time.time() % 60 if time.time() % 60 > 30 else 0.2)
    assert time.time() % 60 < 5, "not just past the boundary"
    _assert_limited(create(s.port, unique_url("edge")))
