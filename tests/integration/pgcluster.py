"""pgcluster - a real local PostgreSQL cluster for the black-box tests, made
and removed by scripts/pg-cluster in a fresh directory on free ports below
32768, plus node control (stop, restart, reconfigure) and psycopg2 access."""

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from kurztest import REPO

PG_BIN = "/usr/lib/postgresql/15/bin"
SCRIPT = str(REPO / "scripts" / "pg-cluster")


def available():
    return os.access(os.path.join(PG_BIN, "pg_ctl"), os.X_OK)


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


class Cluster:
    def __init__(self, shards=1):
        self.shards = shards
        # Under /tmp itself: pytest's tmp dirs are private to root, and
        # PostgreSQL runs as the postgres user.
        self.dir = Path(tempfile.mkdtemp(prefix="kurz-pg-", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.env = {}
        self.base = None

    def _run(self, *args, check=True):
        r = subprocess.run([SCRIPT] + list(args) + ["--dir", str(self.dir)], capture_output=True,
                           text=True, timeout=180)
        if check and r.returncode != 0:
            raise AssertionError("pg-cluster %s failed (%d):\n%s\n%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def up(self):
        for _ in range(20):
            base = self.base or random.randrange(20000, 31000, 100)
            ports = [base + 10 * k + r for k in range(self.shards) for r in range(3)]
            if self.base or _ports_free(ports):
                break
        self.base = base
        r = self._run("up", "--port", str(base), "--shards", str(self.shards))
        for line in r.stdout.splitlines():
            if line.startswith("KURZ_") and "=" in line:
                k, v = line.split("=", 1)
                self.env[k] = v
        return self

    def down(self):
        self._run("down", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def status(self):
        return self._run("status").stdout

    # ---- nodes -------------------------------------------------------------
    def node_dir(self, shard, node):
        return self.dir / ("s%d" % shard) / node

    def port(self, shard, node):
        return self.base + 10 * shard + (0 if node == "primary" else int(node[len("replica"):]))

    def pg_ctl(self, *args):
        cmd = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        cmd += [os.path.join(PG_BIN, "pg_ctl")] + list(args)
        return subprocess.run(cmd, cwd=str(self.dir), capture_output=True, text=True, timeout=60)

    def stop(self, shard, node, mode="fast"):
        r = self.pg_ctl("-D", str(self.node_dir(shard, node)), "stop", "-m", mode, "-w")
        assert r.returncode == 0, r.stderr

    def restart_all(self):
        """Starts every stopped node again (pg-cluster up is idempotent)."""
        self._run("up", "--port", str(self.base), "--shards", str(self.shards))

    def set_conf(self, shard, node, line):
        """Appends a setting to the node's postgresql.conf and reloads it."""
        conf = self.node_dir(shard, node) / "postgresql.conf"
        with open(conf, "a") as f:
            f.write(line + "\n")
        r = self.pg_ctl("-D", str(self.node_dir(shard, node)), "reload")
        assert r.returncode == 0, r.stderr

    def connect(self, shard=0, node="primary"):
        import psycopg2
        c = psycopg2.connect(host="127.0.0.1", port=self.port(shard, node), user="kurz",
                             password="kurz", dbname="kurz", connect_timeout=5)
        c.autocommit = True
        return c

    def query(self, sql, args=None, shard=0, node="primary"):
        c = self.connect(shard, node)
        try:
            with c.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else None
        finally:
            c.close()

    def wait_replayed(self, timeout=10.0):
        """Waits until every replica replayed what its primary wrote."""
        deadline = time.monotonic() + timeout
        for k in range(self.shards):
            lsn = self.query("SELECT pg_current_wal_lsn()::text", shard=k)[0][0]
            for n in self.replica_names():
                while True:
                    ok = self.query("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,),
                                    shard=k, node=n)[0][0]
                    if ok:
                        break
                    assert time.monotonic() < deadline, "replica %d/%s lags" % (k, n)
                    time.sleep(0.05)

    def replica_names(self):
        return ["replica%d" % r for r in range(1, (2 if self.shards == 1 else 1) + 1)]
