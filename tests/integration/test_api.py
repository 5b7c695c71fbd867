"""The JSON API as a client sees it: creating links, redirects, lookups,
aliases, expiry, deletes with admin keys, 404/405 answers and health."""

import json
import re
import socket
import time
from datetime import datetime, timedelta, timezone

import pytest

from kurztest import (CODE_RE, CREATE, Raw, assert_error, auth, create, create_ok, free_port,
                      get, list_codes, parse_time, req, request, rfc3339, unique_url)


@pytest.fixture(scope="module")
def based(kurz_module):
    """A server with --base-url and a CDN-cacheable --redirect-max-age."""
    return kurz_module.start(["--create-rate-limit", "0", "--base-url", "https://sho.rt",
                              "--redirect-max-age", "3600"])


# ---- create ------------------------------------------------------------------

def test_create_returns_201_with_every_field(srv):
    url = unique_url("fields") + "?q=1&r=two#frag"
    before = datetime.now(timezone.utc)
    r = create(srv.port, url)
    assert r.status == 201, r
    assert "json" in r.headers.get("content-type", "")
    j = r.json()
    for k in ("originalUrl", "shortUrl", "shortCode", "success", "message", "errorCode",
              "createdAt", "expiresAt"):
        assert k in j, "missing %s in %r" % (k, j)
    assert j["originalUrl"] == url
    assert CODE_RE.match(j["shortCode"]), j["shortCode"]
    assert j["shortUrl"] == "http://127.0.0.1:%d/%s" % (srv.port, j["shortCode"])
    assert j["success"] is True and j["message"] is None and j["errorCode"] is None
    created = parse_time(j["createdAt"])
    assert abs((created - before).total_seconds()) < 120, (created, before)
    # The default expiry is 365 days.
    expires = parse_time(j["expiresAt"])
    assert abs((expires - created) - timedelta(days=365)) < timedelta(days=1), j


def test_short_url_uses_host_header_without_base_url(srv):
    r = create(srv.port, unique_url("host"), headers={"Host": "links.example:8443"})
    assert r.status == 201, r
    j = r.json()
    assert j["shortUrl"] == "http://links.example:8443/" + j["shortCode"]


def test_short_url_uses_base_url_option(based):
    j = create_ok(based.port, unique_url("base"))
    assert CODE_RE.match(j["shortCode"])
    assert j["shortUrl"] == "https://sho.rt/" + j["shortCode"]


def test_short_url_uses_base_url_from_body(srv, based):
    j = create_ok(srv.port, unique_url("bodybase"), baseUrl="https://b.example")
    assert j["shortUrl"] == "https://b.example/" + j["shortCode"]
    # The body's baseUrl also wins over --base-url.
    j = create_ok(based.port, unique_url("bodybase2"), baseUrl="https://c.example")
    assert j["shortUrl"] == "https://c.example/" + j["shortCode"]


def test_same_url_twice_gives_same_code(srv):
    url = unique_url("dedupe")
    a = create(srv.port, url)
    b = create(srv.port, url)
    assert a.status == 201 and b.status == 201, (a, b)
    assert a.json()["shortCode"] == b.json()["shortCode"]


def test_different_urls_give_different_codes(srv):
    codes = [create_ok(srv.port, unique_url("distinct"))["shortCode"] for _ in range(40)]
    assert len(set(codes)) == 40, codes
    assert all(CODE_RE.match(c) for c in codes), codes


def test_scheme_in_any_letter_case_accepted(srv):
    for url in ("HTTPS://example.com/Upper-%d" % time.time_ns(),
                "Http://example.com/mixed-%d" % time.time_ns()):
        j = create_ok(srv.port, url)
        r = get(srv.port, "/" + j["shortCode"])
        assert r.status == 302 and r.headers["location"] == url, r


def test_url_of_5000_chars_accepted_and_5001_refused(srv):
    base = "https://example.com/%d/" % time.time_ns()
    url = base + "a" * (5000 - len(base))
    assert len(url) == 5000
    j = create_ok(srv.port, url)
    r = get(srv.port, "/" + j["shortCode"])
    assert r.status == 302 and r.headers["location"] == url
    assert_error(create(srv.port, url + "b"), 400, "INVALID_INPUT")


