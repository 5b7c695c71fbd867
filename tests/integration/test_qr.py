"""QR codes of short URLs (GET /api/v1/create/qr): PNG by default (300x300,
decoded with zbarimg to exactly the short URL), SVG on request (rasterized
here from its path and decoded the same way), bounded sizes, and no QR
service for arbitrary text or other sites' URLs."""

import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from urllib.parse import quote

import pytest
import requests

from kurztest import CREATE

QR = "/api/v1/create/qr"
pytestmark = pytest.mark.skipif(not shutil.which("zbarimg"), reason="zbar-tools not installed")


@pytest.fixture(scope="module")
def qsrv(kurz_module):
    return kurz_module.start(["--create-rate-limit", "0"])


def shorten(srv, url):
    r = requests.post(srv.origin + CREATE, json={"originalUrl": url}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["shortUrl"]


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    w, h, depth, ctype = struct.unpack(">IIBB", data[16:26])
    return w, h, depth, ctype


def zbar(path):
    p = subprocess.run(["zbarimg", "-q", "--raw", str(path)], capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout.decode().rstrip("\n")


def write_png(path, pixels, n):
    """pixels: n x n list of rows of 0 (dark) / 255 (light): 8-bit gray PNG."""
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", n, n, 8, 0, 0, 0, 0)) +
           chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    path.write_bytes(png)


def rasterize_svg(svg_text, scale=8):
    """Renders kurz's SVG (a white rect and one path of 'Mx yhWv1h-Wz' runs)
    to pixel rows, checking its structure on the way."""
    root = ET.fromstring(svg_text)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    vb = [int(v) for v in root.get("viewBox").split()]
    assert vb[:2] == [0, 0] and vb[2] == vb[3]
    n = vb[2]
    ns = "{http://www.w3.org/2000/svg}"
    assert [c.tag for c in root] == [ns + "rect", ns + "path"]
    assert root.find(".//" + ns + "script") is None
    grid = [[255] * n for _ in range(n)]
    d = root.find(ns + "path").get("d")
    runs = re.findall(r"M(\d+) (\d+)h(\d+)v1h-(\d+)z", d)
    assert "".join("M%s %sh%sv1h-%sz" % r for r in runs) == d, "unexpected path syntax"
    for x, y, w, w2 in runs:
        x, y, w = int(x), int(y), int(w)
        assert w == int(w2)
        for i in range(x, x + w):
            grid[y][i] = 0
    # Quiet zone of 4 modules all around.
    for i in range(n):
        for j in list(range(4)) + list(range(n - 4, n)):
            assert grid[i][j] == 255 and grid[j][i] == 255
    rows = []
    for row in grid:
        big = [v for v in row for _ in range(scale)]
        rows.extend([big] * scale)
    return rows, n * scale


def test_png_default_decodes_to_short_url(qsrv, tmp_path):
    short = shorten(qsrv, "https://example.com/qr/default")
    r = requests.get(qsrv.origin + QR, params={"shortUrl": short}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "image/png"
    assert "max-age" in r.headers["Cache-Control"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert png_size(r.content)[:2] == (300, 300)
    p = tmp_path / "qr.png"
    p.write_bytes(r.content)
    assert zbar(p) == short


@pytest.mark.parametrize("size", [64, 150, 1024])
def test_png_sizes(qsrv, tmp_path, size):
    short = shorten(qsrv, "https://example.com/qr/sizes")
    r = requests.get(qsrv.origin + QR, params={"shortUrl": short, "size": str(size),
                                               "format": "png"}, timeout=30)
    assert r.status_code == 200
    w, h, depth, ctype = png_size(r.content)
    assert (w, h) == (size, size) and ctype == 0 and depth in (1, 8)
    if size >= 150:
        p = tmp_path / ("qr%d.png" % size)
        p.write_bytes(r.content)
        assert zbar(p) == short


def test_svg_decodes_to_short_url(qsrv, tmp_path):
    short = shorten(qsrv, "https://example.com/qr/svg")
    r = requests.get(qsrv.origin + QR, params={"shortUrl": short, "format": "svg",
                                               "size": "256"}, timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "image/svg+xml"
    assert b"<script" not in r.content
    root = ET.fromstring(r.content)
    assert root.get("width") == "256" and root.get("height") == "256"
    rows, n = rasterize_svg(r.content)
    p = tmp_path / "svg.png"
    write_png(p, rows, n)
    assert zbar(p) == short


@pytest.mark.parametrize("short_url", [
    "hello world",
    "https://evil.example/abc1234",
    "http://127.0.0.1:1/abc1234",
    "javascript:alert(1)",
    "{origin}",
    "{origin}/",
    "{origin}/abc/def",
    "{origin}/abc%20def",
    "{origin}/api/v1/create/shorten?x=1",
    "{origin}/" + "a" * 65,
    "{origin}x/abc1234",
])
def test_refuses_foreign_urls_and_text(qsrv, short_url):
    u = short_url.format(origin=qsrv.origin)
    r = requests.get(qsrv.origin + QR + "?shortUrl=" + quote(u, safe=""), timeout=30)
    assert r.status_code == 400, (u, r.status_code)
    assert r.headers["Content-Type"] == "application/json"
    assert r.json()["errorCode"] == "INVALID_INPUT"


def test_missing_short_url(qsrv):
    r = requests.get(qsrv.origin + QR, timeout=30)
    assert r.status_code == 400
    assert r.json()["errorCode"] == "INVALID_INPUT"


@pytest.mark.parametrize("params", [
    {"size": "63"}, {"size": "1025"}, {"size": "0"}, {"size": "-300"}, {"size": "30x"},
    {"size": ""}, {"size": "99999999999999999999"}, {"format": "gif"}, {"format": ""},
    {"format": "SVG "},
])
def test_option_bounds(qsrv, params):
    short = shorten(qsrv, "https://example.com/qr/bounds")
    r = requests.get(qsrv.origin + QR, params=dict(params, shortUrl=short), timeout=30)
    assert r.status_code == 400, params
    assert r.json()["errorCode"] == "INVALID_INPUT"


def test_head_and_methods(qsrv):
    short = shorten(qsrv, "https://example.com/qr/head")
    g = requests.get(qsrv.origin + QR, params={"shortUrl": short}, timeout=30)
    h = requests.head(qsrv.origin + QR, params={"shortUrl": short}, timeout=30)
    assert h.status_code == 200 and h.content == b""
    assert h.headers["Content-Length"] == g.headers["Content-Length"]
    assert h.headers["Content-Type"] == "image/png"
    p = requests.post(qsrv.origin + QR, params={"shortUrl": short}, timeout=30)
    assert p.status_code == 405 and "GET" in p.headers["Allow"]


def test_base_url_is_the_only_prefix(kurz, tmp_path):
    s = kurz.start(["--create-rate-limit", "0", "--base-url", "https://kurz.example/s"])
    short = shorten(s, "https://example.com/qr/base")
    assert short.startswith("https://kurz.example/s/")
    r = requests.get(s.origin + QR, params={"shortUrl": short}, timeout=30)
    assert r.status_code == 200
    p = tmp_path / "b.png"
    p.write_bytes(r.content)
    assert zbar(p) == short
    # With --base-url, the Host the client used is not a valid prefix.
    code = short.rsplit("/", 1)[1]
    r = requests.get(s.origin + QR, params={"shortUrl": s.origin + "/" + code}, timeout=30)
    assert r.status_code == 400
