"""The plan's topology end to end (scripts/fleet): PostgreSQL primary + 2
replicas, a 6-node Redis Cluster, 2 create + 3 lookup + 1 stats kurz
processes behind nginx, and Prometheus. Create, redirect, stats and delete
through the gateway; every service's health; a lookup process killed under
load costs the client nothing and rejoins when restarted; Prometheus scrapes
every process. The fleet runs the release build (KURZ_FLEET_BIN, default
build/kurz) and is stopped at the end even on failure."""

import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

import pgcluster
from kurztest import REPO, metric_sum, parse_metrics, unique_url

FLEET = str(REPO / "scripts" / "fleet")
FLEET_BIN = os.environ.get("KURZ_FLEET_BIN") or str(REPO / "build" / "kurz")

pytestmark = pytest.mark.skipif(
    not (pgcluster.available() and shutil.which("redis-server") and os.access(FLEET_BIN, os.X_OK)),
    reason="needs PostgreSQL 15, redis-server and %s (scripts/install-deps; make)" % FLEET_BIN)


class Fleet:
    def __init__(self):
        # Under /tmp itself: PostgreSQL runs as the postgres user.
        self.dir = Path(tempfile.mkdtemp(prefix="kurz-fleet-", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.base = random.randrange(21000, 31000, 500)
        self.env = dict(os.environ, KURZ_BIN=FLEET_BIN)
        self.vars = {}

    def run(self, *args, check=True, timeout=240):
        r = subprocess.run([FLEET] + list(args) + ["--dir", str(self.dir)], capture_output=True,
                           text=True, timeout=timeout, env=self.env)
        if check:
            assert r.returncode == 0, "fleet %s: %d\n%s\n%s" % (args, r.returncode, r.stdout,
                                                               r.stderr)
        return r

    def up(self):
        r = self.run("up", "--base-port", str(self.base))
        for line in r.stdout.splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                self.vars[k] = v
        self.gw_port = int(self.vars["GATEWAY"].rsplit(":", 1)[1])
        self.prom = self.vars["PROMETHEUS"]
        return self

    def port(self, name):
        role, n = name.rsplit("-", 1)
        return self.base + {"create": 300, "lookup": 310, "stats": 320}[role] + int(n)

    def pid(self, name):
        return int((self.dir / "kurz" / (name + ".pid")).read_text())

    def kurz_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("KURZ_")}
        for line in (self.dir / "kurz" / "env").read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
        return env

    def down(self):
        self.run("down", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def fleet():
    f = Fleet()
    try:
        f.up()
        yield f
    finally:
        f.down()


def gw(fleet, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", fleet.gw_port, timeout=15)
    try:
        h = dict(headers or {})
        if body is not None:
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
    finally:
        c.close()


def served(port, route):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        samples = parse_metrics(r.read().decode())[0]
    return metric_sum(samples, "kurz_http_requests_total", route=route)


def wait_for(fn, timeout):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.2)


def test_end_to_end_through_gateway(fleet):
    url = unique_url("fleet")
    st, _, body = gw(fleet, "POST", "/api/v1/create/shorten", {"originalUrl": url})
    assert st == 201, body
    j = json.loads(body)
    code = j["shortCode"]
    assert j["shortUrl"] == fleet.vars["GATEWAY"] + "/" + code
    for _ in range(5):
        st, h, _ = gw(fleet, "GET", "/" + code)
        assert st == 302 and h["location"] == url
    st, _, body = gw(fleet, "GET", "/api/v1/urls/" + code)
    assert st == 200 and json.loads(body)["originalUrl"] == url
    # Clicks counted by the lookup processes reach the stats service.
    def clicks():
        s, _, b = gw(fleet, "GET", "/api/v1/stats/url/" + code)
        return s == 200 and json.loads(b)["totalClicks"] == 5
    assert wait_for(clicks, 15)
    st, _, body = gw(fleet, "GET", "/api/v1/stats/platform")
    p = json.loads(body)
    assert st == 200 and p["totalUrls"] >= 1 and p["totalClicks"] >= 5
    # Health of every service through the gateway, answered by that role.
    for role in ("create", "lookup", "stats"):
        st, _, body = gw(fleet, "GET", "/health/" + role)
        assert st == 200 and json.loads(body)["role"] == role, body
    st, _, body = gw(fleet, "GET", "/health")
    assert st == 200 and json.loads(body)["status"] == "UP"
    # Delete with an admin key (made on the fleet's PostgreSQL).
    k = subprocess.run([FLEET_BIN, "admin", "create-key", "--name", "fleet"],
                       capture_output=True, text=True, timeout=60, env=fleet.kurz_env())
    assert k.returncode == 0, k.stderr
    key = k.stdout.strip()
    st, _, _ = gw(fleet, "DELETE", "/api/v1/urls/" + code)
    assert st == 401
    st, _, body = gw(fleet, "DELETE", "/api/v1/urls/" + code,
                     headers={"Authorization": "Bearer " + key})
    assert st == 200, body
    # Redis invalidation (a publish) drops it from every lookup process's L1
    # within moments, long before the L1 TTL (30 s) would.
    def gone():
        return all(gw(fleet, "GET", "/" + code)[0] == 404 for _ in range(6))
    assert wait_for(gone, 5), "a lookup process still redirects a deleted code"


def test_kill_lookup_under_load_and_rejoin(fleet):
    codes = []
    for i in range(5):
        st, _, body = gw(fleet, "POST", "/api/v1/create/shorten",
                         {"originalUrl": unique_url("load%d" % i)})
        assert st == 201
        codes.append(json.loads(body)["shortCode"])
    stop = threading.Event()
    results = {"ok": 0, "bad": []}
    lock = threading.Lock()

    def client():
        c = http.client.HTTPConnection("127.0.0.1", fleet.gw_port, timeout=15)
        i = 0
        while not stop.is_set():
            try:
                c.request("GET", "/" + codes[i % len(codes)])
                r = c.getresponse()
                r.read()
                with lock:
                    if r.status == 302:
                        results["ok"] += 1
                    else:
                        results["bad"].append(r.status)
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    results["bad"].append(repr(e))
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", fleet.gw_port, timeout=15)
            i += 1
        c.close()

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        os.kill(fleet.pid("lookup-2"), signal.SIGKILL)  # a crash, not a clean stop
        time.sleep(3.0)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert results["ok"] > 100, results["ok"]
    assert results["bad"] == [], "failed requests at the client: %r" % results["bad"][:10]

    # Restarted the way the fleet started it, it gets traffic again once
    # nginx's fail_timeout (30 s) has passed.
    r = fleet.run("restart", "lookup-2")
    assert "listening" in r.stdout
    port = fleet.port("lookup-2")
    before = served(port, "redirect")

    def gets_traffic():
        for _ in range(30):
            gw(fleet, "GET", "/" + codes[0])
        return served(port, "redirect") > before
    assert wait_for(gets_traffic, 50), "lookup-2 got no traffic after its restart"


def test_prometheus_scrapes_every_process(fleet):
    names = ["create-1", "create-2", "lookup-1", "lookup-2", "lookup-3", "stats-1"]
    want = {"127.0.0.1:%d" % fleet.port(n) for n in names}

    def all_up():
        with urllib.request.urlopen(fleet.prom + "/api/v1/query?query=up", timeout=5) as r:
            res = json.load(r)["data"]["result"]
        up = {x["metric"]["instance"] for x in res
              if x["metric"].get("job") == "kurz" and x["value"][1] == "1"}
        return want <= up
    assert wait_for(all_up, 30), "not every kurz process is scraped and up"
    # The alert rules were loaded from deploy/prometheus/alerts.yml.
    with urllib.request.urlopen(fleet.prom + "/api/v1/rules", timeout=5) as r:
        rules = {x["name"] for g in json.load(r)["data"]["groups"] for x in g["rules"]}
    assert {"KurzHighLatencyP95", "KurzHighErrorRate", "KurzLowCacheHitRate",
            "KurzDatabasePoolSaturated", "KurzHighCpu"} <= rules


def test_status_lists_every_component(fleet):
    out = fleet.run("status").stdout
    for n in ("create-1", "create-2", "lookup-1", "lookup-2", "lookup-3", "stats-1"):
        line = [l for l in out.splitlines() if l.startswith(n + " ")]
        assert line and '"status":"UP"' in line[0], out
    assert "gateway    pid" in out and "prometheus pid" in out