# ---- redirect ----------------------------------------------------------------

def test_redirect_302_exact_location(srv):
    url = ("https://example.com/p/%E2%9C%93/a%20b?q=1&x=%2F&y=~_.-!$'()*+,;=:@&n=" +
           str(time.time_ns()) + "#frag")
    code = create_ok(srv.port, url)["shortCode"]
    for _ in range(2):  # from the store, then from L1
        r = get(srv.port, "/" + code)
        assert r.status == 302, r
        assert r.headers["location"] == url
        assert r.header_count("location") == 1
        assert r.headers["content-length"] == "0" and r.body == b""
        cc = r.headers.get("cache-control", "")
        assert "private" in cc and "max-age=0" in cc, cc


def test_redirect_max_age_is_bounded_by_expiry(based):
    code = create_ok(based.port, unique_url("cdn"))["shortCode"]
    r = get(based.port, "/" + code)
    assert r.status == 302
    cc = r.headers.get("cache-control", "")
    assert "public" in cc and re.search(r"\bmax-age=3600\b", cc), cc
    code = create_ok(based.port, unique_url("cdn-exp"), expiresIn=100)["shortCode"]
    r = get(based.port, "/" + code)
    assert r.status == 302
    cc = r.headers.get("cache-control", "")
    m = re.search(r"\bmax-age=(\d+)", cc)
    # The link lives at least 100 s and at most 101 (whole seconds).
    assert m and 60 <= int(m.group(1)) <= 101, "max-age must not outlive the link: %r" % cc


def test_head_on_code_is_302_without_body(srv):
    url = unique_url("head")
    code = create_ok(srv.port, url)["shortCode"]
    with Raw(srv.port) as c:
        # A GET right behind the HEAD shows that no body bytes were sent.
        c.send(req("HEAD", "/" + code) + req("HEAD", "/zz9Unknown") + req("GET", "/health"))
        r = c.read_response(head=True)
        assert r.status == 302 and r.headers["location"] == url
        r = c.read_response(head=True)
        assert r.status == 404, r
        r = c.read_response()
        assert r.status == 200 and r.json()["status"] == "UP", r


def test_unknown_code_404_url_not_found(srv):
    r = get(srv.port, "/Zz0Nope")
    j = assert_error(r, 404, "URL_NOT_FOUND")
    assert j.get("found") is False, j
    assert "shortUrl" in j and j["shortUrl"].endswith("/Zz0Nope"), j


def test_get_link_info_fields(srv):
    url = unique_url("info")
    c = create_ok(srv.port, url)
    r = get(srv.port, "/api/v1/urls/" + c["shortCode"])
    assert r.status == 200, r
    j = r.json()
    for k in ("success", "originalUrl", "shortCode", "shortUrl", "createdAt", "expiresAt",
              "totalClicks", "lastAccessAt"):
        assert k in j, "missing %s: %r" % (k, j)
    assert j["success"] is True
    assert j["originalUrl"] == url and j["shortCode"] == c["shortCode"]
    assert j["shortUrl"] == c["shortUrl"]
    assert parse_time(j["createdAt"]) == parse_time(c["createdAt"])
    assert parse_time(j["expiresAt"]) == parse_time(c["expiresAt"])
    assert j["totalClicks"] == 0 and j["lastAccessAt"] is None, j


def test_get_link_info_unknown_404(srv):
    assert_error(get(srv.port, "/api/v1/urls/Zz0Nope"), 404, "URL_NOT_FOUND")


# ---- aliases -----------------------------------------------------------------

def test_alias_create_and_redirect(srv):
    alias = "my-Alias_%d" % (time.time_ns() % 10**9)
    url = unique_url("alias")
    j = create_ok(srv.port, url, alias=alias)
    assert j["shortCode"] == alias
    assert j["shortUrl"] == "http://127.0.0.1:%d/%s" % (srv.port, alias)
    r = get(srv.port, "/" + alias)
    assert r.status == 302 and r.headers["location"] == url


