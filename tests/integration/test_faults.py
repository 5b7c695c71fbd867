"""Faults underneath kurz: a full disk (SQLite on a small tmpfs), I/O errors
injected with libfiu (fiu-run / fiu-ctrl), and allocation failures (a test
build that fails the Nth allocation kurz makes). In every case creates fail
with a clean error and never with a 201 that is not durable, existing links
keep redirecting, and kurz recovers by itself once the fault is gone."""

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kurztest import (REPO, TSAN, Raw, assert_error, auth, create, create_req, get, metric_sum,
                      metrics, unique_url)

FAULT_BIN = os.environ.get("KURZ_FAULT_BIN") or str(REPO / "build" / "faults" / "kurz")


def can_mount_tmpfs():
    return os.geteuid() == 0 and shutil.which("mount") is not None


class Tmpfs:
    """A small tmpfs mounted for one test, so kurz alone can fill it."""

    def __init__(self, path, size):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size,
                            "tmpfs", str(self.path)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip("cannot mount a tmpfs here: %s" % r.stderr.strip())

    def fill(self, name="filler"):
        """Writes a file until the file system is full."""
        f = self.path / name
        with open(f, "wb", buffering=0) as fh:
            for chunk in (1 << 16, 4096, 512, 1):
                while True:
                    try:
                        fh.write(b"\0" * chunk)
                    except OSError as e:
                        assert e.errno == errno.ENOSPC, e
                        break
        st = os.statvfs(self.path)
        assert st.f_bavail == 0, "tmpfs still has %d free blocks" % st.f_bavail
        return f

    def umount(self):
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


def link_urls(port, key):
    """{code: originalUrl} of every stored link, through the admin list."""
    out = {}
    after = None
    for _ in range(1000):
        path = "/api/v1/urls?limit=100" + ("&after=" + after if after else "")
        r = get(port, path, headers=auth(key))
        assert r.status == 200, r
        j = r.json()
        items = next(v for v in ([j] if isinstance(j, list) else j.values())
                     if isinstance(v, list))
        if not items:
            return out
        for it in items:
            out[it["shortCode"]] = it["originalUrl"]
        after = items[-1]["shortCode"]
    raise AssertionError("list never ended")


def assert_redirects(port, code, url):
    r = get(port, "/" + code)
    assert r.status == 302 and r.headers.get("location") == url, (code, url, r)


def create_outcome(port, url):
    """Creates url; returns the code on 201, None on a 503 SERVICE_UNAVAILABLE.
    Anything else fails the test."""
    r = create(port, url)
    if r.status == 201:
        j = r.json()
        assert j["originalUrl"] == url, j
        return j["shortCode"]
    assert_error(r, 503, "SERVICE_UNAVAILABLE")
    assert r.headers.get("retry-after"), r
    return None


def check_after_restart(kurz, s, key, acked, refused):
    """Restarts s on its data dir: every acknowledged link is there and
    redirects, no refused URL was stored, and new creates get fresh codes."""
    s2 = kurz.restart(s)
    stored = link_urls(s2.port, key)
    for code, url in acked.items():
        assert stored.get(code) == url, "acknowledged %s -> %s lost after restart" % (code, url)
        assert_redirects(s2.port, code, url)
    leaked = set(refused) & set(stored.values())
    assert not leaked, "URLs refused with 503 are stored: %r" % sorted(leaked)[:5]
    # The code counter survived the failed transactions: new links get new
    # codes (a counter lease lost in a rolled-back transaction would hand out
    # codes that already exist).
    for i in range(12):
        url = unique_url("after-restart-%d" % i)
        r = create(s2.port, url)
        assert r.status == 201, r
        code = r.json()["shortCode"]
        assert code not in stored, "code %s issued twice" % code
        stored[code] = url
    assert "already exists" not in s2.stderr(), s2.stderr_tail()
    return s2


