"""Every way a create can be invalid is answered 400 INVALID_INPUT with the
JSON error body, stores nothing, and can never put bytes into a header."""

import json

import pytest

from kurztest import (CREATE, Raw, assert_error, create, create_ok, get, list_codes, req,
                      request)

INJECT = "X-Injected"


def bad_bodies(port):
    """(id, raw request body) pairs that must all be refused."""
    def j(url, **kw):
        d = dict(kw)
        d["originalUrl"] = url
        return json.dumps(d).encode()

    own = "http://127.0.0.1:%d" % port
    return [
        ("invalid-json", b'{"originalUrl": '),
        ("empty-body", b""),
        ("json-array", b'["https://example.com/a"]'),
        ("json-string", b'"https://example.com/a"'),
        ("json-null", b"null"),
        ("missing-originalUrl", b'{"url": "https://example.com/a"}'),
        ("empty-object", b"{}"),
        ("number", b'{"originalUrl": 42}'),
        ("null", b'{"originalUrl": null}'),
        ("bool", b'{"originalUrl": true}'),
        ("object", b'{"originalUrl": {"href": "https://example.com/a"}}'),
        ("empty-string", j("")),
        ("ftp", j("ftp://example.com/file")),
        ("javascript", j("javascript:alert(1)")),
        ("data-uri", j("data:text/html,<script>alert(1)</script>")),
        ("no-scheme", j("example.com/a")),
        ("scheme-only-http", j("http://")),
        ("scheme-only-https", j("https://")),
        ("no-slashes", j("http:example.com")),
        ("space-in-host", j("http://exa mple.com/")),
        ("space-in-path", j("http://example.com/a b")),
        ("leading-space", j(" http://example.com/a")),
        ("crlf", j("http://example.com/\r\n%s: yes" % INJECT)),
        ("lf", j("http://example.com/\n%s: yes" % INJECT)),
        ("cr", j("http://example.com/\r%s: yes" % INJECT)),
        ("tab", j("http://example.com/\ta")),
        ("nul", j("http://example.com/\u0000a")),
        ("del", j("http://example.com/\u007fa")),
        ("non-ascii-escaped", j("http://example.com/\u00fc")),
        ("non-ascii-utf8", json.dumps({"originalUrl": "http://ex\u00e4mple.com/"},
                                      ensure_ascii=False).encode()),
        ("invalid-utf8", b'{"originalUrl": "http://example.com/\xff"}'),
        ("too-long", j("https://example.com/" + "a" * (5001 - 20))),
        ("userinfo", j("http://user:pass@example.com/")),
        ("user-only", j("http://user@example.com/")),
        ("bad-port", j("http://example.com:99999/")),
        ("own-origin", j(own + "/abc")),
        ("own-origin-upper", j(own.upper() + "/abc")),
    ]


@pytest.fixture(scope="module")
def cases(srv):
    return dict(bad_bodies(srv.port))


def _post(port, body):
    return request(port, "POST", CREATE, body=body,
                   headers={"Content-Type": "application/json"})


def _assert_no_injection(port, r):
    """If the server accepted it anyway, its redirect must carry no injected
    header line."""
    if r.status != 201:
        return
    code = r.json().get("shortCode")
    with Raw(port) as c:
        c.send(req("GET", "/" + code))
        c.sock.settimeout(10)
        raw = c.sock.recv(65536)
    head = raw.split(b"\r\n\r\n")[0]
    assert INJECT.lower().encode() not in head.lower(), "header injected: %r" % raw


@pytest.mark.parametrize("case", [c for c, _ in bad_bodies(0)])
def test_create_refuses(srv, cases, case):
    r = _post(srv.port, cases[case])
    _assert_no_injection(srv.port, r)
    assert_error(r, 400, "INVALID_INPUT")


def test_create_refuses_link_to_base_url_host(kurz_module):
    s = kurz_module.start(["--create-rate-limit", "0", "--base-url", "https://sho.rt"])
    for url in ("https://sho.rt/abc", "HTTPS://Sho.RT/abc", "https://sho.rt:443/x",
                "https://sho.rt./abc"):
        assert_error(create(s.port, url), 400, "INVALID_INPUT")
    # Another host is fine.
    create_ok(s.port, "https://not-sho.rt/abc")


def test_create_refuses_link_to_host_header_origin(srv):
    r = create(srv.port, "http://short.example:8000/abc",
               headers={"Host": "short.example:8000"})
    assert_error(r, 400, "INVALID_INPUT")


def test_create_refuses_link_to_body_base_url(srv):
    r = create(srv.port, "https://b.example/abc", baseUrl="https://b.example")
    assert_error(r, 400, "INVALID_INPUT")


def test_invalid_creates_store_nothing(kurz):
    d = kurz.new_data_dir()
    key = kurz.admin_key(d)
    s = kurz.start(["--create-rate-limit", "0"], data_dir=d)
    for name, body in bad_bodies(s.port):
        r = _post(s.port, body)
        assert r.status == 400, (name, r)
    for fields in ({"alias": "API"}, {"alias": "x"}, {"expiresIn": -1},
                   {"expiresAt": "2001-01-01T00:00:00Z"}):
        r = create(s.port, "https://example.com/valid-but-bad-extra", **fields)
        assert r.status == 400, (fields, r)
    good = create_ok(s.port, "https://example.com/the-only-good-one")
    assert list_codes(s.port, key) == [good["shortCode"]]
    # The valid URL of a refused create was not stored under some code either.
    r = create_ok(s.port, "https://example.com/valid-but-bad-extra")
    assert sorted(list_codes(s.port, key)) == sorted([good["shortCode"], r["shortCode"]])
    assert get(s.port, "/" + r["shortCode"]).status == 302
