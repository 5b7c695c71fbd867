"""HTTP/1.1 over raw sockets: pipelining, split requests, keep-alive, every
limit with its status (and the connection closed where framing is unsafe),
timeouts and the connection cap."""

import json
import threading
import time

import pytest

from kurztest import (CREATE, Closed, Raw, assert_no_answer_after, create_ok, create_req, req,
                      unique_url)


@pytest.fixture(scope="module")
def links(srv):
    """Three codes and their URLs on the shared server."""
    out = []
    for i in range(3):
        url = unique_url("pipe%d" % i)
        out.append((create_ok(srv.port, url)["shortCode"], url))
    return out


# ---- pipelining, splitting, keep-alive -----------------------------------------

def test_pipelined_gets_answered_in_order(srv, links):
    reqs, want = [], []
    for i in range(50):
        k = i % 5
        if k < 3:
            reqs.append(req("GET", "/" + links[k][0]))
            want.append((302, links[k][1]))
        elif k == 3:
            reqs.append(req("GET", "/health"))
            want.append((200, None))
        else:
            reqs.append(req("GET", "/Zz%05d" % i))  # unknown: a store miss
            want.append((404, None))
    with Raw(srv.port) as c:
        c.send(b"".join(reqs))
        for i, (status, loc) in enumerate(want):
            r = c.read_response()
            assert r.status == status, "response %d: %r" % (i, r)
            assert r.headers.get("location") == loc, "response %d: %r" % (i, r)
            if status == 404:
                assert r.json()["shortUrl"].endswith("/Zz%05d" % i)
        assert c.quiet_for(0.5), "bytes beyond the 50 responses: %r" % c.sock.recv(1000)
        # The connection is still usable, and honours Connection: close.
        c.send(req("GET", "/" + links[0][0], {"Connection": "close"}))
        r = c.read_response()
        assert r.status == 302
        closed, extra = c.wait_closed(10)
        assert closed and extra == b""


def test_pipelined_creates_and_gets_keep_order(srv, links):
    u1, u2 = unique_url("pc1"), unique_url("pc2")
    with Raw(srv.port) as c:
        c.send(create_req(u1) + req("GET", "/" + links[1][0]) + create_req(u2) +
               req("HEAD", "/" + links[2][0]) + req("GET", "/health") + create_req(u1))
        r1 = c.read_response()
        assert r1.status == 201 and r1.json()["originalUrl"] == u1, r1
        r = c.read_response()
        assert r.status == 302 and r.headers["location"] == links[1][1]
        r2 = c.read_response()
        assert r2.status == 201 and r2.json()["originalUrl"] == u2, r2
        r = c.read_response(head=True)
        assert r.status == 302 and r.headers["location"] == links[2][1]
        r = c.read_response()
        assert r.status == 200 and r.json()["status"] == "UP"
        r3 = c.read_response()
        assert r3.status == 201 and r3.json()["shortCode"] == r1.json()["shortCode"]
        assert c.quiet_for(0.3)


def test_request_split_byte_by_byte(srv, links):
    url = unique_url("split")
    data = create_req(url) + req("GET", "/" + links[0][0])
    with Raw(srv.port) as c:
        for i in range(len(data)):
            c.send(data[i:i + 1])
            time.sleep(0.001)
        r = c.read_response()
        assert r.status == 201 and r.json()["originalUrl"] == url, r
        r = c.read_response()
        assert r.status == 302 and r.headers["location"] == links[0][1]


def test_keep_alive_100_requests_on_one_connection(srv, links):
    with Raw(srv.port) as c:
        for i in range(100):
            if i % 2:
                c.send(req("GET", "/" + links[i % 3][0]))
                r = c.read_response()
                assert r.status == 302 and r.headers["location"] == links[i % 3][1]
            else:
                c.send(req("GET", "/health"))
                r = c.read_response()
                assert r.status == 200
            assert r.headers.get("connection", "").lower() != "close", r


