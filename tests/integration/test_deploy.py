"""The deploy files, checked without a cluster (there is none here): the
Kubernetes manifests parse and carry the plan's figures (lookup autoscaler
5..50 replicas at CPU 70 % and memory 80 %, create 5 and stats 3 replicas,
probes on /health and /health/<role>); the Prometheus alert rules pass
`promtool check rules`; a running kurz's /metrics passes `promtool check
metrics`; the systemd unit has the keys that matter; the gateway config is
accepted by `nginx -t` once its placeholders are filled in."""

import configparser
import glob
import shutil
import subprocess
from pathlib import Path

import pytest

from kurztest import REPO, get

yaml = pytest.importorskip("yaml", reason="python3-yaml (scripts/install-deps)")

DEPLOY = REPO / "deploy"
ROLES = {"create": 8081, "lookup": 8082, "stats": 8083}


def manifests():
    docs = []
    for f in sorted(glob.glob(str(DEPLOY / "k8s" / "*.yaml"))):
        with open(f) as fh:
            docs += [d for d in yaml.safe_load_all(fh) if d]
    return docs


def by_kind(kind):
    return {d["metadata"]["name"]: d for d in manifests() if d["kind"] == kind}


def test_k8s_deployments_per_role():
    deps = by_kind("Deployment")
    svcs = by_kind("Service")
    assert set(deps) == {"kurz-" + r for r in ROLES}
    for role, port in ROLES.items():
        d = deps["kurz-" + role]
        assert d["apiVersion"] == "apps/v1"
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert d["spec"]["selector"]["matchLabels"].items() <= labels.items()
        c = d["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["KURZ_ROLE"] == role
        assert c["ports"][0]["containerPort"] == port
        assert c["readinessProbe"]["httpGet"]["path"] == "/health/" + role
        assert c["livenessProbe"]["httpGet"]["path"] == "/health"
        res = c["resources"]
        assert res["requests"]["cpu"] and res["requests"]["memory"]
        assert res["limits"]["cpu"] and res["limits"]["memory"]
        refs = {next(iter(r)) : next(iter(r.values()))["name"] for r in c["envFrom"]}
        assert refs["configMapRef"] in by_kind("ConfigMap")
        assert refs["secretRef"] in by_kind("Secret")
        s = svcs["kurz-" + role]
        assert s["spec"]["selector"].items() <= labels.items()
        assert s["spec"]["ports"][0]["port"] == port
    # The plan's sizes: create 5, stats 3.
    assert deps["kurz-create"]["spec"]["replicas"] == 5
    assert deps["kurz-stats"]["spec"]["replicas"] == 3
    cm = next(iter(by_kind("ConfigMap").values()))
    assert all(k.startswith("KURZ_") for k in cm["data"])


def test_k8s_lookup_autoscaler_is_the_plans():
    hpas = by_kind("HorizontalPodAutoscaler")
    h = hpas["kurz-lookup"]
    assert h["apiVersion"] == "autoscaling/v2"
    spec = h["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "kurz-lookup"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (5, 50)
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in spec["metrics"]}
    assert targets == {"cpu": {"type": "Utilization", "averageUtilization": 70},
                       "memory": {"type": "Utilization", "averageUtilization": 80}}
    # Create scales from the plan's 5; stats stays at 3 (no autoscaler).
    assert hpas["kurz-create"]["spec"]["minReplicas"] == 5
    assert "kurz-stats" not in hpas


def test_k8s_disruption_budgets_cover_every_role():
    pdbs = by_kind("PodDisruptionBudget")
    deps = by_kind("Deployment")
    for role in ROLES:
        p = pdbs["kurz-" + role]
        assert p["apiVersion"] == "policy/v1"
        assert ("minAvailable" in p["spec"]) != ("maxUnavailable" in p["spec"])
        sel = p["spec"]["selector"]["matchLabels"]
        assert sel.items() <= deps["kurz-" + role]["spec"]["template"]["metadata"]["labels"].items()


def test_kustomization_lists_every_file():
    k = yaml.safe_load(open(DEPLOY / "k8s" / "kustomization.yaml"))
    files = {Path(f).name for f in glob.glob(str(DEPLOY / "k8s" / "*.yaml"))}
    assert set(k["resources"]) == files - {"kustomization.yaml"}


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (package prometheus)")
def test_alert_rules_pass_promtool():
    r = subprocess.run(["promtool", "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    rules = yaml.safe_load(open(DEPLOY / "prometheus" / "alerts.yml"))["groups"][0]["rules"]
    exprs = {x["alert"]: x["expr"] for x in rules}
    assert "kurz_http_request_duration_seconds_bucket" in exprs["KurzHighLatencyP95"]
    assert "0.95" in exprs["KurzHighLatencyP95"] and "0.1" in exprs["KurzHighLatencyP95"]
    assert '5..' in exprs["KurzHighErrorRate"] and "0.001" in exprs["KurzHighErrorRate"]
    assert "kurz_l1_misses_total" in exprs["KurzLowCacheHitRate"]
    assert "0.9" in exprs["KurzLowCacheHitRate"]
    assert "kurz_pg_pool_in_use / kurz_pg_pool_max" in exprs["KurzDatabasePoolSaturated"]
    assert "process_cpu_seconds_total" in exprs["KurzHighCpu"] and "0.8" in exprs["KurzHighCpu"]
    assert "kurz_sqlite_links_unindexed" in exprs["KurzIndexFoldBehind"]


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (package prometheus)")
def test_metrics_exposition_passes_promtool(kurz):
    s = kurz.start(["--create-rate-limit", "0"])
    get(s.port, "/nosuch1")  # a few samples in the families
    get(s.port, "/api/v1/stats/platform")
    text = get(s.port, "/metrics").body
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       timeout=60)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), \
        (r.stdout + r.stderr).decode()
    for name in (b"process_cpu_seconds_total ", b"process_resident_memory_bytes ",
                 b"process_open_fds ", b"process_start_time_seconds "):
        assert b"\n" + name in text, name


def test_systemd_unit():
    p = configparser.ConfigParser(strict=False, interpolation=None)
    p.optionxform = str
    p.read(DEPLOY / "systemd" / "kurz@.service")
    svc = p["Service"]
    assert "--role %i" in svc["ExecStart"] and svc["ExecStart"].split()[1] == "serve"
    assert svc["EnvironmentFile"]
    assert svc["Restart"] == "on-failure"
    assert svc["NoNewPrivileges"] == "yes"
    assert svc["ProtectSystem"] == "strict"
    assert "/var/lib/kurz" in svc["ReadWritePaths"]
    assert svc["User"] and svc["User"] != "root"
    assert p["Install"]["WantedBy"] == "multi-user.target"
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", "--man=no",
                            str(DEPLOY / "systemd" / "kurz@.service")],
                           capture_output=True, text=True, timeout=60)
        # No kurz installed in /usr/local/bin here: only that may be reported.
        bad = [l for l in (r.stdout + r.stderr).splitlines()
               if l.strip() and "is not executable" not in l]
        assert not bad, bad


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx (scripts/install-deps)")
def test_gateway_config_is_valid_nginx(tmp_path):
    up = tmp_path / "upstreams"
    up.mkdir()
    for role, port in ROLES.items():
        (up / (role + ".conf")).write_text(
            "server 127.0.0.1:%d max_fails=3 fail_timeout=30s;\n" % port)
    conf = (DEPLOY / "nginx" / "kurz.conf").read_text()
    # The plan's settings are in the shipped file.
    for s in ("least_conn;", "keepalive 32;", "proxy_connect_timeout 5s;",
              "proxy_send_timeout 10s;", "proxy_read_timeout 10s;",
              "proxy_http_version 1.1;", 'proxy_set_header Connection "";',
              "X-Forwarded-For $proxy_add_x_forwarded_for",
              "proxy_next_upstream error timeout http_502 http_503;"):
        assert s in conf, s
    directives = "\n".join(l.split("#", 1)[0] for l in conf.splitlines())
    assert "non_idempotent" not in directives  # a POST once sent is never retried
    (tmp_path / "kurz.conf").write_text(
        conf.replace("@LISTEN@", "127.0.0.1:1").replace("@UPSTREAMS@", str(up)))
    (tmp_path / "nginx.conf").write_text(
        "error_log %s/error.log;\nevents {}\nhttp {\n include %s/kurz.conf;\n}\n"
        % (tmp_path, tmp_path))
    r = subprocess.run(["nginx", "-t", "-q", "-p", str(tmp_path), "-c",
                        str(tmp_path / "nginx.conf"), "-g", "pid %s/nginx.pid;" % tmp_path],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
