"""The command line: help texts that document every option, migrate, admin
keys, refusal of bad options, and environment variables in place of flags."""

import re
import subprocess

import pytest

from kurztest import (KURZ_BIN, assert_error, auth, child_env, create, create_ok, free_port,
                      get, request, sanitizer_lines, unique_url)

# Every serve option of the spec, with its environment variable.
OPTIONS = {
    "--listen": "KURZ_LISTEN",
    "--data-dir": "KURZ_DATA_DIR",
    "--threads": "KURZ_THREADS",
    "--base-url": "KURZ_BASE_URL",
    "--codes": "KURZ_CODES",
    "--worker-id": "KURZ_WORKER_ID",
    "--create-rate-limit": "KURZ_CREATE_RATE_LIMIT",
    "--read-rate-limit": "KURZ_READ_RATE_LIMIT",
    "--trusted-proxies": "KURZ_TRUSTED_PROXIES",
    "--l1-size": "KURZ_L1_SIZE",
    "--l1-ttl": "KURZ_L1_TTL",
    "--l1-negative-ttl": "KURZ_L1_NEGATIVE_TTL",
    "--default-expiry": "KURZ_DEFAULT_EXPIRY",
    "--redirect-max-age": "KURZ_REDIRECT_MAX_AGE",
    "--click-flush-interval": "KURZ_CLICK_FLUSH_INTERVAL",
    "--cleanup-interval": "KURZ_CLEANUP_INTERVAL",
    "--purge-unused-days": "KURZ_PURGE_UNUSED_DAYS",
    "--max-connections": "KURZ_MAX_CONNECTIONS",
    "--max-body": "KURZ_MAX_BODY",
    "--max-header-bytes": "KURZ_MAX_HEADER_BYTES",
    "--max-headers": "KURZ_MAX_HEADERS",
    "--max-request-line": "KURZ_MAX_REQUEST_LINE",
    "--header-timeout": "KURZ_HEADER_TIMEOUT",
    "--idle-timeout": "KURZ_IDLE_TIMEOUT",
    "--shutdown-grace": "KURZ_SHUTDOWN_GRACE",
    "--log-level": "KURZ_LOG_LEVEL",
}


def run(*args, timeout=60):
    r = subprocess.run([KURZ_BIN, *args], capture_output=True, text=True, timeout=timeout,
                       env=child_env(), stdin=subprocess.DEVNULL)
    assert not sanitizer_lines(r.stderr), r.stderr
    return r


def test_help_lists_commands():
    r = run("--help")
    assert r.returncode == 0, r
    text = r.stdout + r.stderr
    for word in ("serve", "migrate", "admin", "create-key"):
        assert word in text, "kurz --help does not mention %s" % word


def test_serve_help_documents_every_option():
    r = run("serve", "--help")
    assert r.returncode == 0, r
    text = r.stdout + r.stderr
    missing = [o for o in OPTIONS if not re.search(re.escape(o) + r"(?![a-z-])", text)]
    assert not missing, "serve --help lacks %s" % missing
    missing_env = [e for e in OPTIONS.values() if e not in text]
    assert not missing_env, "serve --help lacks the variables %s" % missing_env


def test_version():
    r = run("--version")
    assert r.returncode == 0, r
    assert re.search(r"\d", r.stdout), r.stdout


@pytest.mark.sqlite_only("kurz migrate --data-dir migrates the SQLite store")
def test_migrate_prints_schema_version(kurz, tmp_path):
    d = tmp_path / "fresh"
    r = run("migrate", "--data-dir", str(d))
    assert r.returncode == 0, r
    m = re.search(r"schema version (\d+)", r.stdout)
    assert m and int(m.group(1)) >= 1, r.stdout
    again = run("migrate", "--data-dir", str(d))
    assert again.returncode == 0, again
    assert re.search(r"schema version (\d+)", again.stdout).group(1) == m.group(1)
    # A server runs on the migrated directory.
    s = kurz.start(["--create-rate-limit", "0"], data_dir=d)
    j = create_ok(s.port, unique_url("migrated"))
    assert get(s.port, "/" + j["shortCode"]).status == 302


def test_admin_key_made_while_server_runs_works_and_is_hashed(kurz):
    s = kurz.start(["--create-rate-limit", "0"])
    key = kurz.admin_key(s.data_dir, name="ops")
    key2 = kurz.admin_key(s.data_dir)
    assert key != key2
    for f in s.data_dir.rglob("*"):
        if f.is_file():
            assert key.encode() not in f.read_bytes(), "key stored in clear in %s" % f
    for k in (key, key2):
        code = create_ok(s.port, unique_url("adm"))["shortCode"]
        r = request(s.port, "DELETE", "/api/v1/urls/" + code, headers=auth(k))
        assert r.status == 200, r


@pytest.mark.parametrize("args", [
    ["--no-such-option"],
    ["--threads", "abc"],
    ["--codes", "bogus"],
    ["--idle-timeout", "5x"],
    ["--worker-id", "5000"],
    ["--listen", "127.0.0.1:notaport"],
    ["--trusted-proxies", "300.1.2.3/40"],
], ids=lambda a: a[0] + (("=" + a[1]) if len(a) > 1 else ""))
def test_bad_option_exits_nonzero(kurz, tmp_path, args):
    base = ["--listen", "127.0.0.1:%d" % free_port(), "--data-dir", str(tmp_path / "d")]
    if args[0] == "--listen":
        base = base[2:]
    rc, out, err = kurz.run_expect_exit(base + args)
    assert rc != 0
    assert "listening on" not in out
    assert (out + err).strip(), "no message"


@pytest.mark.sqlite_only("checks the SQLite files in KURZ_DATA_DIR")
def test_env_vars_instead_of_flags(kurz, tmp_path):
    port = free_port()
    d = tmp_path / "envdata"
    s = kurz.start(defaults=False, env={
        "KURZ_LISTEN": "127.0.0.1:%d" % port,
        "KURZ_DATA_DIR": str(d),
        "KURZ_THREADS": "2",
        "KURZ_BASE_URL": "https://env.example",
        "KURZ_CREATE_RATE_LIMIT": "2",
    })
    assert s.port == port
    j = create_ok(port, unique_url("env"))
    assert j["shortUrl"] == "https://env.example/" + j["shortCode"]
    assert create(port, unique_url("env")).status == 201
    assert_error(create(port, unique_url("env")), 429, "RATE_LIMITED")
    assert get(port, "/" + j["shortCode"]).status == 302
    s.stop()
    assert any(f.is_file() for f in d.rglob("*")), "nothing stored in KURZ_DATA_DIR"


def test_flag_wins_over_env(kurz):
    s = kurz.start(["--base-url", "https://flag.example", "--create-rate-limit", "0"],
                   env={"KURZ_BASE_URL": "https://env.example"})
    j = create_ok(s.port, unique_url("flagwins"))
    assert j["shortUrl"] == "https://flag.example/" + j["shortCode"]