def test_http10_without_host_is_served_and_closed(srv, links):
    with Raw(srv.port) as c:
        c.send(req("GET", "/" + links[0][0], host=None, version="1.0"))
        r = c.read_response()
        assert r.status == 302 and r.headers["location"] == links[0][1]
        closed, extra = c.wait_closed(10)
        assert closed and extra == b"", "HTTP/1.0 without keep-alive must close"


def test_http11_without_host_is_400(srv):
    with Raw(srv.port) as c:
        c.send(req("GET", "/health", host=None))
        r = c.read_response()
        assert r.status == 400, r
        assert r.json()["success"] is False


def test_chunked_request_body_accepted(srv):
    url = unique_url("chunked")
    body = json.dumps({"originalUrl": url}).encode()
    half = len(body) // 2
    chunks = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, body[:half], len(body) - half,
                                                       body[half:])
    head = ("POST %s HTTP/1.1\r\nHost: kurz.test\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n" % CREATE).encode()
    with Raw(srv.port) as c:
        c.send(head + chunks + req("GET", "/health"))
        r = c.read_response()
        assert r.status == 201 and r.json()["originalUrl"] == url, r
        assert c.read_response().status == 200


# ---- limits ----------------------------------------------------------------------

def test_request_line_over_8k_is_414_and_closes(srv):
    with Raw(srv.port) as c:
        c.send(req("GET", "/" + "a" * 9000))
        r = c.read_response()
        assert r.status == 414, r
        assert r.headers.get("connection", "").lower() == "close"
        assert_no_answer_after(c)


def test_request_line_under_8k_is_served(srv):
    with Raw(srv.port) as c:
        c.send(req("GET", "/" + "a" * 8000) + req("GET", "/health"))
        r = c.read_response()
        assert r.status == 404, r
        assert c.read_response().status == 200


def test_headers_over_8k_are_431_and_close(srv):
    h = {"X-Pad-%d" % i: "p" * 1000 for i in range(9)}
    with Raw(srv.port) as c:
        c.send(req("GET", "/health", h))
        r = c.read_response()
        assert r.status == 431, r
        assert r.headers.get("connection", "").lower() == "close"
        assert_no_answer_after(c)


def test_headers_under_8k_are_served(srv):
    h = {"X-Pad-%d" % i: "p" * 1000 for i in range(7)}
    with Raw(srv.port) as c:
        c.send(req("GET", "/health", h) + req("GET", "/health"))
        assert c.read_response().status == 200
        assert c.read_response().status == 200


def test_more_than_100_headers_are_431_and_close(srv):
    h = {"X-H-%d" % i: "v" for i in range(101)}
    with Raw(srv.port) as c:
        c.send(req("GET", "/health", h))
        r = c.read_response()
        assert r.status == 431, r
        assert r.headers.get("connection", "").lower() == "close"
        assert_no_answer_after(c)


def test_99_headers_are_served(srv):
    h = {"X-H-%d" % i: "v" for i in range(98)}  # plus Host
    with Raw(srv.port) as c:
        c.send(req("GET", "/health", h) + req("GET", "/health"))
        assert c.read_response().status == 200
        assert c.read_response().status == 200


def test_body_over_64k_is_413_from_content_length_alone(srv):
    head = ("POST %s HTTP/1.1\r\nHost: kurz.test\r\nContent-Type: application/json\r\n"
            "Content-Length: 65537\r\n\r\n" % CREATE).encode()
    with Raw(srv.port) as c:
        c.send(head)  # the body is never sent
        r = c.read_response(timeout=15)
        assert r.status == 413, r
        j = r.json()
        assert j["success"] is False and isinstance(j["errorCode"], str), j
        assert r.headers.get("connection", "").lower() == "close"
        assert_no_answer_after(c)


def test_chunked_body_over_64k_is_413(srv):
    head = ("POST %s HTTP/1.1\r\nHost: kurz.test\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n" % CREATE).encode()
    with Raw(srv.port) as c:
        c.send(head)
        for _ in range(9):  # 9 chunks of 8 KiB, more than 64 KiB in all
            if not c.try_send(b"2000\r\n" + b" " * 0x2000 + b"\r\n"):
                break
        r = c.read_response(timeout=15)
        assert r.status == 413, r
        assert_no_answer_after(c)


