"""GET /metrics: valid Prometheus text exposition whose counters move with
the traffic a client sends."""

from collections import defaultdict

from kurztest import Raw, create_ok, get, metric_sum, metrics, parse_metrics, req, unique_url

SPEC_METRICS = ("kurz_http_requests_total", "kurz_http_request_duration_seconds_bucket",
                "kurz_http_request_duration_seconds_sum",
                "kurz_http_request_duration_seconds_count", "kurz_l1_hits_total",
                "kurz_l1_misses_total", "kurz_store_errors_total", "kurz_rate_limited_total",
                "kurz_click_flush_lag_seconds")


def test_metrics_is_prometheus_text(srv):
    get(srv.port, "/health")
    r = get(srv.port, "/metrics")
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("text/plain"), r.headers
    samples, types = parse_metrics(r.body.decode())  # asserts every line parses
    names = {n for n, _, _ in samples}
    for n in SPEC_METRICS:
        assert n in names, "metric %s missing" % n
    assert types.get("kurz_http_requests_total") == "counter"
    assert types.get("kurz_http_request_duration_seconds") == "histogram"
    for n, labels, v in samples:
        if n == "kurz_http_requests_total":
            assert "route" in labels and "status" in labels, labels
        if n.endswith(("_total", "_bucket", "_count", "_sum")):
            assert v >= 0, (n, labels, v)


def test_metrics_histogram_is_consistent(srv):
    for _ in range(3):
        get(srv.port, "/health")
    samples = metrics(srv.port)
    buckets = defaultdict(list)
    counts = {}
    for n, labels, v in samples:
        rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        if n == "kurz_http_request_duration_seconds_bucket":
            buckets[rest].append((float(labels["le"]), v))
        elif n == "kurz_http_request_duration_seconds_count":
            counts[rest] = v
    assert buckets, "no histogram buckets"
    for rest, bs in buckets.items():
        bs.sort()
        assert bs[-1][0] == float("inf"), "no +Inf bucket for %r" % (rest,)
        vals = [v for _, v in bs]
        assert vals == sorted(vals), "buckets not cumulative for %r: %r" % (rest, bs)
        assert counts.get(rest) == bs[-1][1], "_count != +Inf bucket for %r" % (rest,)
    assert sum(counts.values()) > 0


def test_metrics_count_requests(srv):
    before = metric_sum(metrics(srv.port), "kurz_http_requests_total")
    for _ in range(7):
        assert get(srv.port, "/health").status == 200
    code = create_ok(srv.port, unique_url("m"))["shortCode"]
    assert get(srv.port, "/" + code).status == 302
    assert get(srv.port, "/Zz0None").status == 404
    after = metrics(srv.port)
    assert metric_sum(after, "kurz_http_requests_total") >= before + 10
    statuses = {l.get("status") for n, l, v in after if n == "kurz_http_requests_total" and v > 0}
    for s in ("200", "201", "302", "404"):
        assert s in statuses, "no requests counted with status %s: %r" % (s, statuses)


def test_metrics_show_l1_hits_after_repeated_redirects(srv):
    code = create_ok(srv.port, unique_url("l1"))["shortCode"]
    with Raw(srv.port) as c:
        for _ in range(3):
            c.send(req("GET", "/" + code))
            assert c.read_response().status == 302
        h0 = metric_sum(metrics(srv.port), "kurz_l1_hits_total")
        for _ in range(10):
            c.send(req("GET", "/" + code))
            assert c.read_response().status == 302
    h1 = metric_sum(metrics(srv.port), "kurz_l1_hits_total")
    assert h1 - h0 >= 10, (h0, h1)


def test_metrics_show_l1_misses(srv):
    m0 = metric_sum(metrics(srv.port), "kurz_l1_misses_total")
    assert get(srv.port, "/Zz1Miss").status == 404
    m1 = metric_sum(metrics(srv.port), "kurz_l1_misses_total")
    assert m1 >= m0 + 1, (m0, m1)
