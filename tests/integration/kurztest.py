"""kurztest - helpers for the black-box suite: starting and stopping the real
kurz binary on a free loopback port, exact HTTP over raw sockets, small JSON
API clients and a strict Prometheus text parser. Standard library only."""

import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KURZ_BIN = os.environ.get("KURZ_BIN") or str(REPO / "build" / "test" / "kurz")

TIMEOUT = 30.0  # seconds for any single exchange (ASan build, shared 2-core box)
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

CODE_RE = re.compile(r"^[0-9a-zA-Z]{7}$")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer")
TSAN = os.environ.get("KURZ_TSAN") == "1"  # KURZ_BIN is the ThreadSanitizer build
CREATE = "/api/v1/create/shorten"


def free_port():
    """A port in 20000-30000 (below the busy ephemeral range) that is free now."""
    for _ in range(500):
        port = random.randint(20000, 30000)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        return port
    raise RuntimeError("no free port in 20000-30000")


def child_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KURZ_")}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    if extra:
        env.update(extra)
    return env


# ---- the store and cache backend of the suite (KURZ_TEST_BACKEND) -----------

TEST_BACKEND = os.environ.get("KURZ_TEST_BACKEND", "sqlite")
BACKENDS = ("sqlite", "pg", "redis", "redis-cluster")
BACKEND = None  # the session's Backend, set by conftest.py; None: SQLite