def test_body_of_exactly_64k_accepted(srv):
    url = unique_url("big")
    body = json.dumps({"originalUrl": url}).encode()
    body += b" " * (65536 - len(body))
    with Raw(srv.port) as c:
        c.send(req("POST", CREATE, {"Content-Type": "application/json"}, body))
        r = c.read_response()
        assert r.status == 201 and r.json()["originalUrl"] == url, r


def test_content_length_with_transfer_encoding_is_400_and_closes(srv):
    data = ("POST %s HTTP/1.1\r\nHost: kurz.test\r\nContent-Type: application/json\r\n"
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % CREATE)
    with Raw(srv.port) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == 400, r
        assert_no_answer_after(c)


def test_two_content_lengths_are_400_and_close(srv):
    data = ("POST %s HTTP/1.1\r\nHost: kurz.test\r\nContent-Type: application/json\r\n"
            "Content-Length: 5\r\nContent-Length: 6\r\n\r\n{}   " % CREATE)
    with Raw(srv.port) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == 400, r
        assert_no_answer_after(c)


def test_garbage_request_is_400_and_closes(srv):
    with Raw(srv.port) as c:
        c.send(b"HELLO THERE\r\n\r\n")
        r = c.read_response()
        assert r.status == 400, r
        assert_no_answer_after(c)


# ---- timeouts ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def hdr_timeout(kurz_module):
    return kurz_module.start(["--header-timeout", "1s", "--idle-timeout", "60s"])


@pytest.fixture(scope="module")
def idle_timeout(kurz_module):
    return kurz_module.start(["--idle-timeout", "1s", "--header-timeout", "10s"])


def _assert_closed_maybe_408(c, seconds):
    t0 = time.monotonic()
    closed, extra = c.wait_closed(seconds)
    assert closed, "still open after %ds" % seconds
    assert extra == b"" or extra.startswith(b"HTTP/1.1 408"), extra[:200]
    return time.monotonic() - t0


def test_header_timeout_closes_half_sent_request(hdr_timeout):
    with Raw(hdr_timeout.port) as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: kurz.test\r\n")
        _assert_closed_maybe_408(c, 5)


def test_header_timeout_not_reset_by_trickling(hdr_timeout):
    with Raw(hdr_timeout.port) as c:
        c.send(b"GET /health HTTP/1.1\r\nX-Slow: ")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 6:
            if not c.try_send(b"a"):
                break
            if not c.quiet_for(0.25):
                break
        else:
            raise AssertionError("a trickled request kept the connection for 6 s")
        _assert_closed_maybe_408(c, 3)


def test_header_timeout_spares_complete_requests(hdr_timeout):
    with Raw(hdr_timeout.port) as c:
        for _ in range(3):
            c.send(req("GET", "/health"))
            assert c.read_response().status == 200
            time.sleep(0.6)
        c.send(req("GET", "/health"))
        assert c.read_response().status == 200


def test_idle_timeout_closes_keep_alive_connection(idle_timeout):
    with Raw(idle_timeout.port) as c:
        c.send(req("GET", "/health"))
        assert c.read_response().status == 200
        closed, extra = c.wait_closed(5)
        assert closed and extra == b"", "idle connection not closed (%r)" % extra[:200]


def test_idle_timeout_reset_by_activity(idle_timeout):
    with Raw(idle_timeout.port) as c:
        for _ in range(12):  # 3+ s in all, with no gap near the 1 s timeout
            c.send(req("GET", "/health"))
            assert c.read_response().status == 200
            time.sleep(0.25)


# ---- connection cap -------------------------------------------------------------