@pytest.mark.skipif(not can_mount_tmpfs(), reason="mounting a tmpfs needs root")
def test_disk_full_creates_503_redirects_work_and_recover(kurz, tmp_path):
    fs = Tmpfs(tmp_path / "disk", "2m")
    try:
        data = fs.path / "data"
        data.mkdir()
        key = kurz.admin_key(data)
        s = kurz.start(["--create-rate-limit", "0"], data_dir=data)
        before = {}
        for i in range(5):
            url = unique_url("before-full-%d" % i)
            code = create_outcome(s.port, url)
            assert code, "create before the disk filled up failed"
            before[code] = url
        # A new process: its L1 is cold (redirects below read the store) and
        # its code generator must lease a counter block during the failure.
        s = kurz.restart(s)

        filler = fs.fill()
        acked, refused = dict(before), []
        for i in range(60):
            url = unique_url("full-%d" % i)
            code = create_outcome(s.port, url)
            if code:
                acked[code] = url
            else:
                refused.append(url)
            if len(refused) >= 10:
                break
        assert refused, "60 creates on a full disk all answered 201"

        # Reads keep working: redirects (cold from the store, then from L1)
        # and lookups from the store.
        for code, url in before.items():
            assert_redirects(s.port, code, url)
            assert_redirects(s.port, code, url)
            r = get(s.port, "/api/v1/urls/" + code)
            assert r.status == 200 and r.json()["originalUrl"] == url, r
        assert get(s.port, "/health").status == 200

        # Space returns: creates recover without a restart.
        filler.unlink()
        deadline = time.monotonic() + 20
        while True:
            url = unique_url("recovered")
            code = create_outcome(s.port, url)
            if code:
                acked[code] = url
                break
            refused.append(url)
            assert time.monotonic() < deadline, "creates did not recover within 20 s"
            time.sleep(0.2)
        for i in range(10):
            url = unique_url("after-%d" % i)
            code = create_outcome(s.port, url)
            assert code, "create failed after space returned"
            acked[code] = url

        check_after_restart(kurz, s, key, acked, refused)
    finally:
        kurz.close()
        fs.umount()


# ---- I/O errors injected with libfiu ----------------------------------------

RELEASE_BIN = str(REPO / "build" / "kurz")


