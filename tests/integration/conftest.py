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


@pytest.fixture(scope="module")
def srv(kurz_module):
    """A shared server with default options except no create rate limit."""
    return kurz_module.start(["--create-rate-limit", "0"])


@pytest.fixture(scope="module")
def admin_key(kurz_module, srv):
    """An admin key for srv, created while it runs."""
    return kurz_module.admin_key(srv.data_dir)