def test_alias_length_bounds_accepted(srv):
    n = str(time.time_ns() % 1000)
    for alias in (("x" + n + "yz")[:3], ("L" + n + "q" * 64)[:64]):
        url = unique_url("alen")
        j = create_ok(srv.port, url, alias=alias)
        assert j["shortCode"] == alias
        assert get(srv.port, "/" + alias).headers["location"] == url


def test_alias_taken_409(srv):
    alias = "taken%d" % (time.time_ns() % 10**9)
    url = unique_url("taken")
    create_ok(srv.port, url, alias=alias)
    assert_error(create(srv.port, unique_url("taken2"), alias=alias), 409, "ALIAS_TAKEN")
    # The first owner keeps it.
    assert get(srv.port, "/" + alias).headers["location"] == url


def test_alias_created_after_404_probe_redirects_at_once(srv):
    alias = "probe%d" % (time.time_ns() % 10**9)
    assert get(srv.port, "/" + alias).status == 404  # may leave a negative L1 entry
    url = unique_url("probe")
    create_ok(srv.port, url, alias=alias)
    r = get(srv.port, "/" + alias)
    assert r.status == 302 and r.headers["location"] == url, r


@pytest.mark.parametrize("alias", ["API", "api", "health", "Health", "metrics", "ADMIN",
                                   "static", "Stats"])
def test_reserved_alias_refused(srv, alias):
    assert_error(create(srv.port, unique_url("reserved"), alias=alias), 400, "INVALID_INPUT")


@pytest.mark.parametrize("alias", ["ab", "x" * 65, "a b", "a/b", "a.b", "ab%20", "ab?c",
                                   "\u00e4bc", "abc\n", 12345, ["abc"]],
                         ids=["too-short", "too-long", "space", "slash", "dot", "percent",
                              "question", "non-ascii", "newline", "number", "array"])
def test_bad_alias_refused(srv, alias):
    assert_error(create(srv.port, unique_url("badalias"), alias=alias), 400, "INVALID_INPUT")


# ---- expiry ------------------------------------------------------------------

def _wait_expired(port, code, not_before):
    """Polls until the code answers 404 URL_EXPIRED; it must not before
    not_before (a unix time)."""
    deadline = time.time() + 10
    while time.time() < deadline:
        r = get(port, "/" + code)
        if r.status == 404:
            assert time.time() >= not_before - 1.0, "expired early"
            return assert_error(r, 404, "URL_EXPIRED")
        assert r.status == 302, r
        time.sleep(0.25)
    raise AssertionError("link %s still redirects long after its expiry" % code)


def test_expiry_honored_even_when_cached(srv):
    now = time.time()
    a = create_ok(srv.port, unique_url("expin"), expiresIn=2)
    at = rfc3339(now + 3)
    b = create_ok(srv.port, unique_url("expat"), expiresAt=at)
    assert parse_time(b["expiresAt"]) == parse_time(at)
    exp_a = parse_time(a["expiresAt"]).timestamp()
    assert now + 1 <= exp_a <= now + 4, a
    for j in (a, b):  # both redirect now, and are now in L1
        r = get(srv.port, "/" + j["shortCode"])
        assert r.status == 302, r
    j = _wait_expired(srv.port, a["shortCode"], exp_a)
    assert j.get("found") is False
    _wait_expired(srv.port, b["shortCode"], parse_time(at).timestamp())


def test_expires_at_with_offset(srv):
    t = int(time.time()) + 7200
    local = datetime.fromtimestamp(t, timezone(timedelta(hours=2)))
    s = local.strftime("%Y-%m-%dT%H:%M:%S+02:00")
    j = create_ok(srv.port, unique_url("offset"), expiresAt=s)
    assert parse_time(j["expiresAt"]).timestamp() == t


@pytest.mark.parametrize("fields", [
    {"expiresAt": "2001-01-01T00:00:00Z"},
    {"expiresAt": "tomorrow"},
    {"expiresAt": "2030-13-40T99:00:00Z"},
    {"expiresAt": 1893456000},
    {"expiresIn": -5},
    {"expiresIn": "ten"},
    {"expiresIn": 60, "expiresAt": "2030-01-01T00:00:00Z"},
], ids=["past", "words", "impossible-date", "number-expiresAt", "negative-expiresIn",
        "string-expiresIn", "both"])
