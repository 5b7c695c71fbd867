"""Hostile HTTP over raw sockets: a catalog of malformed and ambiguous
requests (request smuggling material: Content-Length and Transfer-Encoding in
every spelling, bare CR/LF, folding, NUL bytes, bad chunks, bad methods and
versions), each followed on the same connection by a sentinel request that
must never be answered; exact framing of 100 pipelined requests; path tricks
that must not reach another route or bypass the admin key; and log escaping.

Decisions this file pins down (see docs/SECURITY.md):
- Only CRLF ends a line. A bare LF or a bare CR anywhere in the head or in
  chunk framing is a 400, as is obsolete line folding.
- Content-Length is 1*DIGIT with optional surrounding whitespace (OWS, which
  RFC 9110 allows around any field value): " 5 " is accepted; signs, hex,
  inner spaces, lists, empty values and values that overflow are 400.
- Transfer-Encoding must be exactly "chunked". When chunked is the final
  coding but others come first (gzip, chunked) the answer is 501; when chunked
  is not last or absent (gzip; identity; chunked, identity) it is 400, since
  the body length cannot be known (RFC 9112 6.3). Any Transfer-Encoding in
  HTTP/1.0, or together with Content-Length, is 400.
- The request target must be in origin-form ("/..."): kurz is an origin
  server, so absolute-form ("http://other/"), authority-form (CONNECT) and
  "*" are 400; so is any byte outside printable ASCII in the request line.
- HTTP/1.x with x > 1 and HTTP/2+ in an HTTP/1 request line are 505; versions
  that are not "HTTP/" DIGIT "." DIGIT are 400.
"""

import os
import re
import socket
import time

import pytest

from kurztest import (CREATE, Closed, Raw, auth, create_ok, get, req, request, unique_url)

H = "Host: kurz.test\r\n"
CT = "Content-Type: application/json\r\n"
BODY5 = "{}   "


def post(headers, body="", version="1.1", path=CREATE):
    """A POST head with the given raw header lines (each ending CRLF)."""
    return ("POST %s HTTP/%s\r\n%s%s%s\r\n%s" % (path, version, H, CT, headers, body)).encode(
        "latin-1")


def raw(s):
    return s.encode("latin-1") if isinstance(s, str) else s


CHUNKED_OK = "5\r\n{}   \r\n0\r\n\r\n"

