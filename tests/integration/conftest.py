"""Fixtures of the black-box suite: factories that start the real kurz binary
(KURZ_BIN, default build/test/kurz) on 127.0.0.1 with a free port and a fresh
data directory, and check at teardown that every server stops cleanly.
KURZ_TEST_BACKEND=pg|redis|redis-cluster runs every server on PostgreSQL with
2 replicas (a fresh database per data dir), plus standalone Redis or a 6-node
Redis Cluster; tests marked sqlite_only are skipped then."""

import os
import random
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

import kurztest
from kurztest import BACKENDS, KURZ_BIN, REPO, TEST_BACKEND, ServerFactory


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only(reason): needs the embedded SQLite store "
                                       "(skipped with KURZ_TEST_BACKEND=pg|redis|redis-cluster)")


def pytest_sessionstart(session):
    if not os.access(KURZ_BIN, os.X_OK):
        raise pytest.UsageError("kurz binary not found at %s (set KURZ_BIN)" % KURZ_BIN)
    if TEST_BACKEND not in BACKENDS:
        raise pytest.UsageError("KURZ_TEST_BACKEND must be one of %s" % ", ".join(BACKENDS))


def pytest_runtest_setup(item):
    m = item.get_closest_marker("sqlite_only")
    if m is not None and TEST_BACKEND != "sqlite":
        why = m.args[0] if m.args else m.kwargs.get("reason", "needs the SQLite store")
        pytest.skip("sqlite_only: %s" % why)


class _Redis:
    """A standalone Redis or a 6-node cluster made by scripts/redis-cluster in
    a fresh directory on free ports."""

    def __init__(self, standalone):
        self.standalone = standalone
        self.dir = Path(tempfile.mkdtemp(prefix="kurz-redis-"))
        self.env = {}
        n = 1 if standalone else 6
        for _ in range(50):
            self.base = random.randrange(20000, 31000, 200)
            if all(_port_free(p) for p in list(range(self.base, self.base + n)) +
                   list(range(self.base + 100, self.base + 100 + n))):
                break

    def _run(self, cmd, check=True):
        args = [str(REPO / "scripts" / "redis-cluster"), cmd, "--dir", str(self.dir),
                "--port", str(self.base)] + (["--standalone"] if self.standalone else [])
        r = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError("redis-cluster %s: %s %s" % (cmd, r.stdout, r.stderr))
        return r

    def up(self):
        for line in self._run("up").stdout.splitlines():
            if line.startswith("KURZ_REDIS") and "=" in line:
                k, v = line.split("=", 1)
                self.env[k] = v
        return self

    def down(self):
        self._run("down", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def _port_free(p):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture(scope="session", autouse=True)
def _backend():
    """The session's PostgreSQL cluster and Redis for KURZ_TEST_BACKEND, made
    before the first server starts and removed at the end even on failure."""
    if TEST_BACKEND == "sqlite":
        yield None
        return
    import pgcluster
    if not pgcluster.available():
        pytest.exit("KURZ_TEST_BACKEND=%s needs PostgreSQL 15 (scripts/install-deps)" %
                    TEST_BACKEND, returncode=3)
    pg = pgcluster.Cluster(shards=1)
    redis = None
    try:
        pg.up()
        if TEST_BACKEND != "pg":
            redis = _Redis(TEST_BACKEND == "redis").up()
        kurztest.BACKEND = kurztest.Backend(TEST_BACKEND, pg, redis)
        yield kurztest.BACKEND
    finally:
        kurztest.BACKEND = None
        if redis is not None:
            redis.down()
        pg.down()


@pytest.fixture
def kurz(tmp_path):
    """Per-test factory: kurz.start(args=[...], env={...}) -> Server."""
    f = ServerFactory(tmp_path)
    yield f
    f.close()


@pytest.fixture(scope="module")
def kurz_module(tmp_path_factory):
    """Per-module factory, for servers that several tests share."""
    f = ServerFactory(tmp_path_factory.mktemp("kurz"))
    yield f
    f.close()


@pytest.fixture(autouse=True)
def _watch_shared_servers(request):
    """After each test: a shared server that died during it fails that test
    (with its stderr) and is replaced, so later tests still run."""
    f = request.getfixturevalue("kurz_module") if "kurz_module" in request.fixturenames else None
    yield
    if f is not None:
        crashes = f.revive_all()
        if crashes:
            pytest.fail("\n\n".join(crashes), pytrace=False)


@pytest.fixture(scope="module")
def srv(kurz_module):
    """A shared server with default options except no create rate limit. Its
    data dir has an admin key (srv.admin_key), made before the server started;
    test_cli checks that keys made while a server runs work too."""
    d = kurz_module.new_data_dir()
    key = kurz_module.admin_key(d)
    s = kurz_module.start(["--create-rate-limit", "0"], data_dir=d)
    s.admin_key = key
    return s


@pytest.fixture(scope="module")
def admin_key(srv):
    return srv.admin_key