def test_bad_expiry_refused(srv, fields):
    assert_error(create(srv.port, unique_url("badexp"), **fields), 400, "INVALID_INPUT")


# ---- delete ------------------------------------------------------------------

def test_delete_without_key_401(srv):
    code = create_ok(srv.port, unique_url("del401"))["shortCode"]
    r = request(srv.port, "DELETE", "/api/v1/urls/" + code)
    assert_error(r, 401, "UNAUTHORIZED")
    assert "bearer" in r.headers.get("www-authenticate", "").lower(), r
    assert get(srv.port, "/" + code).status == 302


def test_delete_with_wrong_key_401(srv, admin_key):
    code = create_ok(srv.port, unique_url("delbad"))["shortCode"]
    for h in (auth("0" * len(admin_key)), auth(admin_key + "x"), auth(admin_key[:-1]),
              {"Authorization": "Basic " + admin_key}, {"Authorization": admin_key}):
        assert_error(request(srv.port, "DELETE", "/api/v1/urls/" + code, headers=h),
                     401, "UNAUTHORIZED")
    assert get(srv.port, "/" + code).status == 302


def test_delete_with_key_stops_redirect_at_once(srv, admin_key):
    url = unique_url("del")
    code = create_ok(srv.port, url)["shortCode"]
    with Raw(srv.port) as warm:
        # Warm L1 on a kept-alive connection (both loop threads see it).
        for _ in range(3):
            warm.send(req("GET", "/" + code))
            assert warm.read_response().status == 302
        for _ in range(4):
            assert get(srv.port, "/" + code).status == 302
        r = request(srv.port, "DELETE", "/api/v1/urls/" + code, headers=auth(admin_key))
        assert r.status == 200, r
        j = r.json()
        assert j["success"] is True and j["shortCode"] == code, j
        warm.send(req("GET", "/" + code))
        assert_error(warm.read_response(), 404, "URL_NOT_FOUND")
    for _ in range(4):  # fresh connections, whichever thread takes them
        assert_error(get(srv.port, "/" + code), 404, "URL_NOT_FOUND")
    assert_error(get(srv.port, "/api/v1/urls/" + code), 404, "URL_NOT_FOUND")


def test_delete_unknown_404(srv, admin_key):
    r = request(srv.port, "DELETE", "/api/v1/urls/Zz0Gone", headers=auth(admin_key))
    assert_error(r, 404, "URL_NOT_FOUND")


def test_deleted_url_can_be_shortened_again(srv, admin_key):
    url = unique_url("again")
    code = create_ok(srv.port, url)["shortCode"]
    assert request(srv.port, "DELETE", "/api/v1/urls/" + code,
                   headers=auth(admin_key)).status == 200
    j = create_ok(srv.port, url)
    r = get(srv.port, "/" + j["shortCode"])
    assert r.status == 302 and r.headers["location"] == url


def test_list_requires_key(srv, admin_key):
    assert_error(get(srv.port, "/api/v1/urls"), 401, "UNAUTHORIZED")
    assert_error(get(srv.port, "/api/v1/urls", headers=auth("nope" * 8)), 401, "UNAUTHORIZED")
    assert get(srv.port, "/api/v1/urls?limit=5", headers=auth(admin_key)).status == 200


# ---- routing -----------------------------------------------------------------

@pytest.mark.parametrize("method,path,allowed", [
    ("PUT", CREATE, "POST"),
    ("GET", CREATE, "POST"),
    ("DELETE", CREATE, "POST"),
    ("POST", "/SomeCode", "GET"),
    ("PUT", "/SomeCode", "GET"),
    ("POST", "/health", "GET"),
])
def test_wrong_method_405_with_allow(srv, method, path, allowed):
    r = request(srv.port, method, path, body=b"", headers={"Content-Type": "text/plain"})
    assert r.status == 405, r
    allow = [m.strip() for m in r.headers.get("allow", "").split(",")]
    assert allowed in allow, "Allow %r" % r.headers.get("allow")
    assert method not in allow
    j = r.json()
    assert j["success"] is False and isinstance(j["errorCode"], str), j