# (id, request bytes, allowed statuses)
CATALOG = [
    # ---- Content-Length together with Transfer-Encoding, every spelling ----
    ("cl-then-te", post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", CHUNKED_OK), {400}),
    ("te-then-cl", post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", CHUNKED_OK), {400}),
    ("te-upper-cl", post("TRANSFER-ENCODING: CHUNKED\r\nContent-Length: 5\r\n", CHUNKED_OK), {400}),
    ("te-mixed-case-cl", post("content-length: 5\r\ntRaNsFeR-eNcOdInG: cHuNkEd\r\n", CHUNKED_OK),
     {400}),
    ("te-space-before-colon-cl",
     post("Transfer-Encoding : chunked\r\nContent-Length: 5\r\n", CHUNKED_OK), {400}),
    ("te-space-before-colon", post("Transfer-Encoding : chunked\r\n", CHUNKED_OK), {400}),
    ("te-tab-cl", post("Transfer-Encoding:\tchunked\r\nContent-Length: 5\r\n", CHUNKED_OK), {400}),
    ("te-chunked-identity-cl",
     post("Transfer-Encoding: chunked, identity\r\nContent-Length: 5\r\n", CHUNKED_OK), {400}),
    ("te-trailing-junk-cl", post("Transfer-Encoding: chunkedx\r\nContent-Length: 5\r\n", BODY5),
     {400}),
    ("te-vertical-tab", post("Transfer-Encoding:\x0bchunked\r\n", CHUNKED_OK), {400}),
    ("cl-te-duplicated", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                              CHUNKED_OK), {400}),
    # ---- Content-Length syntax ----
    ("cl-dup-same", post("Content-Length: 5\r\nContent-Length: 5\r\n", BODY5), {400}),
    ("cl-dup-different", post("Content-Length: 5\r\nContent-Length: 7\r\n", BODY5 + "  "), {400}),
    ("cl-list", post("Content-Length: 5, 5\r\n", BODY5), {400}),
    ("cl-plus", post("Content-Length: +5\r\n", BODY5), {400}),
    ("cl-minus", post("Content-Length: -5\r\n", BODY5), {400}),
    ("cl-inner-space", post("Content-Length: 5 5\r\n", BODY5), {400}),
    ("cl-hex", post("Content-Length: 0x5\r\n", BODY5), {400}),
    ("cl-suffix", post("Content-Length: 5a\r\n", BODY5), {400}),
    ("cl-decimal", post("Content-Length: 5.0\r\n", BODY5), {400}),
    ("cl-empty", post("Content-Length: \r\n", ""), {400}),
    ("cl-overflow", post("Content-Length: 99999999999999999999999\r\n", BODY5), {400, 413}),
    ("cl-u64-wrap", post("Content-Length: 18446744073709551621\r\n", BODY5), {400, 413}),
    ("cl-huge", post("Content-Length: 1000000000\r\n", ""), {413}),
    # ---- Transfer-Encoding other than chunked ----
    ("te-gzip", post("Transfer-Encoding: gzip\r\n", BODY5), {400, 501}),
    ("te-identity", post("Transfer-Encoding: identity\r\n", BODY5), {400, 501}),
    ("te-gzip-chunked", post("Transfer-Encoding: gzip, chunked\r\n", CHUNKED_OK), {501}),
    ("te-chunked-gzip", post("Transfer-Encoding: chunked, gzip\r\n", CHUNKED_OK), {400}),
    ("te-chunked-identity", post("Transfer-Encoding: chunked, identity\r\n", CHUNKED_OK), {400}),
    ("te-empty", post("Transfer-Encoding: \r\n", BODY5), {400}),
    ("te-http10", post("Transfer-Encoding: chunked\r\n", CHUNKED_OK, version="1.0"), {400}),
    # ---- bare CR / LF, obsolete folding ----
    ("bare-lf-everywhere", b"GET /health HTTP/1.1\nHost: kurz.test\n\n", {400}),
    ("bare-lf-request-line", b"GET /health HTTP/1.1\nHost: kurz.test\r\n\r\n", {400}),
    ("bare-lf-header", b"GET /health HTTP/1.1\r\nHost: kurz.test\nX-A: b\r\n\r\n", {400}),
    ("bare-lf-end", b"GET /health HTTP/1.1\r\nHost: kurz.test\r\n\n", {400}),
    ("bare-cr-request-line", b"GET /hea\rlth HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {400}),
    ("bare-cr-header-value", b"GET /health HTTP/1.1\r\nHost: kurz.test\r\nX-A: a\rb\r\n\r\n",
     {400}),
    ("bare-cr-line-end", b"GET /health HTTP/1.1\r\nHost: kurz.test\rX-A: b\r\n\r\n", {400}),
    ("fold-space", b"GET /health HTTP/1.1\r\nHost: kurz.test\r\nX-A: a\r\n b\r\n\r\n", {400}),
    ("fold-tab", b"GET /health HTTP/1.1\r\nHost: kurz.test\r\nX-A: a\r\n\tb\r\n\r\n", {400}),
    ("fold-first-header", b"GET /health HTTP/1.1\r\n Host: kurz.test\r\n\r\n", {400}),
    ("fold-cl", post("X-A: a\r\n Content-Length: 5\r\n", BODY5), {400}),
    ("fold-te", post("Content-Length: 5\r\nX-A: a\r\n\tTransfer-Encoding: chunked\r\n", BODY5),
     {400}),
    # ---- NUL and control bytes ----
    ("nul-method", b"GE\x00T /health HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {400}),
    ("nul-target", b"GET /hea\x00lth HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {400}),
    ("nul-header-name", b"GET /health HTTP/1.1\r\nHost: kurz.test\r\nX-\x00A: b\r\n\r\n", {400}),
    ("nul-header-value", b"GET /health HTTP/1.1\r\nHost: kurz.test\r\nX-A: a\x00b\r\n\r\n", {400}),
    ("ctl-header-value", b"GET /health HTTP/1.1\r\nHost: kurz.test\r\nX-A: a\x01b\r\n\r\n", {400}),
    ("del-header-value", b"GET /health HTTP/1.1\r\nHost: kurz.test\r\nX-A: a\x7fb\r\n\r\n", {400}),
    ("ctl-target", b"GET /hea\x1blth HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {400}),
    ("high-byte-target", b"GET /\xc3\xa9 HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {400}),
    # ---- chunked framing ----
    ("chunk-size-overflow", post("Transfer-Encoding: chunked\r\n",
                                 "ffffffffffffffffff\r\n{}   \r\n0\r\n\r\n"), {400, 413}),
    ("chunk-size-u64-wrap", post("Transfer-Encoding: chunked\r\n",
                                 "10000000000000005\r\n{}   \r\n0\r\n\r\n"), {400, 413}),
    ("chunk-size-negative", post("Transfer-Encoding: chunked\r\n", "-5\r\n{}   \r\n0\r\n\r\n"),
     {400}),
    ("chunk-size-hex-prefix", post("Transfer-Encoding: chunked\r\n", "0x5\r\n{}   \r\n0\r\n\r\n"),
     {400}),
    ("chunk-size-empty", post("Transfer-Encoding: chunked\r\n", "\r\n{}   \r\n0\r\n\r\n"), {400}),
    ("chunk-size-bare-lf", post("Transfer-Encoding: chunked\r\n", "5\n{}   \r\n0\r\n\r\n"), {400}),
    ("chunk-data-bare-lf", post("Transfer-Encoding: chunked\r\n", "5\r\n{}   \n0\r\n\r\n"), {400}),
    ("chunk-data-too-long", post("Transfer-Encoding: chunked\r\n", "3\r\n{}   \r\n0\r\n\r\n"),
     {400}),
    ("chunk-last-bare-lf", post("Transfer-Encoding: chunked\r\n", "5\r\n{}   \r\n0\n\n"), {400}),
    ("chunk-ext-oversized", post("Transfer-Encoding: chunked\r\n",
                                 "5;" + "a" * 5000 + "\r\n{}   \r\n0\r\n\r\n"), {400, 413}),
    ("chunk-ext-many", post("Transfer-Encoding: chunked\r\n",
                            "5" + ";a=b" * 1500 + "\r\n{}   \r\n0\r\n\r\n"), {400, 413}),
    ("chunk-ext-nul", post("Transfer-Encoding: chunked\r\n", "5;a\x00b\r\n{}   \r\n0\r\n\r\n"),
     {400}),
    ("chunk-trailer-fold", post("Transfer-Encoding: chunked\r\n",
                                "5\r\n{}   \r\n0\r\nX-T: a\r\n b\r\n\r\n"), {400}),
    ("chunk-trailer-bad-name", post("Transfer-Encoding: chunked\r\n",
                                    "5\r\n{}   \r\n0\r\nX T: a\r\n\r\n"), {400}),
    # ---- methods ----
    ("method-with-space", b"G ET /health HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {400}),
    ("method-lowercase", b"get /health HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {400, 501}),
    ("method-unknown", b"FOO /health HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {400, 501}),
    ("method-overlong", b"G" + b"E" * 5000 + b"T /health HTTP/1.1\r\nHost: kurz.test\r\n\r\n",
     {400, 501}),
    ("method-empty", b" /health HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {400}),
    ("method-connect", b"CONNECT kurz.test:443 HTTP/1.1\r\nHost: kurz.test:443\r\n\r\n",
     {400, 501}),
    ("method-bad-char", b"GE(T /health HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {400, 501}),
    # ---- versions and request-line shape ----
    ("version-1.2", b"GET /health HTTP/1.2\r\nHost: kurz.test\r\n\r\n", {400, 505}),
    ("version-2.0", b"GET /health HTTP/2.0\r\nHost: kurz.test\r\n\r\n", {400, 505}),
    ("version-0.9", b"GET /health\r\nHost: kurz.test\r\n\r\n", {400}),
    ("version-suffix", b"GET /health HTTP/1.1x\r\nHost: kurz.test\r\n\r\n", {400}),
    ("version-two-digits", b"GET /health HTTP/1.10\r\nHost: kurz.test\r\n\r\n", {400}),
    ("version-lowercase", b"GET /health http/1.1\r\nHost: kurz.test\r\n\r\n", {400}),
    ("version-missing-minor", b"GET /health HTTP/1\r\nHost: kurz.test\r\n\r\n", {400}),
    ("request-line-double-space", b"GET  /health HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {400}),
    ("request-line-trailing-space", b"GET /health HTTP/1.1 \r\nHost: kurz.test\r\n\r\n", {400}),
    ("request-line-tab", b"GET\t/health HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {400}),
    # ---- header names ----
    ("header-space-before-colon", b"GET /health HTTP/1.1\r\nHost : kurz.test\r\n\r\n", {400}),
    ("header-tab-before-colon", b"GET /health HTTP/1.1\r\nHost\t: kurz.test\r\n\r\n", {400}),
    ("header-name-space", b"GET /health HTTP/1.1\r\nHost: kurz.test\r\nX A: b\r\n\r\n", {400}),
    ("header-name-bad-char", b"GET /health HTTP/1.1\r\nHost: kurz.test\r\nX(A): b\r\n\r\n", {400}),
    ("header-name-high-byte", b"GET /health HTTP/1.1\r\nHost: kurz.test\r\nX\xe9: b\r\n\r\n",
     {400}),
    ("header-name-empty", b"GET /health HTTP/1.1\r\nHost: kurz.test\r\n: b\r\n\r\n", {400}),
    ("header-no-colon", b"GET /health HTTP/1.1\r\nHost: kurz.test\r\nX-A\r\n\r\n", {400}),
    # ---- request targets ----
    ("target-absolute-form", b"GET http://evil.example/health HTTP/1.1\r\nHost: kurz.test\r\n\r\n",
     {400}),
    ("target-asterisk", b"GET * HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {400}),
    ("target-options-asterisk", b"OPTIONS * HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {400}),
    ("target-relative", b"GET health HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {400}),
    ("target-authority", b"GET kurz.test:80 HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {400}),
    ("target-fragment-space", b"GET /health #x HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {400}),
    # ---- Host ----
    ("host-missing", b"GET /health HTTP/1.1\r\n\r\n", {400}),
    ("host-twice", b"GET /health HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", {400}),
    ("host-twice-same", b"GET /health HTTP/1.1\r\nHost: a.test\r\nhost: a.test\r\n\r\n", {400}),
    ("host-inner-space", b"GET /health HTTP/1.1\r\nHost: a b.test\r\n\r\n", {400}),
    ("host-slash", b"GET /health HTTP/1.1\r\nHost: evil.test/x\r\n\r\n", {400}),
    ("host-userinfo", b"GET /health HTTP/1.1\r\nHost: user@evil.test\r\n\r\n", {400}),
    ("host-angle", b"GET /health HTTP/1.1\r\nHost: <script>\r\n\r\n", {400}),
    ("host-high-byte", b"GET /health HTTP/1.1\r\nHost: \xe9vil.test\r\n\r\n", {400}),
    # ---- sizes ----
    ("header-line-huge", b"GET /health HTTP/1.1\r\nHost: kurz.test\r\nX-A: " + b"a" * 20000 +
     b"\r\n\r\n", {431}),
    ("headers-too-many", b"GET /health HTTP/1.1\r\nHost: kurz.test\r\n" +
     b"".join(b"X-%d: v\r\n" % i for i in range(200)) + b"\r\n", {431}),
    ("uri-absurd", b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: kurz.test\r\n\r\n", {414}),
    ("expect-huge-body", post("Expect: 100-continue\r\nContent-Length: 100000000\r\n"), {413}),
]

IDS = [c[0] for c in CATALOG]
assert len(set(IDS)) == len(IDS)
assert len(CATALOG) >= 40


def sentinel(n):
    """A request that would be answered (404) if it were ever parsed."""
    return b"GET /sentinel-%d HTTP/1.1\r\nHost: x\r\n\r\n" % n


@pytest.fixture(scope="module")
def hostile(kurz_module):
    # Short timeouts so a case the server wrongly waits on shows up as a 408
    # (a failure) quickly instead of hanging the suite.
    return kurz_module.start(["--header-timeout", "4s", "--idle-timeout", "4s",
                              "--create-rate-limit", "0"])


def assert_json_error(r, allowed, what):
    assert r.status in allowed, "%s: expected one of %s, got %r" % (what, sorted(allowed), r)
    assert "json" in r.headers.get("content-type", ""), "%s: %r" % (what, r)
    j = r.json()
    assert j.get("success") is False and j.get("errorCode"), "%s: %r" % (what, j)
    assert r.headers.get("connection", "").lower() == "close", \
        "%s: the error must announce Connection: close: %r" % (what, r)


def check_rejected_then_closed(port, data, allowed, what, separate):
    n = abs(hash(what)) % 100000
    with Raw(port, timeout=15) as c:
        if separate:
            c.send(data)
            time.sleep(0.15)
            c.try_send(sentinel(n))
        else:
            c.send(data + sentinel(n))
        try:
            r = c.read_response()
        except Closed as e:
            raise AssertionError("%s: closed without an answer (%s)" % (what, e))
        assert_json_error(r, allowed, what)
        if separate:
            c.try_send(sentinel(n + 1))
        closed, extra = c.wait_closed(8)
        assert extra == b"", "%s: something after the error was answered: %r" % (what, extra[:300])
        assert closed, "%s: connection still open after the error" % what


@pytest.mark.parametrize("name,data,allowed", CATALOG, ids=IDS)
def test_hostile_request_same_write(hostile, name, data, allowed):
    check_rejected_then_closed(hostile.port, raw(data), allowed, name, separate=False)


@pytest.mark.parametrize("name,data,allowed", CATALOG, ids=IDS)
def test_hostile_request_separate_write(hostile, name, data, allowed):
    check_rejected_then_closed(hostile.port, raw(data), allowed, name, separate=True)


# ---- what stays legal ----------------------------------------------------------------

LEGAL = [
    ("cl-padded", post("Content-Length:   5   \r\n", BODY5)),
    ("cl-tab-leading", post("Content-Length:\t5\r\n", BODY5)),
    ("cl-leading-zeros", post("Content-Length: 005\r\n", BODY5)),
    ("te-chunked-upper", post("Transfer-Encoding: CHUNKED\r\n", CHUNKED_OK)),
    ("te-tab", post("Transfer-Encoding:\tchunked\r\n", CHUNKED_OK)),
    ("chunk-ext-small", post("Transfer-Encoding: chunked\r\n",
                             "5;name=value;q=\"x y\"\r\n{}   \r\n0\r\n\r\n")),
    ("chunk-trailer", post("Transfer-Encoding: chunked\r\n", "5\r\n{}   \r\n0\r\nX-T: 1\r\n\r\n")),
    ("chunk-size-upper-hex", post("Transfer-Encoding: chunked\r\n", "5\r\n{}   \r\n0\r\n\r\n")),
    ("header-value-obs-text", post("X-Name: caf\xe9\r\nContent-Length: 5\r\n", BODY5)),
    ("header-value-tab", post("X-Name: a\tb\r\nContent-Length: 5\r\n", BODY5)),
    ("header-no-space", post("Content-Length:5\r\n", BODY5)),
    ("leading-empty-line", b"\r\n" + post("Content-Length: 5\r\n", BODY5)),
]


@pytest.mark.parametrize("name,data", LEGAL, ids=[l[0] for l in LEGAL])
def test_legal_variants_are_served(hostile, name, data):
    # A POST with body "{}   " reaches the create handler: 400 INVALID_INPUT
    # from the application (originalUrl missing), on a connection that stays
    # open and answers the next request.
    with Raw(hostile.port) as c:
        c.send(raw(data) + b"GET /health HTTP/1.1\r\nHost: kurz.test\r\n\r\n")
        r = c.read_response()
        assert r.status == 400 and r.json().get("errorCode") == "INVALID_INPUT", (name, r)
        assert r.headers.get("connection", "").lower() != "close", (name, r)
        r2 = c.read_response()
        assert r2.status == 200, (name, r2)


def test_missing_final_chunk_is_never_answered(kurz):
    # The body never ends: no response to the request may be produced (a 408
    # notice is allowed), and the server closes after its timeout.
    s = kurz.start(["--idle-timeout", "1s", "--header-timeout", "1s"])
    with Raw(s.port) as c:
        c.send(post("Transfer-Encoding: chunked\r\n", "5\r\n{}   \r\n"))
        t0 = time.monotonic()
        closed, got = c.wait_closed(6)
        assert closed, "connection with an unfinished chunked body still open after 6 s"
        assert got == b"" or got.startswith(b"HTTP/1.1 408 "), got[:300]
        assert time.monotonic() - t0 < 5


def test_missing_final_chunk_then_client_close(hostile):
    # The client gives up: nothing is answered, nothing is created.
    url = unique_url("nofinal")
    body = '{"originalUrl":"%s"}' % url
    with Raw(hostile.port) as c:
        c.send(post("Transfer-Encoding: chunked\r\n", "%x\r\n%s\r\n" % (len(body), body)))
        assert c.quiet_for(0.5)
    time.sleep(0.3)
    with Raw(hostile.port) as c:
        c.send(req("GET", "/health"))
        assert c.read_response().status == 200


# ---- pipelining ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plinks(hostile):
    return [(create_ok(hostile.port, unique_url("pl%d" % i))["shortCode"]) for i in range(4)]


def test_100_pipelined_requests_in_one_write_exact_framing(hostile, plinks):
    links = {c: get(hostile.port, "/api/v1/urls/" + c).json()["originalUrl"] for c in plinks}
    reqs, want = [], []
    for i in range(100):
        k = i % 6
        if k < 2:
            code = plinks[i % len(plinks)]
            reqs.append(req("GET", "/" + code))
            want.append(("GET", 302, links[code]))
        elif k == 2:
            reqs.append(req("GET", "/zZ%05dq" % i))
            want.append(("GET", 404, None))
        elif k == 3:
            reqs.append(req("GET", "/health"))
            want.append(("GET", 200, None))
        elif k == 4:
            code = plinks[i % len(plinks)]
            reqs.append(req("HEAD", "/" + code))
            want.append(("HEAD", 302, links[code]))
        else:
            reqs.append(req("HEAD", "/nope%d" % i))
            want.append(("HEAD", 404, None))
    with Raw(hostile.port) as c:
        c.send(b"".join(reqs))
        for i, (m, status, loc) in enumerate(want):
            r = c.read_response(head=(m == "HEAD"))
            assert r.status == status, (i, m, r)
            if loc:
                assert r.headers.get("location") == loc, (i, r)
            if m == "GET" and status == 404:
                assert r.json()["success"] is False, (i, r)
            if m == "HEAD":
                assert r.body == b""
        # Nothing beyond the 100 responses; the connection stays usable.
        assert c.buf == b"" and c.quiet_for(0.3)
        c.send(req("GET", "/health"))
        assert c.read_response().status == 200


def test_pipelined_valid_then_malformed_answers_valid_first(hostile, plinks):
    with Raw(hostile.port) as c:
        c.send(req("GET", "/" + plinks[0]) + req("GET", "/health") +
               b"GET /health HTTP/1.1\r\nHost: kurz.test\nX: y\r\n\r\n" + sentinel(1))
        assert c.read_response().status == 302
        assert c.read_response().status == 200
        r = c.read_response()
        assert_json_error(r, {400}, "bare LF after two good requests")
        closed, extra = c.wait_closed(8)
        assert closed and extra == b"", extra[:300]


# ---- path tricks ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keyed(kurz_module):
    d = kurz_module.new_data_dir()
    key = kurz_module.admin_key(d)
    s = kurz_module.start(["--create-rate-limit", "0", "--log-level", "debug"], data_dir=d)
    s.admin_key = key
    s.code = create_ok(s.port, unique_url("victim"))["shortCode"]
    return s


PATH_TRICKS = [
    ("GET", "/%61pi/v1/urls"),
    ("GET", "/api/../api/v1/urls"),
    ("GET", "/api/../admin"),
    ("GET", "//api/v1/urls"),
    ("GET", "/api//v1/urls"),
    ("GET", "/api/v1/urls/"),
    ("GET", "/api/v1/urls/../../health"),
    ("GET", "/api/v1/urls/./"),
    ("GET", "/API/V1/URLS"),
    ("GET", "/api/v1/urls%2f"),
    ("GET", "/api/v1/urls;x"),
    ("GET", "/api/v1/urls/%2e%2e"),
    ("GET", "/api/v1/urls/%2e%2e/%2e%2e/metrics"),
    ("GET", "/%c0%ae%c0%ae/api/v1/urls"),
    ("GET", "/%c0%afapi/v1/urls"),
    ("GET", "/api/v1/urls%00"),
    ("GET", "/%00"),
    ("GET", "/api\\v1\\urls"),
    ("GET", "/api/v1/urls?after=%00%ff%0d%0a"),
    ("GET", "/api/v1/urls?after=../../../etc/passwd&limit=-1"),
    ("GET", "/api/v1/urls?limit=99999999999999999999"),
    ("GET", "/api/v1/urls#x"),
    ("GET", "/metrics/../api/v1/urls"),
    ("HEAD", "/api/v1/urls"),
    ("DELETE", "/api/v1/urls"),
    ("DELETE", "/api/v1/urls/"),
    ("DELETE", "/api/v1/urls/%2e%2e"),
    ("DELETE", "//api/v1/urls/{code}"),
    ("DELETE", "/api/v1/urls/{code}"),
    ("DELETE", "/api/v1/urls/{code}/"),
    ("DELETE", "/api/v1/urls/{code}?key=x"),
    ("DELETE", "/api/v1/urls/./{code}"),
    ("DELETE", "/api/v1/urls/%7bcode%7d"),
    ("DELETE", "/%61pi/v1/urls/{code}"),
    ("DELETE", "/{code}"),
    ("POST", "/api/v1/urls/{code}"),
    ("PUT", "/api/v1/urls/{code}"),
]

BAD_AUTH = [
    None,
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer wrong-key-0123456789"},
    {"Authorization": "Basic YWRtaW46YWRtaW4="},
    {"Authorization": "bearer{KEY}x"},
    {"Authorization": "Bearer {KEY}x"},
    {"Authorization": "Bearer x{KEY}"},
    {"X-Authorization": "Bearer {KEY}"},
]


@pytest.mark.parametrize("method,path", PATH_TRICKS, ids=["%s %s" % t for t in PATH_TRICKS])
def test_path_tricks_never_bypass_routes_or_admin_key(keyed, method, path):
    path = path.replace("{code}", keyed.code)
    for h in BAD_AUTH:
        hh = {k: v.replace("{KEY}", keyed.admin_key) for k, v in (h or {}).items()}
        with Raw(keyed.port) as c:
            c.send(req(method, path, hh))
            r = c.read_response(head=(method == "HEAD"))
        assert r.status in (400, 401, 403, 404, 405), (method, path, hh, r)
        if method != "HEAD":
            j = r.json()
            assert j.get("success") is False, (method, path, j)
            assert "originalUrl" not in j and "links" not in j, (method, path, j)
    # The link survived every attempt.
    with Raw(keyed.port) as c:
        c.send(req("GET", "/" + keyed.code))
        assert c.read_response().status == 302


def test_admin_routes_with_the_key_still_work(keyed):
    # The control for the test above: the key is right and the routes exist.
    r = get(keyed.port, "/api/v1/urls?limit=1", headers=auth(keyed.admin_key))
    assert r.status == 200, r
    r = get(keyed.port, "/api/v1/urls?after=%00%ff%0d%0a", headers=auth(keyed.admin_key))
    assert r.status in (200, 400), r


CTL_RE = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f-\xff]")
LOG_LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info|warn|error) ")


def test_injected_bytes_are_logged_escaped(keyed):
    marker = "INJ%d" % time.time_ns()
    evil = [
        b"GET /%s%%0d%%0aFAKE%%20error%%20line HTTP/1.1\r\nHost: kurz.test\r\n\r\n" % marker.encode(),
        b"GET /%s\xc3\xa9\xff HTTP/1.1\r\nHost: kurz.test\r\n\r\n" % marker.encode(),
        b"GET /%s HTTP/1.1\r\nHost: kurz.test\r\nX-A: \xff\xfe\r\nUser-Agent: a\rFAKE\r\n\r\n"
        % marker.encode(),
        b"GET /%s\x1b[31mred HTTP/1.1\r\nHost: kurz.test\r\n\r\n" % marker.encode(),
        b"GET /%s HTTP/1.1\r\nHost: kurz.test\nFAKE: log\r\n\r\n" % marker.encode(),
        b"%s\r\nFAKE error injected\r\n\r\n" % marker.encode(),
    ]
    for data in evil:
        with Raw(keyed.port) as c:
            c.send(data)
            try:
                r = c.read_response()
                assert r.status in (400, 404), r
            except Closed:
                pass
    time.sleep(0.5)
    err = keyed.err_path.read_bytes()
    bad = [l for l in err.split(b"\n") if l and (CTL_RE.search(l) or not LOG_LINE.match(l))]
    assert not bad, "log lines with raw control bytes or broken lines: %r" % bad[:5]
    assert b"FAKE error" not in b"\n".join(l for l in err.split(b"\n")
                                           if l.startswith(b"FAKE"))
    # Protocol errors are logged at debug level, with the peer and an escaped
    # excerpt of what was received.
    dbg = [l for l in err.split(b"\n") if b" debug " in l and marker.encode() in l]
    assert dbg, "expected debug lines about the rejected requests:\n%s" % err[-3000:].decode(
        "latin-1")
    assert any(b"\\x" in l for l in dbg), dbg
