"""The web pages in a real headless Chromium (python3-selenium): creating a
link through the form, following it to a local target page, its preview and
statistics pages, with and without JavaScript and at phone width; payloads in
URLs and aliases render as text and never run. Plus plain HTTP checks of the
security and caching headers and of escaping. Screenshots are kept in
tests/artifacts/screenshots/."""

import http.server
import os
import re
import shutil
import tempfile
import threading
import time
from urllib.parse import unquote

import pytest
import requests

from kurztest import CREATE, REPO

SHOTS = REPO / "tests" / "artifacts" / "screenshots"
TARGET_TITLE = "kurz test target page"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
XSS_URL = "https://example.com/?q=<script>window.__pwned=1</script>"
XSS_PATH_URL = "https://example.com/x\"><img/src=x/onerror=window.__pwned=1>'"
XSS_ALIAS = "x\"><img src=x onerror=window.__pwned=1>"

try:
    from selenium import webdriver
    from selenium.common.exceptions import (NoAlertPresentException,
                                            StaleElementReferenceException,
                                            WebDriverException)
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    HAVE_SELENIUM = True
except ImportError:  # non-browser tests still run
    HAVE_SELENIUM = False

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
browser = pytest.mark.skipif(
    not (HAVE_SELENIUM and os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason="chromium, chromium-driver or python3-selenium not installed")


# ---- fixtures -------------------------------------------------------------

class _Target(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("<!DOCTYPE html><title>%s</title><p>you arrived</p>" % TARGET_TITLE).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def target():
    """A tiny page on loopback that short links lead to."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def usrv(kurz_module):
    return kurz_module.start(["--create-rate-limit", "0", "--click-flush-interval", "200ms"])


def _chrome(js=True):
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1280,900"):
        o.add_argument(a)
    profile = tempfile.mkdtemp(prefix="kurz-chrome-")
    o.add_argument("--user-data-dir=" + profile)
    if not js:
        o.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
    d.set_page_load_timeout(30)
    d._kurz_profile = profile
    return d


def _quit(d):
    try:
        d.quit()
    finally:
        shutil.rmtree(d._kurz_profile, ignore_errors=True)


@pytest.fixture(scope="module")
def js_browser():
    d = _chrome(js=True)
    yield d
    _quit(d)


@pytest.fixture(scope="module")
def nojs_browser():
    d = _chrome(js=False)
    yield d
    _quit(d)


def shot(d, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(SHOTS / (name + ".png")))


def submit_form(d, origin, url, alias="", expiry=None):
    d.get(origin + "/")
    d.find_element(By.ID, "url").send_keys(url)
    if alias:
        d.find_element(By.ID, "alias").send_keys(alias)
    if expiry:
        d.find_element(By.CSS_SELECTOR, "#expiry option[value='%s']" % expiry).click()
    form = d.find_element(By.TAG_NAME, "form")
    d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(d, 30).until(lambda _: replaced(form))


def replaced(elem):
    """True once the next page has replaced elem's page.

    Chromium can answer a query on an element of a page that is being torn
    down with a transient "unhandled inspector error"; that means "not yet",
    so the wait polls again rather than failing the test."""
    try:
        elem.is_enabled()
        return False
    except StaleElementReferenceException:
        return True
    except WebDriverException:
        return False


def assert_not_pwned(d):
    # execute_script runs through the DevTools protocol, also with page
    # JavaScript disabled.
    assert d.execute_script("return typeof window.__pwned") == "undefined"
    try:
        d.switch_to.alert
        pytest.fail("an alert is open")
    except NoAlertPresentException:
        pass


def no_horizontal_scroll(d):
    sw, iw = d.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]")
    assert sw <= iw, "page is %d px wide in a %d px viewport" % (sw, iw)


def wait_for(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.2)


# ---- in the browser -------------------------------------------------------

def _create_follow_preview_stats(d, srv, target, name, js):
    page = target + "/page-%s?x=1&y=2" % name
    submit_form(d, srv.origin, page, expiry="30d")
    assert d.find_element(By.TAG_NAME, "h1").text == "Your short link is ready"
    short = d.find_element(By.ID, "short-url").text
    assert re.fullmatch(re.escape(srv.origin) + r"/[0-9A-Za-z]{7}", short), short
    assert d.find_element(By.ID, "target").text == page
    copy = d.find_element(By.CSS_SELECTOR, "button[data-copy]")
    assert copy.is_displayed() == js  # an enhancement: only with JavaScript
    if js:
        copy.click()
        assert wait_for(lambda: copy.text in ("Copied", "Press Ctrl+C to copy"), 5)
    qr = d.find_element(By.CSS_SELECTOR, "img.qr")
    assert wait_for(lambda: d.execute_script("return arguments[0].complete && "
                                             "arguments[0].naturalWidth", qr) > 0)
    shot(d, "%s-result" % name)
    code = short.rsplit("/", 1)[1]

    d.get(short)
    assert wait_for(lambda: d.title == TARGET_TITLE), d.title
    assert d.current_url == page

    d.get(short + "+")
    assert d.find_element(By.ID, "target").text == page
    cont = d.find_element(By.ID, "continue")
    assert cont.get_attribute("href") == page
    assert set(cont.get_attribute("rel").split()) == {"noopener", "noreferrer", "nofollow"}
    assert "Expires" in d.find_element(By.TAG_NAME, "dl").text
    shot(d, "%s-preview" % name)

    def counted():
        d.get(srv.origin + "/stats/" + code)
        return d.find_element(By.ID, "total-clicks").text == "1"
    assert wait_for(counted), "the click did not reach the stats page"
    bars = d.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")
    assert len(bars) == 30
    assert int(bars[-1].get_attribute("height")) > 0  # today's click
    shot(d, "%s-stats" % name)

    d.get(srv.origin + "/stats")
    assert int(d.find_element(By.ID, "total-urls").text) >= 1
    shot(d, "%s-platform" % name)
    return code


@browser
def test_form_flow_with_javascript(js_browser, usrv, target):
    _create_follow_preview_stats(js_browser, usrv, target, "js", js=True)
    assert_not_pwned(js_browser)


@browser
def test_form_flow_without_javascript(nojs_browser, usrv, target):
    d = nojs_browser
    d.get(usrv.origin + "/")
    assert d.execute_script("return document.querySelector('noscript, body') !== null")
    _create_follow_preview_stats(d, usrv, target, "nojs", js=False)


@browser
def test_phone_width(js_browser, usrv, target):
    d = js_browser
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True})
    try:
        d.get(usrv.origin + "/")
        assert d.execute_script("return window.innerWidth") == 375
        no_horizontal_scroll(d)
        for field in ("url", "alias", "expiry"):
            el = d.find_element(By.ID, field)
            assert el.is_displayed()
            assert el.rect["x"] >= 0 and el.rect["x"] + el.rect["width"] <= 375
            # Every field has a visible label.
            label = d.find_element(By.CSS_SELECTOR, "label[for='%s']" % field)
            assert label.is_displayed() and label.text
        shot(d, "phone-home")
        long_target = target + "/" + "very-long-path-segment-without-breaks" * 8
        submit_form(d, usrv.origin, long_target)
        assert d.find_element(By.ID, "target").text == long_target
        no_horizontal_scroll(d)
        shot(d, "phone-result")
        code = d.find_element(By.ID, "short-url").text.rsplit("/", 1)[1]
        for path in ("/%s+" % code, "/stats/" + code, "/stats"):
            d.get(usrv.origin + path)
            no_horizontal_scroll(d)
        shot(d, "phone-stats")
        # Errors next to the field also fit.
        submit_form(d, usrv.origin, "not a link")
        assert d.find_element(By.ID, "url-error").is_displayed()
        no_horizontal_scroll(d)
        shot(d, "phone-error")
    finally:
        d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


@browser
@pytest.mark.parametrize("which", ["js", "nojs"])
def test_payload_urls_render_as_text(js_browser, nojs_browser, usrv, which):
    d = js_browser if which == "js" else nojs_browser
    for i, url in enumerate((XSS_URL, XSS_PATH_URL)):
        submit_form(d, usrv.origin, url)
        assert d.find_element(By.ID, "target").text == url
        assert_not_pwned(d)
        assert not d.find_elements(By.CSS_SELECTOR, "main img:not(.qr), main script")
        code = d.find_element(By.ID, "short-url").text.rsplit("/", 1)[1]
        for path in ("/%s+" % code, "/stats/" + code):
            d.get(usrv.origin + path)
            assert d.find_element(By.ID, "target").text == url
            assert_not_pwned(d)
        d.get(usrv.origin + "/%s+" % code)
        # The browser may percent-encode the href; it is the same URL.
        assert unquote(d.find_element(By.ID, "continue").get_attribute("href")) == url
        shot(d, "payload-%s-%d" % (which, i))


@browser
@pytest.mark.parametrize("which", ["js", "nojs"])
def test_payload_alias_and_bad_urls_refilled_as_text(js_browser, nojs_browser, usrv, which):
    d = js_browser if which == "js" else nojs_browser
    submit_form(d, usrv.origin, "https://example.com/alias-payload", alias=XSS_ALIAS)
    err = d.find_element(By.ID, "alias-error")
    assert "alias" in err.text.lower()
    alias = d.find_element(By.ID, "alias")
    assert alias.get_attribute("value") == XSS_ALIAS
    assert alias.get_attribute("aria-invalid") == "true"
    assert d.find_element(By.ID, "url").get_attribute("value") == \
        "https://example.com/alias-payload"
    assert_not_pwned(d)
    shot(d, "alias-payload-%s" % which)

    submit_form(d, usrv.origin, "javascript:window.__pwned=1//<b>")
    assert "http:// or https://" in d.find_element(By.ID, "url-error").text
    assert d.find_element(By.ID, "url").get_attribute("value") == \
        "javascript:window.__pwned=1//<b>"
    assert_not_pwned(d)


@browser
def test_alias_taken_shown_next_to_field(js_browser, usrv):
    d = js_browser
    alias = "taken-%d" % int(time.time() * 1000)
    submit_form(d, usrv.origin, "https://example.com/first", alias=alias)
    assert d.find_element(By.ID, "short-url").text == usrv.origin + "/" + alias
    submit_form(d, usrv.origin, "https://example.com/second", alias=alias)
    assert "already taken" in d.find_element(By.ID, "alias-error").text
    assert d.find_element(By.ID, "url").get_attribute("value") == "https://example.com/second"
    # With JavaScript, focus moves to the field in error.
    assert d.switch_to.active_element.get_attribute("id") == "alias"
    shot(d, "alias-taken")


# ---- plain HTTP -----------------------------------------------------------

def check_page_headers(r):
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["Content-Security-Policy"] == CSP
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in r.headers
    body = r.text
    # No inline script, no inline style, no event handler attributes.
    assert not re.search(r"<script(?![^>]*\ssrc=)", body)
    assert " style=" not in body and "<style" not in body
    assert not re.search(r"\son[a-z]+=", body)


def post_form(srv, **fields):
    return requests.post(srv.origin + "/", data=fields, allow_redirects=False, timeout=30)


def test_security_headers_on_every_page(usrv):
    created = post_form(usrv, url="https://example.com/headers")
    assert created.status_code == 201
    code = created.headers["Location"].rsplit("/", 1)[1]
    pages = [
        requests.get(usrv.origin + "/", timeout=30),
        created,
        post_form(usrv, url="ftp://example.com/"),
        requests.get(usrv.origin + "/%s+" % code, timeout=30),
        requests.get(usrv.origin + "/stats/" + code, timeout=30),
        requests.get(usrv.origin + "/stats", timeout=30),
        requests.get(usrv.origin + "/stats?code=%3Cb%3E", timeout=30),
        requests.get(usrv.origin + "/zzzzzz9+", timeout=30),
        requests.get(usrv.origin + "/stats/zzzzzz9", timeout=30),
        requests.post(usrv.origin + "/", data="{}", timeout=30,
                      headers={"Content-Type": "application/json"}),
    ]
    assert [p.status_code for p in pages] == [200, 201, 400, 200, 200, 200, 400, 404, 404, 415]
    for p in pages:
        check_page_headers(p)


def test_escaping_of_every_field(usrv):
    # Through the JSON API, so that the pages must escape what others stored.
    r = requests.post(usrv.origin + CREATE, json={"originalUrl": XSS_PATH_URL}, timeout=30)
    assert r.status_code == 201, r.text
    code = r.json()["shortCode"]
    escaped = ("https://example.com/x&quot;&gt;&lt;img/src=x/onerror=window.__pwned=1&gt;"
               "&#39;")
    for path in ("/%s+" % code, "/stats/" + code):
        body = requests.get(usrv.origin + path, timeout=30).text
        assert escaped in body
        assert "<img/src" not in body and '"><img' not in body
    # The form echoes every field escaped.
    r = post_form(usrv, url=XSS_PATH_URL, alias=XSS_ALIAS, expiry="7d")
    assert r.status_code == 400
    assert 'value="x&quot;&gt;&lt;img src=x onerror=window.__pwned=1&gt;"' in r.text
    assert escaped in r.text
    r = post_form(usrv, url="https://example.com/e", expiry='"><script>x</script>')
    assert r.status_code == 400 and "<script>x" not in r.text
    assert 'aria-invalid="true"' in r.text
    # The Host header reaches short URLs on pages: it is sanitized.
    r = requests.get(usrv.origin + "/%s+" % code, headers={"Host": "a\"><b>x"}, timeout=30)
    assert "<b>x" not in r.text


def test_friendly_errors(usrv):
    r = post_form(usrv, url="")
    assert r.status_code == 400
    assert "Please enter the long link" in r.text
    r = post_form(usrv, url="https://example.com/x", alias="ab")
    assert r.status_code == 400 and "The alias must be 3 to 64 characters long." in r.text
    r = post_form(usrv, url="https://example.com/x", alias="stats")
    assert "reserved word" in r.text
    r = post_form(usrv, url=usrv.origin + "/abc")
    assert "must not point to this URL shortener" in r.text
    r = post_form(usrv, url="https://example.com/" + "a" * 5001)
    assert r.status_code == 400 and "too long" in r.text


def test_rate_limited_form(kurz):
    s = kurz.start(["--create-rate-limit", "1"])
    assert post_form(s, url="https://example.com/one").status_code == 201
    r = post_form(s, url="https://example.com/two")
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    check_page_headers(r)
    assert "Please wait" in r.text
    assert 'value="https://example.com/two"' in r.text


def test_expired_and_unknown_previews(usrv):
    r = requests.post(usrv.origin + CREATE,
                      json={"originalUrl": "https://example.com/soon", "expiresIn": 1}, timeout=30)
    code = r.json()["shortCode"]
    assert requests.get(usrv.origin + "/%s+" % code, timeout=30).status_code == 200
    time.sleep(2.1)
    r = requests.get(usrv.origin + "/%s+" % code, timeout=30)
    assert r.status_code == 404 and "expired" in r.text
    r = requests.get(usrv.origin + "/nosuch1+", timeout=30)
    assert r.status_code == 404 and "does not exist" in r.text


def test_head_caching_and_assets(usrv):
    home = requests.get(usrv.origin + "/", timeout=30)
    h = requests.head(usrv.origin + "/", timeout=30)
    assert h.status_code == 200 and h.content == b""
    assert h.headers["Content-Length"] == home.headers["Content-Length"]
    links = re.findall(r'(?:href|src)="(/static/[^"]+)"', home.text)
    assert len(links) == 2 and all("?v=" in l for l in links)
    for link in links:
        r = requests.get(usrv.origin + link.replace("&amp;", "&"), timeout=30)
        assert r.status_code == 200
        assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert r.headers["ETag"].strip('"') == link.split("?v=")[1]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Content-Type"].startswith(
            "text/css" if link.endswith(".css") or ".css?" in link else "text/javascript")
    # Another version of an asset is served but not cached for long.
    r = requests.get(usrv.origin + "/static/kurz.css?v=old", timeout=30)
    assert r.status_code == 200 and "immutable" not in r.headers["Cache-Control"]
    assert requests.get(usrv.origin + "/static/nope.js", timeout=30).status_code == 404
    assert requests.get(usrv.origin + "/stats/a/b", timeout=30).status_code == 404
    r = requests.delete(usrv.origin + "/", timeout=30)
    assert r.status_code == 405 and "POST" in r.headers["Allow"]
    r = requests.post(usrv.origin + "/abc1234+", timeout=30)
    assert r.status_code == 405


def test_stats_lookup_form_redirects(usrv):
    r = requests.get(usrv.origin + "/stats", params={"code": usrv.origin + "/abc1234+"},
                     allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"] == "/stats/abc1234"
    r = requests.get(usrv.origin + "/stats", params={"code": "no such!"}, timeout=30)
    assert r.status_code == 400 and 'aria-invalid="true"' in r.text


def test_redirect_unchanged(usrv):
    r = requests.post(usrv.origin + CREATE, json={"originalUrl": "https://example.com/hot"},
                      timeout=30)
    code = r.json()["shortCode"]
    r = requests.get(usrv.origin + "/" + code, allow_redirects=False, timeout=30)
    assert r.status_code == 302 and r.headers["Location"] == "https://example.com/hot"
    assert "Content-Security-Policy" not in r.headers