class Backend:
    """What every kurz server of the suite runs on besides its data dir: in
    `pg` mode a fresh PostgreSQL database per data dir (on a session-wide
    primary with 2 streaming replicas, which follow CREATE DATABASE by
    themselves); in `redis` and `redis-cluster` mode also a session-wide Redis
    (standalone or 6 nodes), flushed whenever a server starts so tests do not
    see each other's cache entries and rate counters (the cache is lossy by
    design, and kurz has no key prefix option)."""

    def __init__(self, mode, pg, redis=None):
        self.mode = mode
        self.pg = pg            # pgcluster.Cluster, up
        self.redis = redis      # test_redis-style object with .env and .standalone
        self.dbs = {}           # resolved data dir -> (database name, owner)
        self.n = 0

    def _db_url(self, url, name):
        return url.rsplit("/", 1)[0] + "/" + name

    def _admin(self, sql):
        import psycopg2
        c = psycopg2.connect(host=str(self.pg.dir / "sock"), port=self.pg.port(0, "primary"),
                             user="postgres", dbname="postgres", connect_timeout=10)
        c.autocommit = True
        try:
            with c.cursor() as cur:
                cur.execute(sql)
        finally:
            c.close()

    def database(self, data_dir, owner=None):
        """The database of data_dir, created on first use (owned by owner,
        the factory that drops it at its close)."""
        k = str(Path(data_dir).resolve())
        if k not in self.dbs:
            self.n += 1
            name = "kurz_t%d" % self.n
            self._admin("CREATE DATABASE %s OWNER kurz" % name)
            self.dbs[k] = (name, owner)
        return self.dbs[k][0]

    def release(self, owner):
        """Drops the databases that owner made (its servers have stopped)."""
        for k, (name, o) in list(self.dbs.items()):
            if o is owner:
                del self.dbs[k]
                try:
                    self._admin("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
                except Exception:
                    pass  # the cluster goes away at session end anyway

    def tool_args(self, data_dir, owner=None):
        """Options of `kurz migrate|admin` for the store of data_dir."""
        return ["--database", self._db_url(self.pg.env["KURZ_DATABASE"],
                                           self.database(data_dir, owner))]

    def serve_args(self, args, env, data_dir, owner=None):
        """Options added to a `kurz serve` with these args and env on
        data_dir: none where the test chose its own store or cache."""
        have = set(a.split("=", 1)[0] for a in args if a.startswith("--"))
        have |= {"--" + k[5:].lower().replace("_", "-")
                 for k in (env or {}) if k.startswith("KURZ_")}
        out = []
        if not have & {"--database", "--shards"}:
            name = self.database(data_dir, owner)
            out += ["--database", self._db_url(self.pg.env["KURZ_DATABASE"], name),
                    "--replicas", ",".join(self._db_url(u, name) for u in
                                           self.pg.env["KURZ_REPLICAS"].split(","))]
        if self.redis is not None and not have & {"--redis", "--redis-cluster"}:
            if self.redis.standalone:
                out += ["--redis", self.redis.env["KURZ_REDIS"]]
            else:
                out += ["--redis-cluster", self.redis.env["KURZ_REDIS_CLUSTER"]]
        return out

    def flush(self):
        """FLUSHALL on every Redis master (replicas refuse it; harmless)."""
        if self.redis is None:
            return
        n = 1 if self.redis.standalone else 6
        for port in range(self.redis.base, self.redis.base + n):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
                    s.recv(256)
            except OSError:
                pass


def sanitizer_lines(text):
    return [l for l in text.splitlines() if any(m in l for m in SANITIZER_MARKERS)]


class Server:
    """One kurz serve process. Its stdout/stderr go to files in workdir."""

    _seq = 0

    def __init__(self, workdir, data_dir, args=(), env=None, defaults=True):
        self.workdir = Path(workdir)
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.env = dict(env or {})
        self.defaults = defaults
        self.proc = None
        self.port = None
        self.expected_exit = False
        self.launches = 0
        self.with_backend = True
        self.owner = None  # the ServerFactory, which drops the backend's databases
        Server._seq += 1
        self.name = "kurz%d" % Server._seq

    # ---- lifecycle -------------------------------------------------------
    def command(self, port):
        cmd = [KURZ_BIN, "serve"]
        if self.defaults:
            cmd += ["--listen", "127.0.0.1:%d" % port, "--data-dir", str(self.data_dir),
                    "--threads", "2"]
        return cmd + self.args + self.backend_args

    @property
    def backend_args(self):
        """The KURZ_TEST_BACKEND options for this server (its data dir's
        database, Redis); none for a server that must fail to start."""
        if BACKEND is None or not self.with_backend:
            return []
        d = self.data_dir
        if not self.defaults:
            a = self.args
            d = next((a[i + 1] for i in range(len(a) - 1) if a[i] == "--data-dir"),
                     self.env.get("KURZ_DATA_DIR"))
            if d is None:
                return []
        return BACKEND.serve_args(self.args, self.env, d, self.owner)

    def start(self, port=None):
        for _ in range(4):
            p = port or free_port()
            self.launches += 1
            self.out_path = self.workdir / ("%s-%d.stdout" % (self.name, self.launches))
            self.err_path = self.workdir / ("%s-%d.stderr" % (self.name, self.launches))
            if BACKEND is not None and self.with_backend:
                BACKEND.flush()
            with open(self.out_path, "wb") as o, open(self.err_path, "wb") as e:
                self.proc = subprocess.Popen(self.command(p), stdout=o, stderr=e,
                                             stdin=subprocess.DEVNULL,
                                             env=child_env(self.env))
            got = self._wait_listening()
            if got:
                self.port = got
                return self
            err = self.stderr()
            if port is None and self.defaults and "in use" in err.lower():
                continue  # lost a race for the port: try another one
            raise AssertionError("%s did not start (exit %s)\ncmd: %s\nstdout:\n%s\nstderr:\n%s" % (
                self.name, self.proc.returncode, " ".join(self.command(p)), self.stdout(), err))
        raise AssertionError("could not find a port to start on")

    def _wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            m = re.search(r"listening on http://(\S+):(\d+)", self.stdout())
            if m:
                return int(m.group(2))
            if self.proc.poll() is not None:
                time.sleep(0.1)
                m = re.search(r"listening on http://(\S+):(\d+)", self.stdout())
                return int(m.group(2)) if m and self.proc.poll() is None else None
            time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        return None

    def revive(self):
        """If the process died on its own, records that and starts a new one on
        the same data dir, so one crash does not fail every later test of a
        module that shares this server."""
        if self.proc is None or self.running() or self.expected_exit:
            return None
        msg = "%s died unexpectedly with exit %s\nstderr:\n%s" % (
            self.name, self.proc.returncode, self.stderr_tail())
        self.start()
        return msg

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        """Sends sig, expects exit code 0 within 10 s and clean sanitizers."""
        self.expected_exit = True
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("%s did not exit within %ds of %s\nstderr:\n%s" % (
                self.name, STOP_TIMEOUT, sig.name, self.stderr_tail()))
        assert rc == 0, "%s exited %d after %s\nstderr:\n%s" % (
            self.name, rc, sig.name, self.stderr_tail())
        self.assert_clean()

    def kill(self):
        self.expected_exit = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(STOP_TIMEOUT)

    # ---- output ----------------------------------------------------------
    def stdout(self):
        try:
            return self.out_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stderr(self):
        try:
            return self.err_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stderr_tail(self, n=6000):
        """The interesting part of stderr: a sanitizer report's first stack,
        else the last n characters; with the path of the whole file."""
        e = self.stderr()
        lines = e.splitlines()
        for i, l in enumerate(lines):
            if any(m in l for m in SANITIZER_MARKERS):
                keep = []
                for l2 in lines[i:i + 40]:
                    if keep and not l2.strip():
                        break
                    keep.append(l2)
                keep += [l2 for l2 in lines if l2.startswith("SUMMARY:")]
                return "\n".join(keep) + "\n(full stderr: %s)" % self.err_path
        e = e if len(e) <= n else "...\n" + e[-n:]
        return e + "\n(full stderr: %s)" % self.err_path

    def assert_clean(self):
        bad = sanitizer_lines(self.stderr())
        assert not bad, "%s: sanitizer reports:\n%s\nstderr:\n%s" % (
            self.name, "\n".join(bad), self.stderr_tail())

    # ---- convenience -----------------------------------------------------
    @property
    def origin(self):
        return "http://127.0.0.1:%d" % self.port


class ServerFactory:
    """Starts servers for a test (or module) and checks them all at teardown:
    still running ones must stop cleanly on SIGTERM; any one that died without
    the test expecting it is a failure; no sanitizer reports anywhere."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.servers = []
        self.n = 0

    def new_data_dir(self):
        self.n += 1
        d = self.workdir / ("data%d" % self.n)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def server(self, args=(), env=None, data_dir=None, defaults=True):
        """A not yet started Server (for tests that start it themselves)."""
        s = Server(self.workdir, data_dir or self.new_data_dir(), args, env, defaults)
        s.owner = self
        self.servers.append(s)
        return s

    def start(self, args=(), env=None, data_dir=None, defaults=True):
        return self.server(args, env, data_dir, defaults).start()

    def restart(self, old):
        """Stops old (if running) and starts a new process on its data dir."""
        if old.running():
            old.stop()
        s = Server(self.workdir, old.data_dir, old.args, old.env, old.defaults)
        s.owner = self
        self.servers.append(s)
        return s.start()

    def run_expect_exit(self, args, env=None, timeout=START_TIMEOUT):
        """Runs a kurz serve that must fail to start. Returns (rc, out, err)."""
        s = self.server(args=args, env=env, defaults=False)
        s.expected_exit = True
        s.with_backend = False
        s.out_path = self.workdir / (s.name + ".stdout")
        s.err_path = self.workdir / (s.name + ".stderr")
        with open(s.out_path, "wb") as o, open(s.err_path, "wb") as e:
            s.proc = subprocess.Popen(s.command(0), stdout=o, stderr=e,
                                      stdin=subprocess.DEVNULL, env=child_env(env))
        try:
            rc = s.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait()
            raise AssertionError("kurz %s kept running (stdout: %r)" % (
                " ".join(args), s.stdout()[-2000:]))
        return rc, s.stdout(), s.stderr()

    def admin_key(self, data_dir, name=None):
        cmd = [KURZ_BIN, "admin", "create-key", "--data-dir", str(data_dir)]
        if name:
            cmd[3:3] = ["--name", name]
        if BACKEND is not None:
            cmd += BACKEND.tool_args(data_dir, self)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=child_env())
        assert r.returncode == 0, "admin create-key exited %d: %s %s" % (
            r.returncode, r.stdout, r.stderr)
        assert not sanitizer_lines(r.stderr), r.stderr
        lines = [l.strip() for l in r.stdout.splitlines() if l.strip()]
        assert len(lines) == 1, "create-key must print one line, got %r" % r.stdout
        assert len(lines[0]) >= 16 and " " not in lines[0], "implausible key %r" % lines[0]
        return lines[0]

    def revive_all(self):
        """Restarts crashed shared servers; returns their crash reports."""
        return [m for m in (s.revive() for s in self.servers) if m]

    def close(self):
        problems = []
        for s in self.servers:
            if s.proc is None:
                continue
            if s.running():
                try:
                    s.stop()
                except AssertionError as e:
                    problems.append(str(e))
                continue
            if not s.expected_exit:
                problems.append("%s died unexpectedly with exit %s\nstderr:\n%s" % (
                    s.name, s.proc.returncode, s.stderr_tail()))
                continue
            bad = sanitizer_lines(s.stderr())
            if bad:
                problems.append("%s: sanitizer reports:\n%s\nstderr:\n%s" % (
                    s.name, "\n".join(bad), s.stderr_tail()))
        if BACKEND is not None:
            BACKEND.release(self)
        if problems:
            raise AssertionError("\n\n".join(problems))


# ---- HTTP over http.client ------------------------------------------------

class Resp:
    def __init__(self, status, header_list, body, reason=""):
        self.status = status
        self.reason = reason
        self.header_list = header_list  # [(name, value)] as received
        self.body = body
        self.headers = {}
        for k, v in header_list:
            k = k.lower()
            self.headers[k] = self.headers[k] + ", " + v if k in self.headers else v

    def header_count(self, name):
        return sum(1 for k, _ in self.header_list if k.lower() == name.lower())

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError("body is not JSON (status %d): %r" % (self.status, self.body[:500]))

    def __repr__(self):
        return "<Resp %d %r %r>" % (self.status, self.header_list, self.body[:300])


def request(port, method, path, body=None, headers=None, timeout=TIMEOUT, conn=None):
    """One request; a new connection unless conn (an HTTPConnection) is given."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    if body is not None and not any(k.lower() == "content-type" for k in h):
        h["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        resp = Resp(r.status, r.getheaders(), data, r.reason)
    finally:
        if own:
            conn.close()
    assert resp.header_count("content-length") == 1, \
        "every response needs exactly one Content-Length: %r" % resp
    return resp


def create(port, url=None, conn=None, headers=None, **fields):
    body = dict(fields)
    if url is not None:
        body["originalUrl"] = url
    return request(port, "POST", CREATE, body, headers=headers, conn=conn)


def create_ok(port, url, conn=None, **fields):
    r = create(port, url, conn=conn, **fields)
    assert r.status == 201, "create %r: %r" % (url, r)
    return r.json()


def get(port, path, conn=None, headers=None):
    return request(port, "GET", path, headers=headers, conn=conn)


def auth(key):
    return {"Authorization": "Bearer " + key}


def assert_error(r, status, code):
    """An error response: the status and the common JSON error body."""
    assert r.status == status, "expected %d %s, got %r" % (status, code, r)
    ct = r.headers.get("content-type", "")
    assert "json" in ct, "error body must be JSON, Content-Type %r" % ct
    j = r.json()
    assert j.get("success") is False, j
    assert isinstance(j.get("message"), str) and j["message"], j
    assert j.get("errorCode") == code, "expected errorCode %s: %r" % (code, j)
    return j


def list_codes(port, key):
    """Every code the admin list returns, following ?after= pages."""
    codes = []
    after = None
    for _ in range(1000):
        path = "/api/v1/urls?limit=100" + ("&after=" + after if after else "")
        r = get(port, path, headers=auth(key))
        assert r.status == 200, r
        items = _find_list(r.json())
        if not items:
            return codes
        page = [it.get("shortCode") or it.get("code") for it in items]
        assert all(page), "list items need shortCode: %r" % items[:3]
        codes += page
        after = page[-1]
    raise AssertionError("list never ended")


def _find_list(j):
    if isinstance(j, list):
        return j
    for k in ("links", "urls", "items", "data", "results"):
        if isinstance(j.get(k), list):
            return j[k]
    for v in j.values():
        if isinstance(v, list):
            return v
    raise AssertionError("no list in %r" % j)


def parse_time(s):
    """RFC 3339 -> aware datetime."""
    assert isinstance(s, str), "timestamp must be a string: %r" % (s,)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", s), \
        "not RFC 3339: %r" % s
    d = datetime.fromisoformat(s.replace("Z", "+00:00"))
    return d


def rfc3339(ts):
    return datetime.fromtimestamp(int(ts), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- raw sockets -----------------------------------------------------------

class Closed(Exception):
    pass


class Raw:
    """A raw TCP connection that parses responses strictly by Content-Length."""

    def __init__(self, port, timeout=TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def try_send(self, data):
        """Sends; False when the peer already closed (EPIPE/ECONNRESET)."""
        try:
            self.send(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self, deadline):
        if self.eof:
            raise Closed("connection closed")
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            raise Closed("connection closed")
        self.buf += d

    def read_response(self, head=False, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n\r\n" not in self.buf:
            try:
                self._fill(deadline)
            except Closed:
                raise Closed("closed before a complete response; got %r" % self.buf[:300])
        end = self.buf.index(b"\r\n\r\n")
        head_bytes, rest = self.buf[:end], self.buf[end + 4:]
        lines = head_bytes.decode("latin-1").split("\r\n")
        m = re.match(r"^HTTP/1\.[01] (\d{3}) ?(.*)$", lines[0])
        assert m, "bad status line %r" % lines[0]
        status = int(m.group(1))
        hl = []
        for l in lines[1:]:
            assert ":" in l and not l[0].isspace(), "bad header line %r" % l
            k, v = l.split(":", 1)
            hl.append((k, v.strip()))
        cls = [v for k, v in hl if k.lower() == "content-length"]
        assert len(cls) == 1, "need exactly one Content-Length: %r" % lines
        assert not any(k.lower() == "transfer-encoding" for k, _ in hl), lines
        n = 0 if head else int(cls[0])
        self.buf = rest
        while len(self.buf) < n:
            try:
                self._fill(deadline)
            except Closed:
                raise Closed("closed in the middle of a body")
        body, self.buf = self.buf[:n], self.buf[n:]
        return Resp(status, hl, body, m.group(2))

    def wait_closed(self, seconds):
        """Reads until EOF/reset. Returns (closed, bytes received meanwhile)."""
        deadline = time.monotonic() + seconds
        got = self.buf
        self.buf = b""
        while True:
            try:
                self._fill(deadline)
            except Closed:
                return True, got + self.buf
            except (socket.timeout, TimeoutError):
                return False, got + self.buf
            got += self.buf
            self.buf = b""

    def quiet_for(self, seconds):
        """True when nothing (not even EOF) arrives within seconds."""
        self.sock.settimeout(seconds)
        try:
            self.sock.recv(65536, socket.MSG_PEEK)
        except (socket.timeout, TimeoutError):
            return True
        except ConnectionResetError:
            return False
        return False  # data or EOF arrived


def req(method, path, headers=None, body=b"", host="kurz.test", version="1.1"):
    """Bytes of one request. Adds Host (unless host is None) and, for a body,
    Content-Length."""
    if isinstance(body, str):
        body = body.encode()
    lines = ["%s %s HTTP/%s" % (method, path, version)]
    if host is not None:
        lines.append("Host: " + host)
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    if body or method in ("POST", "PUT"):
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def create_req(url, **fields):
    fields["originalUrl"] = url
    return req("POST", CREATE, {"Content-Type": "application/json"}, json.dumps(fields))


SENTINEL = req("GET", "/health")


def assert_no_answer_after(conn, seconds=8):
    """After a framing error: a further request on the connection is never
    answered and the connection is closed."""
    if not conn.try_send(SENTINEL):
        return
    closed, extra = conn.wait_closed(seconds)
    assert extra == b"", "a request after the error was answered: %r" % extra[:300]
    assert closed, "connection still open %ds after a framing error" % seconds


# ---- Prometheus text format --------------------------------------------------

_METRIC_LINE = re.compile(
    r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\\n]|\\.)*)"\s*(,|$)')


def parse_metrics(text):
    """Parses the exposition format strictly. Returns (samples, types) where
    samples is [(name, {label: value}, float)] and types {name: type}."""
    samples, types = [], {}
    for line in text.split("\n"):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 2 and parts[1] == "TYPE":
                assert len(parts) == 4 and parts[3] in (
                    "counter", "gauge", "histogram", "summary", "untyped"), line
                types[parts[2]] = parts[3]
            continue
        m = _METRIC_LINE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        name, lab, val = m.groups()
        labels = {}
        if lab:
            pos = 0
            while pos < len(lab):
                lm = _LABEL.match(lab, pos)
                assert lm and lm.end() > pos, "bad labels in %r" % line
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
        try:
            v = float(val)
        except ValueError:
            raise AssertionError("bad value in %r" % line)
        samples.append((name, labels, v))
    return samples, types


def metrics(port):
    r = get(port, "/metrics")
    assert r.status == 200, r
    return parse_metrics(r.body.decode())[0]


def metric_sum(samples, name, **match):
    return sum(v for n, l, v in samples
               if n == name and all(l.get(k) == x for k, x in match.items()))


def unique_url(tag=""):
    return "https://example.com/%s/%d-%d" % (tag or "t", time.time_ns(), random.randrange(1 << 30))
