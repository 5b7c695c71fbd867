"""Fixtures of the black-box suite: factories that start the real kurz binary
(KURZ_BIN, default build/test/kurz) on 127.0.0.1 with a free port and a fresh
data directory, and check at teardown that every server stops cleanly."""

import os

import pytest

from kurztest import KURZ_BIN, ServerFactory


def pytest_sessionstart(session):
    if not os.access(KURZ_BIN, os.X_OK):
        raise pytest.UsageError("kurz binary not found at %s (set KURZ_BIN)" % KURZ_BIN)


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