def test_max_connections(kurz):
    s = kurz.start(["--max-connections", "20"])
    conns = []
    try:
        for _ in range(20):
            c = Raw(s.port)
            conns.append(c)
            c.send(req("GET", "/health"))
            assert c.read_response().status == 200
        # The 21st is refused or closed at once, never served.
        try:
            extra = Raw(s.port, timeout=10)
        except ConnectionRefusedError:
            extra = None
        if extra is not None:
            with extra:
                extra.try_send(req("GET", "/health"))
                closed, got = extra.wait_closed(8)
                assert closed, "the 21st connection was kept open"
                assert got == b"" or got.startswith(b"HTTP/1.1 503"), got[:200]
        # The first 20 still work.
        for c in conns:
            c.send(req("GET", "/health"))
            assert c.read_response().status == 200
        for c in conns[:5]:
            c.close()
        conns = conns[5:]
        deadline = time.monotonic() + 10
        while True:
            try:
                with Raw(s.port, timeout=10) as c:
                    c.send(req("GET", "/health"))
                    r = c.read_response()
                    if r.status == 200:
                        break
                    # The server may not have seen the 5 closes yet.
                    assert r.status == 503, r
            except (Closed, ConnectionError):
                pass
            assert time.monotonic() < deadline, "no new connection after closing 5"
            time.sleep(0.2)
    finally:
        for c in conns:
            c.close()


def test_large_pipeline_to_a_slow_reader(srv, links):
    # Far more requests than the server queues per read, and more response
    # bytes than it buffers for a reader that does not read: nothing may be
    # lost, duplicated or reordered.
    n = 6000
    reqs = [req("GET", "/" + links[i % 3][0]) for i in range(n)]
    with Raw(srv.port) as c:
        sender = threading.Thread(target=c.send, args=(b"".join(reqs),))
        sender.start()
        time.sleep(1.0)  # let the server fill its output limit
        for i in range(n):
            r = c.read_response()
            assert r.status == 302 and r.headers["location"] == links[i % 3][1], (i, r)
        sender.join(30)
        assert c.quiet_for(0.3)


def test_concurrent_redirects_from_many_connections(srv, links):
    errors = []

    def worker(k):
        try:
            with Raw(srv.port) as c:
                for i in range(100):
                    code, url = links[(i + k) % 3]
                    c.send(req("GET", "/" + code))
                    r = c.read_response()
                    if r.status != 302 or r.headers.get("location") != url:
                        errors.append((k, i, r))
        except Exception as e:  # reported below
            errors.append((k, repr(e)))

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors[:5]


def test_configured_limits(kurz):
    s = kurz.start(["--max-body", "200", "--max-headers", "10", "--max-header-bytes", "1000",
                    "--max-request-line", "300", "--create-rate-limit", "0"])
    with Raw(s.port) as c:
        c.send(create_req("https://example.com/" + "b" * 300))
        assert c.read_response().status == 413
    with Raw(s.port) as c:
        c.send(create_req("https://example.com/small"))
        assert c.read_response().status == 201
    with Raw(s.port) as c:
        c.send(req("GET", "/health", {"X-H-%d" % i: "v" for i in range(12)}))
        assert c.read_response().status == 431
    with Raw(s.port) as c:
        c.send(req("GET", "/health", {"X-Pad": "p" * 1200}))
        assert c.read_response().status == 431
    with Raw(s.port) as c:
        c.send(req("GET", "/" + "a" * 400))
        assert c.read_response().status == 414
    with Raw(s.port) as c:
        c.send(req("GET", "/health", {"X-H-%d" % i: "v" for i in range(5)}))
        assert c.read_response().status == 200


def test_sigterm_with_idle_and_half_sent_connections_exits_0(kurz):
    s = kurz.start()
    conns = []
    try:
        for _ in range(5):
            c = Raw(s.port)
            c.send(req("GET", "/health"))
            assert c.read_response().status == 200
            conns.append(c)
        half = Raw(s.port)
        half.send(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        conns.append(half)
        time.sleep(0.3)
        s.stop()  # exit 0 within 10 s, sanitizers clean
        for c in conns:
            closed, _ = c.wait_closed(2)
            assert closed
    finally:
        for c in conns:
            c.close()