def fiu_ctrl(pid, command):
    r = subprocess.run(["fiu-ctrl", "-c", command, str(pid)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, "fiu-ctrl %r: %s" % (command, r.stderr)


@pytest.mark.skipif(shutil.which("fiu-run") is None, reason="fiu-utils is not installed")
@pytest.mark.skipif(TSAN, reason="runs the release build; once is enough")
def test_io_errors_creates_503_nothing_acknowledged_lost(kurz):
    """fiu-run -x preloads libfiu's POSIX wrappers, which crash together with
    ASan's interceptors at startup: this test runs the release build
    build/kurz under fiu, and the checks after the restart run KURZ_BIN."""
    if not os.access(RELEASE_BIN, os.X_OK):
        pytest.skip("no release build at %s" % RELEASE_BIN)
    d = kurz.new_data_dir()
    key = kurz.admin_key(d)
    s = kurz.server(["--create-rate-limit", "0"], data_dir=d)
    plain = s.command
    s.command = lambda port: ["fiu-run", "-x", RELEASE_BIN] + plain(port)[1:]
    s.start()
    acked, refused = {}, []
    for i in range(5):
        url = unique_url("fiu-before-%d" % i)
        code = create_outcome(s.port, url)
        assert code, "create before any fault failed"
        acked[code] = url
    before = dict(acked)
    pid = s.proc.pid

    # Every write or every sync of the store fails: creates get 503 (SQLite
    # writes with pwrite64 and syncs with fdatasync), reads keep working.
    for point in ("posix/io/sync/fdatasync", "posix/io/rw/pwrite"):
        fiu_ctrl(pid, "enable name=%s" % point)
        failed = 0
        for i in range(5):
            url = unique_url("fiu-%s-%d" % (point.replace("/", "-"), i))
            code = create_outcome(s.port, url)
            if code:
                acked[code] = url
            else:
                failed += 1
                refused.append(url)
        assert failed == 5, "%s fails: %d of 5 creates got 503" % (point, failed)
        for code, url in before.items():
            assert_redirects(s.port, code, url)
        assert get(s.port, "/health").status == 200
        fiu_ctrl(pid, "disable name=%s" % point)
        for i in range(3):
            url = unique_url("fiu-recovered-%d" % i)
            code = create_outcome(s.port, url)
            assert code, "create failed after %s was disabled" % point
            acked[code] = url

    # Random failures of writes and syncs: every answer is 201 or 503, and
    # no 201 is lost (checked after the restart).
    fiu_ctrl(pid, "enable_random name=posix/io/sync/fdatasync,probability=0.3")
    fiu_ctrl(pid, "enable_random name=posix/io/rw/pwrite,probability=0.1")
    for i in range(40):
        url = unique_url("fiu-random-%d" % i)
        code = create_outcome(s.port, url)
        if code:
            acked[code] = url
        else:
            refused.append(url)
    fiu_ctrl(pid, "disable name=posix/io/sync/fdatasync")
    fiu_ctrl(pid, "disable name=posix/io/rw/pwrite")
    url = unique_url("fiu-final")
    code = create_outcome(s.port, url)
    assert code, "create failed after the faults were disabled"
    acked[code] = url
    check_after_restart(kurz, s, key, acked, refused)


@pytest.mark.skipif(shutil.which("fiu-run") is None, reason="fiu-utils is not installed")
@pytest.mark.skipif(TSAN, reason="runs the release build; once is enough")
@pytest.mark.sqlite_only("the click log and its folds are the SQLite store's")
def test_failed_click_folds_lose_and_double_nothing(kurz):
    """The SQLite click log is folded into the rollup once per
    --click-fold-interval. While every fsync fails, folds fail: the logged
    clicks stay counted once (from memory and the log), and the first fold
    after the fault writes them, once."""
    if not os.access(RELEASE_BIN, os.X_OK):
        pytest.skip("no release build at %s" % RELEASE_BIN)
    s = kurz.server(["--create-rate-limit", "0", "--click-flush-interval", "200ms",
                     "--click-fold-interval", "500ms", "--cleanup-interval", "0"])
    plain = s.command
    s.command = lambda port: ["fiu-run", "-x", RELEASE_BIN] + plain(port)[1:]
    s.start()
    code = create_outcome(s.port, unique_url("fold-fault"))
    assert code
    for _ in range(7):
        assert get(s.port, "/" + code).status == 302

    def clicks():
        return get(s.port, "/api/v1/urls/" + code).json()["totalClicks"]

    def metric(name):
        return metric_sum(metrics(s.port), name)

    deadline = time.time() + 10
    while clicks() != 7:  # flushed: in the log
        assert time.time() < deadline, "clicks not flushed"
        time.sleep(0.1)
    fiu_ctrl(s.proc.pid, "enable name=posix/io/sync/fdatasync")
    errors = metric("kurz_store_errors_total")
    folds = metric("kurz_sqlite_click_folds_total")
    deadline = time.time() + 10
    while metric("kurz_store_errors_total") < errors + 2:  # folds tried and failed
        assert time.time() < deadline, "no fold was tried during the fault"
        time.sleep(0.1)
    assert metric("kurz_sqlite_click_folds_total") == folds
    assert clicks() == 7
    assert get(s.port, "/api/v1/stats/platform").json()["totalClicks"] == 7
    fiu_ctrl(s.proc.pid, "disable name=posix/io/sync/fdatasync")
    deadline = time.time() + 10
    while metric("kurz_sqlite_clicks_unfolded") != 0:
        assert time.time() < deadline, "no fold after the fault"
        time.sleep(0.1)
    assert metric("kurz_sqlite_click_folds_total") > folds
    assert clicks() == 7
    s2 = kurz.restart(s)
    assert get(s2.port, "/api/v1/urls/" + code).json()["totalClicks"] == 7
    assert get(s2.port, "/api/v1/stats/platform").json()["totalClicks"] == 7


# ---- allocation failures -----------------------------------------------------

class AllocFaults:
    """Drives build/faults/kurz (tests/faults/alloc_wrap.c): arm(n) makes the
    nth allocation from now fail; arm(0) disarms. Each returns what the
    previous period counted: (allocations, whether the armed one failed)."""

    def __init__(self, server, ctl):
        self.s = server
        self.ctl = ctl
        self.seq = 0

    def arm(self, n):
        self.seq += 1
        self.ctl.write_text("%d %d\n" % (self.seq, n))
        self.s.proc.send_signal(signal.SIGUSR2)
        pat = re.compile(r"alloc-fault: ack %d counted=(\d+) failed=(\d)" % self.seq)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = pat.search(self.s.stderr())
            if m:
                return int(m.group(1)), m.group(2) == "1"
            assert self.s.running(), "kurz died:\n" + self.s.stderr_tail()
            time.sleep(0.005)
        raise AssertionError("no ack for fault command %d" % self.seq)


def start_fault_server(kurz, tmp_path, data_dir=None):
    if not os.access(FAULT_BIN, os.X_OK):
        pytest.skip("no allocation-fault build at %s (make build/faults/kurz; make test "
                    "builds it)" % FAULT_BIN)
    ctl = tmp_path / "alloc-fault.ctl"
    ctl.write_text("0 0\n")
    # One loop thread and no periodic jobs during the test: the only
    # allocations counted are those of the request under test.
    s = kurz.server(["--create-rate-limit", "0", "--threads", "1",
                     "--click-flush-interval", "1h", "--cleanup-interval", "0"],
                    env={"KURZ_FAULT_CTL": str(ctl)}, data_dir=data_dir)
    plain = s.command
    s.command = lambda port: [FAULT_BIN] + plain(port)[1:]
    s.start()
    return s, AllocFaults(s, ctl)


def assert_failed_cleanly(r, what):
    """An allocation failed: the answer is a JSON error or nothing (the
    connection closed); a 2xx/3xx means the failure was absorbed. (jansson
    reports some of its allocation failures as syntax errors: a create can
    then get 400 INVALID_INPUT; kurz answers 503 where it can tell.)"""
    if r is None:
        return
    if r.status >= 400:
        j = json.loads(r.body)
        assert j.get("success") is False and j.get("errorCode"), (what, r)
    else:
        assert r.status in (201, 302), "%s: allocation failure answered %r" % (what, r)


def run_alloc_path(s, faults, what, make_request, check_success, max_n=400, warm=True):
    """For n = 1, 2, ...: fails the nth allocation of one request, checks the
    answer and that kurz still serves a normal create and redirect. Stops when
    a request no longer reaches its nth allocation. Returns the path's count."""
    for n in range(1, max_n + 1):
        data = make_request(n)
        c = Raw(s.port, timeout=15)
        try:
            if warm:
                c.send(b"GET /health HTTP/1.1\r\nHost: kurz.test\r\n\r\n")
                assert c.read_response().status == 200
            faults.arm(n)
            r = None
            if not warm:
                c.close()
                c = Raw(s.port, timeout=15)
            if c.try_send(data):
                try:
                    r = c.read_response()
                except Exception as e:  # Closed, or reset
                    if "closed" not in str(e) and not isinstance(e, ConnectionError):
                        raise
        finally:
            c.close()
        counted, failed = faults.arm(0)
        assert s.running(), "%s: kurz died at allocation %d\n%s" % (what, n, s.stderr_tail())
        if not failed:
            assert r is not None, "%s: connection closed without a failed allocation" % what
            check_success(n, r)
            return counted
        assert_failed_cleanly(r, "%s, allocation %d" % (what, n))
        if r is not None and r.status < 400:
            check_success(n, r)
        # Still healthy: a normal create and redirect work.
        url = unique_url("healthy")
        code = create_outcome(s.port, url)
        assert code, "%s: a create after failing allocation %d got 503" % (what, n)
        assert_redirects(s.port, code, url)
    raise AssertionError("%s made more than %d allocations" % (what, max_n))


@pytest.mark.skipif(TSAN, reason="uses the ASan allocation-fault build")
def test_alloc_failures_create_and_redirect(kurz, tmp_path):
    # Links for the cold redirects, stored before the fault server starts
    # (its L1 is then empty).
    d = kurz.new_data_dir()
    key = kurz.admin_key(d)
    pre = kurz.start(["--create-rate-limit", "0"], data_dir=d)
    cold = []
    for i in range(40):
        url = unique_url("cold-%d" % i)
        cold.append((create_outcome(pre.port, url), url))
    pre.stop()
    s, faults = start_fault_server(kurz, tmp_path, data_dir=d)
    acked = dict(cold)

    def create_request(n):
        return create_req(unique_url("alloc-%d" % n))

    def create_ok(n, r):
        assert r.status == 201, r
        j = r.json()
        acked[j["shortCode"]] = j["originalUrl"]

    creates = run_alloc_path(s, faults, "create", create_request, create_ok)
    assert creates > 0

    # A create on a new connection: the accept path's allocations too.
    run_alloc_path(s, faults, "create on a new connection", create_request, create_ok,
                   warm=False)

    cold_iter = iter(cold)
    current = {}

    def cold_request(n):
        code, url = next(cold_iter)
        current["link"] = (code, url)
        return b"GET /%s HTTP/1.1\r\nHost: kurz.test\r\n\r\n" % code.encode()

    def redirect_ok(n, r):
        code, url = current["link"]
        assert r.status == 302 and r.headers.get("location") == url, r

    colds = run_alloc_path(s, faults, "cold redirect", cold_request, redirect_ok)
    assert colds > 0

    # An L1 hit makes no allocation at all.
    code, url = cold[-1]
    assert_redirects(s.port, code, url)
    assert_redirects(s.port, code, url)
    with Raw(s.port, timeout=15) as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: kurz.test\r\n\r\n")
        assert c.read_response().status == 200
        faults.arm(1)
        c.send(b"GET /%s HTTP/1.1\r\nHost: kurz.test\r\n\r\n" % code.encode())
        r = c.read_response()
        counted, failed = faults.arm(0)
    assert r.status == 302 and r.headers.get("location") == url, r
    assert counted == 0 and not failed, "an L1-hit redirect made %d allocations" % counted

    # Clean exit (LeakSanitizer finds nothing), then every acknowledged link
    # is stored and redirects.
    s.stop()
    s2 = kurz.start(["--create-rate-limit", "0"], data_dir=d)
    stored = link_urls(s2.port, key)
    for c2, u in acked.items():
        assert stored.get(c2) == u, "acknowledged %s -> %s is not stored" % (c2, u)
    for c2, u in list(acked.items())[-20:]:
        assert_redirects(s2.port, c2, u)
