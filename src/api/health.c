/* api/health.c - liveness (/health, answered inline), readiness of the store
 * (/health/create, /health/lookup, asked on the blocking pool) and the
 * Prometheus exposition (/metrics). */
#include <stdlib.h>

#include "api/api_int.h"
#include "api/fleet.h"

struct health_job {
        struct kurz_service *s;
        bool ok;
};

static void reply(struct kurz_service *s, struct kurz_http_exchange *x, bool ok)
{
        struct kurz_buf b = {0};

        kurz_buf_printf(&b, "{\"status\":\"%s\",\"service\":\"kurz\",\"store\":\"%s\"}",
                        ok ? "UP" : "DOWN", s->store->name);
        kurz_api_json(s, x, KURZ_ROUTE_HEALTH, ok ? 200 : 503, &b, NULL, 0);
        kurz_buf_free(&b);
}

static void health_work(void *arg)
{
        struct health_job *j = arg;

        j->ok = j->s->store->ops->healthy(j->s->store);
}

static void health_done(struct kurz_http_exchange *x, void *arg)
{
        struct health_job *j = arg;

        reply(j->s, x, j->ok);
        free(j);
}

void kurz_api_health(struct kurz_service *s, struct kurz_http_exchange *x, bool deep)
{
        struct health_job *j;

        if (!deep) {
                reply(s, x, true);
                return;
        }
        j = calloc(1, sizeof(*j));
        if (!j) {
                reply(s, x, false);
                return;
        }
        j->s = s;
        if (kurz_http_offload(x, health_work, health_done, j) < 0) {
                free(j);
                reply(s, x, false);
        }
}

void kurz_api_metrics(struct kurz_service *s, struct kurz_http_exchange *x)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        unsigned thread = req->thread;
        uint64_t start = req->start_ns;
        struct kurz_buf b = {0};
        struct kurz_l1_stats l1;
        int64_t last = atomic_load(&s->last_flush_s);
        int rc;

        kurz_l1_stats(s->l1, &l1);
        rc = kurz_metrics_render(s->metrics, &b);
        rc |= kurz_metrics_gauge(&b, "kurz_http_connections", "Open client connections.",
                                 (double)kurz_http_server_connections(s->http));
        rc |= kurz_metrics_gauge(&b, "kurz_l1_entries", "Entries in the in-process cache.",
                                 (double)l1.entries);
        rc |= kurz_metrics_gauge(&b, "kurz_l1_bytes", "Heap bytes held by the in-process cache.",
                                 (double)l1.bytes);
        rc |= kurz_metrics_gauge(&b, "kurz_l1_evictions", "Entries evicted from the cache so far.",
                                 (double)l1.evictions);
        rc |= kurz_metrics_gauge(&b, "kurz_writer_queue", "Creates waiting for the store writer.",
                                 (double)kurz_writer_queued(s->writer));
        rc |= kurz_metrics_gauge(&b, "kurz_click_flush_lag_seconds",
                                 "Seconds since click counts were last written.",
                                 last ? (double)(kurz_api_now_s() - last) : 0.0);
        rc |= kurz_metrics_gauge(&b, "kurz_clicks_dropped", "Clicks lost to allocation failure.",
                                 (double)kurz_clicks_dropped(s->clicks));
        if (s->store->ops->metrics)
                rc |= s->store->ops->metrics(s->store, &b);
        rc |= kurz_api_fleet_metrics(s, &b); /* single flight, L2, Redis */
        if (rc) {
                kurz_buf_free(&b);
                kurz_http_respond(x, 500, NULL, 0, NULL, NULL, 0, true);
                return;
        }
        kurz_http_respond(x, 200, NULL, 0, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len,
                          false);
        kurz_metrics_request(s->metrics, thread, KURZ_ROUTE_METRICS, 200,
                             kurz_http_now_ns() - start);
        kurz_buf_free(&b);
}