@pytest.mark.parametrize("path", ["/api/v1/nope", "/a/b/c", "/api/v1/create/shorten/x",
                                  "/health/nope"])
def test_unknown_path_404_json(srv, path):
    r = get(srv.port, path)
    assert r.status == 404, r
    j = r.json()
    assert j["success"] is False and isinstance(j["message"], str), j
    assert isinstance(j["errorCode"], str) and j["errorCode"], j


@pytest.mark.parametrize("path", ["/health", "/health/create", "/health/lookup"])
def test_health_endpoints(srv, path):
    r = get(srv.port, path)
    assert r.status == 200, r
    assert "json" in r.headers.get("content-type", "")
    assert r.json()["status"] == "UP"
    h = request(srv.port, "HEAD", path)
    assert h.status == 200 and h.body == b""


def test_redirect_ignores_query_string(srv):
    # Sites append tracking parameters (?fbclid=...) to shared links.
    url = unique_url("qs")
    code = create_ok(srv.port, url)["shortCode"]
    r = get(srv.port, "/%s?fbclid=IwAR0abc&utm_source=x" % code)
    assert r.status == 302 and r.headers["location"] == url, r


def test_default_expiry_option(kurz):
    s = kurz.start(["--create-rate-limit", "0", "--default-expiry", "0"])
    j = create_ok(s.port, unique_url("never"))
    assert j["expiresAt"] is None, j
    assert get(s.port, "/api/v1/urls/" + j["shortCode"]).json()["expiresAt"] is None
    s2 = kurz.start(["--create-rate-limit", "0", "--default-expiry", "2d"])
    j = create_ok(s2.port, unique_url("2d"))
    d = parse_time(j["expiresAt"]) - parse_time(j["createdAt"])
    assert abs(d - timedelta(days=2)) < timedelta(minutes=5), j


def test_l1_disabled_still_correct(kurz):
    d = kurz.new_data_dir()
    key = kurz.admin_key(d)
    s = kurz.start(["--create-rate-limit", "0", "--l1-size", "0"], data_dir=d)
    url = unique_url("nol1")
    code = create_ok(s.port, url)["shortCode"]
    for _ in range(3):
        r = get(s.port, "/" + code)
        assert r.status == 302 and r.headers["location"] == url
    assert request(s.port, "DELETE", "/api/v1/urls/" + code, headers=auth(key)).status == 200
    assert_error(get(s.port, "/" + code), 404, "URL_NOT_FOUND")


def test_cleanup_job_removes_expired_links(kurz):
    d = kurz.new_data_dir()
    key = kurz.admin_key(d)
    s = kurz.start(["--create-rate-limit", "0", "--cleanup-interval", "1s"], data_dir=d)
    keep = create_ok(s.port, unique_url("keep"))["shortCode"]
    gone = create_ok(s.port, unique_url("gone"), expiresIn=1)["shortCode"]
    assert sorted(list_codes(s.port, key)) == sorted([keep, gone])
    deadline = time.time() + 15
    while gone in list_codes(s.port, key):
        assert time.time() < deadline, "expired link not cleaned up"
        time.sleep(0.5)
    assert list_codes(s.port, key) == [keep]
    assert get(s.port, "/" + keep).status == 302


def test_listen_on_ipv6_loopback(kurz):
    port = free_port()
    d = kurz.new_data_dir()
    s = kurz.start(["--listen", "[::1]:%d" % port, "--data-dir", str(d), "--threads", "2",
                    "--create-rate-limit", "0"], defaults=False)
    assert s.port == port
    sock = socket.create_connection(("::1", port), timeout=30)
    try:
        body = b'{"originalUrl":"https://example.com/v6"}'
        sock.sendall(b"POST /api/v1/create/shorten HTTP/1.1\r\nHost: [::1]:%d\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (port, len(body), body))
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    assert data.startswith(b"HTTP/1.1 201"), data
    j = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert j["shortUrl"] == "http://[::1]:%d/%s" % (port, j["shortCode"])
