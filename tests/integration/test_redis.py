"""kurz with Redis (started here by scripts/redis-cluster): the shared L2 cache
on a standalone server and on a 6-node Redis Cluster, a hung (SIGSTOPped)
Redis, single flight, two kurz processes on one PostgreSQL store sharing
Redis (fleet-wide invalidation and create limit, local fallback), and a
master killed under redirect load."""

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

import pgcluster
from kurztest import (KURZ_BIN, REPO, auth, child_env, create, create_ok, get, metric_sum,
                      metrics, request, unique_url)

SCRIPT = str(REPO / "scripts" / "redis-cluster")
pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server not installed (scripts/install-deps)")

# L1 off: every redirect is a miss that L2 or the store must answer.
NO_L1 = ["--l1-size", "0", "--create-rate-limit", "0"]


def _ports_free(ports):
    for p in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            return False
        finally:
            s.close()
    return True


class Redis:
    """Nodes made by scripts/redis-cluster in a fresh directory."""

    def __init__(self, standalone):
        self.standalone = standalone
        self.dir = Path(tempfile.mkdtemp(prefix="kurz-redis-"))
        self.env = {}
        for _ in range(50):
            self.base = random.randrange(20000, 31000, 200)
            n = 1 if standalone else 6
            if _ports_free([self.base + i for i in range(n)] +
                           [self.base + 100 + i for i in range(n)]):
                break

    def run(self, *args, check=True):
        cmd = [SCRIPT] + list(args) + ["--dir", str(self.dir), "--port", str(self.base)]
        if self.standalone:
            cmd.append("--standalone")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check:
            assert r.returncode == 0, "redis-cluster %s: %s %s" % (args, r.stdout, r.stderr)
        return r

    def up(self):
        for line in self.run("up").stdout.splitlines():
            if line.startswith("KURZ_REDIS") and "=" in line:
                k, v = line.split("=", 1)
                self.env[k] = v
        return self

    def down(self):
        self.run("down", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def args(self):
        if self.standalone:
            return ["--redis", self.env["KURZ_REDIS"]]
        return ["--redis-cluster", self.env["KURZ_REDIS_CLUSTER"]]

    def pid(self, port):
        return int((self.dir / str(port) / "redis.pid").read_text().strip())

    def cli(self, port, *args):
        r = subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True,
                           text=True, timeout=10)
        return r.stdout


@pytest.fixture(scope="module")
def standalone():
    r = Redis(True)
    try:
        yield r.up()
    finally:
        r.down()


@pytest.fixture(scope="module")
def cluster():
    r = Redis(False)
    try:
        yield r.up()
    finally:
        r.down()


def m(port, name, **match):
    return metric_sum(metrics(port), name, **match)


def wait_for(fn, timeout=5.0, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def served_from_l2(s):
    """Creates a link, then shows every redirect of it comes from L2."""
    url = unique_url("l2")
    fills = m(s.port, "kurz_l2_fills_total", result="ok")
    code = create_ok(s.port, url)["shortCode"]
    # The create's write-through lands in the background.
    assert wait_for(lambda: m(s.port, "kurz_l2_fills_total", result="ok") > fills)
    reads0, hits0 = m(s.port, "kurz_store_reads_total"), m(s.port, "kurz_l2_hits_total")
    for _ in range(20):
        r = get(s.port, "/" + code)
        assert r.status == 302 and r.headers["location"] == url
    assert m(s.port, "kurz_store_reads_total") == reads0, "L2 should have answered"
    assert m(s.port, "kurz_l2_hits_total") >= hits0 + 20
    return code, url


def test_standalone_l2_serves_redirects(standalone, kurz):
    s = kurz.start(standalone.args() + NO_L1)
    served_from_l2(s)
    # A code unknown to both tiers is still a 404 from the store.
    assert get(s.port, "/nOsUcH1").status == 404
    assert m(s.port, "kurz_redis_breaker_state") == 0


def test_cluster_l2_serves_redirects(cluster, kurz):
    s = kurz.start(cluster.args() + NO_L1)
    codes = [served_from_l2(s)[0] for _ in range(5)]
    body = get(s.port, "/metrics").body.decode()
    assert 'kurz_redis_breaker_state{node="127.0.0.1:%d"} 0' % cluster.base in body
    # Keys land on several masters: the client routed by slot.
    hosts = {cluster.cli(cluster.base, "cluster", "keyslot", "kurz:u:{%s}" % c) for c in codes}
    assert len(hosts) >= 1
    assert m(s.port, "kurz_l2_errors_total") == 0


def test_cluster_moved_is_followed(cluster, kurz):
    """A client seeded with one node and a stale map still finds every key:
    MOVED replies are followed and counted."""
    seed = "127.0.0.1:%d" % cluster.base
    s = kurz.start(["--redis-cluster", seed] + NO_L1)
    for _ in range(10):
        served_from_l2(s)
    # Ask a replica directly (it answers MOVED for every key).
    replica = [p for p in range(cluster.base, cluster.base + 6)
               if "slave" in cluster.cli(p, "role").splitlines()[0]][0]
    t = kurz.start(["--redis-cluster", "127.0.0.1:%d" % replica] + NO_L1)
    served_from_l2(t)
    assert m(t.port, "kurz_l2_errors_total") == 0


def test_sigstop_redis_single_flight_and_bounded_latency(kurz):
    r = Redis(True).up()
    try:
        s = kurz.start(r.args() + NO_L1 + ["--redis-timeout", "300ms"])
        url = unique_url("stop")
        code = create_ok(s.port, url)["shortCode"]
        assert wait_for(lambda: m(s.port, "kurz_l2_fills_total", result="ok") >= 1)
        os.kill(r.pid(r.base), signal.SIGSTOP)
        try:
            # 100 concurrent first requests while Redis hangs: the leader's
            # L2 read waits up to the timeout, the others join its flight.
            reads0 = m(s.port, "kurz_store_reads_total")
            socks = [socket.create_connection(("127.0.0.1", s.port), timeout=20)
                     for _ in range(100)]
            req = ("GET /%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % code).encode()
            for c in socks:
                c.sendall(req)
            for c in socks:
                data = b""
                while True:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                c.close()
                assert data.startswith(b"HTTP/1.1 302"), data[:200]
            reads = m(s.port, "kurz_store_reads_total") - reads0
            assert reads <= 10, "single flight: %d store reads for 100 misses" % reads
            assert m(s.port, "kurz_singleflight_coalesced_total") >= 50
            # Redirects keep being served while Redis stays stopped: the
            # breaker fails fast, the store answers.
            lat = []
            for _ in range(100):
                t0 = time.monotonic()
                rr = get(s.port, "/" + code)
                lat.append(time.monotonic() - t0)
                assert rr.status == 302
            lat.sort()
            assert lat[98] < 0.35, "p99 %.3f s with Redis stopped" % lat[98]
            assert m(s.port, "kurz_redis_breaker_state") in (1, 2)
        finally:
            os.kill(r.pid(r.base), signal.SIGCONT)
        # Back: the breaker's probe closes it and L2 answers again.
        assert wait_for(lambda: (get(s.port, "/" + code).status == 302 and
                                 m(s.port, "kurz_redis_breaker_state") == 0), timeout=10)
    finally:
        r.down()


# --- two processes on one PostgreSQL store ----------------------------------


@pytest.fixture(scope="module")
def pg():
    if not pgcluster.available():
        pytest.skip("PostgreSQL 15 not installed")
    c = pgcluster.Cluster(shards=1)
    try:
        c.up()
        yield c
    finally:
        c.down()


def tool(args, env):
    r = subprocess.run([KURZ_BIN] + args, capture_output=True, text=True, timeout=60,
                       env=child_env(env))
    assert r.returncode == 0, "kurz %s: %s %s" % (args, r.stdout, r.stderr)
    return r.stdout.strip()


def test_two_processes_invalidation_and_fleet_limit(pg, standalone, kurz):
    env = {"KURZ_DATABASE": pg.env["KURZ_DATABASE"]}
    tool(["migrate"], env)
    key = tool(["admin", "create-key", "--name", "redis"], env)
    common = ["--database", pg.env["KURZ_DATABASE"]] + standalone.args()
    a = kurz.start(common + ["--create-rate-limit", "0"])
    b = kurz.start(common + ["--create-rate-limit", "0"])
    assert wait_for(lambda: m(a.port, "kurz_redis_subscribed") == 1 and
                    m(b.port, "kurz_redis_subscribed") == 1)

    # L1 on (default 30 s): B caches the link, A deletes it, B must stop
    # redirecting within 1 s (pub/sub invalidation), not after its L1 TTL.
    for _ in range(3):
        url = unique_url("inv")
        code = create_ok(a.port, url)["shortCode"]
        for _ in range(3):
            r = get(b.port, "/" + code)
            assert r.status == 302 and r.headers["location"] == url
        assert m(b.port, "kurz_l1_hits_total") >= 1
        r = request(a.port, "DELETE", "/api/v1/urls/" + code, headers=auth(key))
        assert r.status == 200, r
        assert get(a.port, "/" + code).status == 404
        t0 = time.monotonic()
        while get(b.port, "/" + code).status != 404:
            assert time.monotonic() - t0 < 1.0, "B still redirects a deleted code after 1 s"
            time.sleep(0.02)
        # And it stays gone: nothing re-cached it in L2 or L1.
        time.sleep(0.2)
        assert get(b.port, "/" + code).status == 404
        assert get(a.port, "/" + code).status == 404
    assert m(b.port, "kurz_l2_invalidations_received_total") >= 3


def test_resubscribed_process_drops_what_it_may_have_missed(pg, kurz):
    """A delete whose invalidation was published while another process's
    subscription was down (Redis restarting) never reaches that process: when
    its subscription returns it drops its whole L1 instead of serving the
    deleted link until its L1 TTL (1 h here)."""
    r = Redis(True).up()
    try:
        env = {"KURZ_DATABASE": pg.env["KURZ_DATABASE"]}
        tool(["migrate"], env)
        key = tool(["admin", "create-key", "--name", "gap"], env)
        common = ["--database", pg.env["KURZ_DATABASE"], "--create-rate-limit", "0",
                  "--l1-ttl", "1h"] + r.args()
        a = kurz.start(common)
        b = kurz.start(common)
        assert wait_for(lambda: m(a.port, "kurz_redis_subscribed") == 1 and
                        m(b.port, "kurz_redis_subscribed") == 1)
        url = unique_url("gap")
        code = create_ok(a.port, url)["shortCode"]
        for _ in range(2):
            r2 = get(b.port, "/" + code)
            assert r2.status == 302 and r2.headers["location"] == url
        r.run("down")
        assert wait_for(lambda: m(b.port, "kurz_redis_subscribed") == 0, timeout=10)
        res = request(a.port, "DELETE", "/api/v1/urls/" + code, headers=auth(key))
        assert res.status == 200, res
        a.kill()  # its queued invalidation dies with it: nobody ever publishes it
        r.up()
        assert wait_for(lambda: m(b.port, "kurz_redis_subscribed") == 1, timeout=15)
        t0 = time.monotonic()
        while get(b.port, "/" + code).status != 404:
            assert time.monotonic() - t0 < 1.0, "B serves a deleted link after resubscribing"
            time.sleep(0.02)
    finally:
        r.down()


def test_fleet_wide_create_limit_and_local_fallback(pg, kurz):
    r = Redis(True).up()
    try:
        env = {"KURZ_DATABASE": pg.env["KURZ_DATABASE"]}
        tool(["migrate"], env)
        common = ["--database", pg.env["KURZ_DATABASE"], "--create-rate-limit", "10"] + r.args()
        a = kurz.start(common)
        b = kurz.start(common)
        ok = 0
        for i in range(30):
            s = a if i % 2 == 0 else b
            res = create(s.port, unique_url("rl"))
            assert res.status in (201, 429), res
            if res.status == 429:
                assert int(res.headers["retry-after"]) >= 1
                assert res.json()["errorCode"] == "RATE_LIMITED"
            ok += res.status == 201
        assert 8 <= ok <= 10, "fleet-wide limit 10/min: %d creates succeeded" % ok
        # Redis gone: each process falls back to its own limiter (10 more
        # each at most), never to no limit.
        r.run("down")
        ok_a = sum(create(a.port, unique_url("rl2")).status == 201 for _ in range(15))
        assert 1 <= ok_a <= 10, "local fallback allowed %d of 15" % ok_a
        assert m(a.port, "kurz_rate_limit_fallbacks_total") >= 15
    finally:
        r.down()


# --- failover: keep this last, it kills a master of the shared cluster -------


def test_kill_master_under_redirect_load(cluster, kurz):
    s = kurz.start(cluster.args() + NO_L1)
    links = []
    for _ in range(30):
        url = unique_url("fo")
        links.append((create_ok(s.port, url)["shortCode"], url))
    assert wait_for(lambda: m(s.port, "kurz_l2_fills_total", result="ok") >= 30)
    failures, done, count = [], threading.Event(), [0]

    def load():
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        while not done.is_set():
            code, url = random.choice(links)
            try:
                conn.request("GET", "/" + code)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 302 or resp.getheader("Location") != url:
                    failures.append(resp.status)
            except Exception as e:  # noqa: BLE001
                failures.append(repr(e))
                conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
            count[0] += 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        masters = [p for p in range(cluster.base, cluster.base + 6)
                   if cluster.cli(p, "role").startswith("master")]
        victim = masters[0]
        os.kill(cluster.pid(victim), signal.SIGKILL)
        # The replica is promoted in ~2-3 s; the client must follow it.
        time.sleep(6.0)
        hits0 = m(s.port, "kurz_l2_hits_total")
        errs0 = m(s.port, "kurz_l2_errors_total")
        time.sleep(1.5)
        hits1 = m(s.port, "kurz_l2_hits_total")
        errs1 = m(s.port, "kurz_l2_errors_total")
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not failures, "failed redirects during failover: %s" % failures[:10]
    assert count[0] > 100
    assert hits1 - hits0 > 50, "L2 did not serve again after the failover"
    assert errs1 - errs0 <= 5, "still failing after the failover: %d\n%s" % (
        errs1 - errs0, "\n".join(l for l in get(s.port, "/metrics").body.decode().splitlines()
                                 if l.startswith("kurz_redis")))
    assert m(s.port, "kurz_redis_slot_refreshes_total", result="ok") >= 2
