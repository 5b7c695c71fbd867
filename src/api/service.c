/* api/service.c - wires the service together: opens the store, starts the
 * writer, the code generator, the caches and the HTTP loops, routes each
 * request to its handler, runs the periodic jobs (click flush, expiry
 * cleanup, memory reclamation) on the main thread's loop, and stops
 * gracefully on SIGTERM/SIGINT. */
#include "api/service.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "api/api_int.h"
#include "api/fleet.h"
#include "cache/l2.h"
#include "store/pg.h"
#include "store/sqlite.h"
#include "util/log.h"

#define CLEANUP_BATCH  1000
#define CLEANUP_ROUNDS 100 /* per tick: bounded work, the next tick goes on */

/* --- routing --- */

static bool get_or_head(enum kurz_http_method m)
{
        return m == KURZ_HTTP_GET || m == KURZ_HTTP_HEAD;
}

/* The role whose process serves a request: KURZ_ROLE_ALL for what every
 * role serves (/health, /metrics, /) and for paths no role claims. Admin
 * routes (DELETE /api/v1/urls/{code}, GET /api/v1/urls) belong to create,
 * the role that writes links. */
static enum kurz_role route_role(struct kurz_str p, enum kurz_http_method m)
{
        if (kurz_str_has_prefix(p, "/api/v1/create/") || kurz_str_eq_lit(p, "/api/v1/urls"))
                return KURZ_ROLE_CREATE;
        if (kurz_str_has_prefix(p, "/api/v1/stats/"))
                return KURZ_ROLE_STATS;
        if (kurz_str_has_prefix(p, "/api/v1/urls/"))
                return m == KURZ_HTTP_DELETE ? KURZ_ROLE_CREATE : KURZ_ROLE_LOOKUP;
        if (kurz_str_eq_lit(p, "/health/create"))
                return KURZ_ROLE_CREATE;
        if (kurz_str_eq_lit(p, "/health/lookup"))
                return KURZ_ROLE_LOOKUP;
        if (kurz_str_eq_lit(p, "/health/stats"))
                return KURZ_ROLE_STATS;
        if (p.len > 1 && p.p[0] == '/') {
                struct kurz_str code = {p.p + 1, p.len - 1};
                if (kurz_code_syntax_ok(code) && !kurz_str_eq_lit(code, "health") &&
                    !kurz_str_eq_lit(code, "metrics"))
                        return KURZ_ROLE_LOOKUP;
        }
        return KURZ_ROLE_ALL;
}

/* A route of another role: 404 (the resource is not here), naming the
 * service that answers it, so a misrouted gateway is easy to spot. */
static void wrong_role(struct kurz_service *s, struct kurz_http_exchange *x, enum kurz_role r)
{
        char extra[64], msg[128];

        snprintf(extra, sizeof(extra), ",\"service\":\"%s\"", kurz_config_role_name(r));
        snprintf(msg, sizeof(msg),
                 "this kurz process serves the %s role; the %s service "
                 "answers this path",
                 s->cfg->role, kurz_config_role_name(r));
        kurz_api_error(s, x, KURZ_ROUTE_OTHER, 404, "NOT_FOUND", msg, extra, NULL, 0);
}

static void on_request(void *app, struct kurz_http_exchange *x)
{
        struct kurz_service *s = app;
        const struct kurz_http_request *req = kurz_http_request(x);
        struct kurz_str p = req->path;
        enum kurz_http_method m = req->method;

        if (s->cfg->role_id != KURZ_ROLE_ALL) {
                enum kurz_role r = route_role(p, m);
                if (r != KURZ_ROLE_ALL && r != s->cfg->role_id) {
                        wrong_role(s, x, r);
                        return;
                }
        }

        /* The hot path first: "/{code}" is a single segment of code chars. */
        if (p.len > 1 && p.p[0] == '/') {
                struct kurz_str code = {p.p + 1, p.len - 1};
                if (kurz_code_syntax_ok(code) && !kurz_str_eq_lit(code, "health") &&
                    !kurz_str_eq_lit(code, "metrics") && !kurz_str_eq_lit(code, "stats")) {
                        if (get_or_head(m))
                                kurz_api_redirect(s, x, code);
                        else
                                kurz_api_method_not_allowed(s, x, KURZ_ROUTE_REDIRECT, "GET, HEAD");
                        return;
                }
                /* "/{code}+": the preview page (Bitly's and Kutt's convention). */
                code.len--;
                if (code.len && p.p[p.len - 1] == '+' && kurz_code_syntax_ok(code)) {
                        if (get_or_head(m))
                                kurz_api_ui_preview(s, x, code);
                        else
                                kurz_api_method_not_allowed(s, x, KURZ_ROUTE_LINK, "GET, HEAD");
                        return;
                }
        }
        if (kurz_str_eq_lit(p, "/api/v1/create/shorten")) {
                if (m == KURZ_HTTP_POST)
                        kurz_api_create(s, x);
                else
                        kurz_api_method_not_allowed(s, x, KURZ_ROUTE_CREATE, "POST");
                return;
        }
        if (kurz_str_has_prefix(p, "/api/v1/urls/")) {
                struct kurz_str code = {p.p + 13, p.len - 13};
                if (!kurz_code_syntax_ok(code))
                        goto not_found;
                if (get_or_head(m))
                        kurz_api_link_get(s, x, code);
                else if (m == KURZ_HTTP_DELETE)
                        kurz_api_delete(s, x, code);
                else
                        kurz_api_method_not_allowed(s, x, KURZ_ROUTE_LINK, "GET, HEAD, DELETE");
                return;
        }
        if (kurz_str_eq_lit(p, "/api/v1/urls")) {
                if (get_or_head(m))
                        kurz_api_list(s, x);
                else
                        kurz_api_method_not_allowed(s, x, KURZ_ROUTE_LIST, "GET, HEAD");
                return;
        }
        if (kurz_str_eq_lit(p, "/api/v1/stats/platform")) {
                if (get_or_head(m))
                        kurz_api_stats_platform(s, x);
                else
                        kurz_api_method_not_allowed(s, x, KURZ_ROUTE_STATS, "GET, HEAD");
                return;
        }
        if (kurz_str_has_prefix(p, "/api/v1/stats/url/")) {
                struct kurz_str code = {p.p + 18, p.len - 18};
                if (get_or_head(m))
                        kurz_api_stats_link(s, x, code);
                else
                        kurz_api_method_not_allowed(s, x, KURZ_ROUTE_STATS, "GET, HEAD");
                return;
        }
        if (kurz_str_eq_lit(p, "/health") || kurz_str_eq_lit(p, "/health/create") ||
            kurz_str_eq_lit(p, "/health/lookup") || kurz_str_eq_lit(p, "/health/stats")) {
                if (get_or_head(m))
                        kurz_api_health(s, x, p.len > 7);
                else
                        kurz_api_method_not_allowed(s, x, KURZ_ROUTE_HEALTH, "GET, HEAD");
                return;
        }
        if (kurz_str_eq_lit(p, "/metrics")) {
                if (get_or_head(m))
                        kurz_api_metrics(s, x);
                else
                        kurz_api_method_not_allowed(s, x, KURZ_ROUTE_METRICS, "GET, HEAD");
                return;
        }
        if (kurz_str_eq_lit(p, "/")) {
                if (get_or_head(m))
                        kurz_api_ui_home(s, x);
                else if (m == KURZ_HTTP_POST)
                        kurz_api_ui_create(s, x);
                else
                        kurz_api_method_not_allowed(s, x, KURZ_ROUTE_OTHER, "GET, HEAD, POST");
                return;
        }
        if (kurz_str_eq_lit(p, "/api/v1/create/qr")) {
                if (get_or_head(m))
                        kurz_api_qr(s, x);
                else
                        kurz_api_method_not_allowed(s, x, KURZ_ROUTE_OTHER, "GET, HEAD");
                return;
        }
        if (kurz_str_eq_lit(p, "/stats")) {
                if (get_or_head(m))
                        kurz_api_ui_platform(s, x);
                else
                        kurz_api_method_not_allowed(s, x, KURZ_ROUTE_OTHER, "GET, HEAD");
                return;
        }
        if (kurz_str_has_prefix(p, "/stats/")) {
                struct kurz_str code = {p.p + 7, p.len - 7};
                if (!kurz_code_syntax_ok(code))
                        goto not_found;
                if (get_or_head(m))
                        kurz_api_ui_stats(s, x, code);
                else
                        kurz_api_method_not_allowed(s, x, KURZ_ROUTE_OTHER, "GET, HEAD");
                return;
        }
        if (kurz_str_has_prefix(p, "/static/")) {
                struct kurz_str name = {p.p + 8, p.len - 8};
                if (!get_or_head(m))
                        kurz_api_method_not_allowed(s, x, KURZ_ROUTE_OTHER, "GET, HEAD");
                else if (!kurz_api_ui_asset(s, x, name))
                        goto not_found;
                return;
        }
not_found:
        kurz_api_error(s, x, KURZ_ROUTE_OTHER, 404, "NOT_FOUND", "no such resource", NULL, NULL, 0);
}

static void on_event(void *app, unsigned thread, int status)
{
        struct kurz_service *s = app;

        if (status == 503)
                kurz_metrics_add(s->metrics, thread, KURZ_C_CONN_REFUSED, 1);
        else
                kurz_metrics_add(s->metrics, thread, KURZ_C_HTTP_ERROR_CLOSE, 1);
}

/* --- click flush --- */

struct flush_job {
        struct kurz_service *s;
        unsigned thread;
        struct kurz_clicks_taken *taken;
        size_t n;
};

/* Writer thread: the table detached on the loop becomes one batch here
 * (one transaction); out of memory, batches of 64 from the stack instead. */
static int flush_fn(struct kurz_store *st, void *arg)
{
        struct flush_job *j = arg;
        struct kurz_click small[64];
        struct kurz_click *arr = malloc(j->n * sizeof(*arr));
        struct kurz_click *buf = arr ? arr : small;
        size_t cap = arr ? j->n : sizeof(small) / sizeof(small[0]);
        size_t pos = 0, k;
        int rc = 0;

        while (rc == 0 && (k = kurz_clicks_next(j->taken, &pos, buf, cap)) > 0)
                rc = st->ops->add_clicks(st, buf, k);
        free(arr);
        return rc;
}

static void flush_done(void *arg, int rc)
{
        struct flush_job *j = arg;

        if (rc < 0) {
                kurz_warn("click flush of %zu aggregates failed: %d", j->n, rc);
                kurz_metrics_add(j->s->metrics, KURZ_METRICS_SHARED, KURZ_C_STORE_ERROR, 1);
        } else {
                kurz_metrics_add(j->s->metrics, KURZ_METRICS_SHARED, KURZ_C_CLICK_FLUSHES, 1);
                atomic_store(&j->s->last_flush_s, kurz_api_now_s());
        }
        atomic_fetch_sub(&j->s->inflight_flushes, 1);
        kurz_clicks_taken_free(j->taken);
        free(j);
}

/* Detaches thread t's counts and queues them for the writer, which turns
 * them into a batch. Runs on loop t (or after the loops stopped). */
static void flush_thread(struct kurz_service *s, unsigned t)
{
        struct flush_job *j = calloc(1, sizeof(*j));
        int rc;

        if (!j)
                return;
        j->s = s;
        j->thread = t;
        rc = kurz_clicks_detach(s->clicks, t, &j->taken);
        if (rc < 0 || !j->taken) {
                if (rc == 0) /* nothing counted: up to date */
                        atomic_store(&s->last_flush_s, kurz_api_now_s());
                free(j);
                return;
        }
        j->n = kurz_clicks_taken_count(j->taken);
        atomic_fetch_add(&s->inflight_flushes, 1);
        if (kurz_writer_job(s->writer, flush_fn, flush_done, j) < 0) {
                kurz_warn("click flush dropped %zu aggregates: writer stopped", j->n);
                atomic_fetch_sub(&s->inflight_flushes, 1);
                kurz_clicks_taken_free(j->taken);
                free(j);
        }
}

struct post_arg {
        struct kurz_service *s;
        unsigned thread;
};

static void flush_on_loop(void *arg)
{
        struct post_arg *a = arg;

        flush_thread(a->s, a->thread);
        free(a);
}

/* Asks every loop thread to hand its click counts to the writer. */
static void post_flushes(struct kurz_service *s)
{
        for (unsigned i = 0; i < kurz_http_server_threads(s->http); i++) {
                struct post_arg *a = malloc(sizeof(*a));
                if (!a)
                        continue;
                a->s = s;
                a->thread = i;
                if (kurz_http_server_post(s->http, i, flush_on_loop, a) < 0)
                        free(a);
        }
}

/* Writer thread, every flush interval: a store that defers work (the
 * SQLite click log) does it when due, also when nothing was clicked. */
static int tick_fn(struct kurz_store *st, void *arg)
{
        (void)arg;
        return st->ops->add_clicks(st, NULL, 0);
}

static void tick_done(void *arg, int rc)
{
        struct kurz_service *s = arg;

        if (rc < 0) {
                kurz_warn("deferred store work failed: %d", rc);
                kurz_metrics_add(s->metrics, KURZ_METRICS_SHARED, KURZ_C_STORE_ERROR, 1);
        }
}

static void flush_tick(uv_timer_t *t)
{
        struct kurz_service *s = t->data;

        post_flushes(s);
        kurz_writer_job(s->writer, tick_fn, tick_done, s);
}

/* --- expiry cleanup --- */

static int cleanup_fn(struct kurz_store *st, void *arg)
{
        struct kurz_service *s = arg;
        int64_t now = kurz_api_now_s();
        int64_t unused =
            s->cfg->purge_unused_days ? now - (int64_t)s->cfg->purge_unused_days * 86400 : 0;
        int total = 0;

        for (int round = 0; round < CLEANUP_ROUNDS; round++) {
                char(*codes)[KURZ_CODE_MAX + 1] = NULL;
                int n = st->ops->cleanup(st, now, unused, CLEANUP_BATCH, &codes);
                if (n < 0) {
                        free(codes);
                        return n;
                }
                for (int i = 0; i < n; i++) {
                        /* L2 in the background: expired links are past their
                         * L2 TTL anyway; the publish that follows the DEL
                         * drops any L1 copy refilled meanwhile. */
                        if (s->l2)
                                kurz_l2_invalidate_async(s->l2, codes[i], strlen(codes[i]));
                        kurz_l1_invalidate(s->l1, kurz_str_c(codes[i]));
                }
                free(codes);
                total += n;
                if (n < CLEANUP_BATCH)
                        break;
        }
        return total;
}

static void cleanup_done(void *arg, int rc)
{
        struct kurz_service *s = arg;

        if (rc < 0) {
                kurz_warn("expiry cleanup failed: %d", rc);
                kurz_metrics_add(s->metrics, KURZ_METRICS_SHARED, KURZ_C_STORE_ERROR, 1);
        } else if (rc > 0) {
                kurz_info("expiry cleanup deleted %d links", rc);
                kurz_metrics_add(s->metrics, KURZ_METRICS_SHARED, KURZ_C_CLEANUP_DELETED,
                                 (uint64_t)rc);
        }
}

static void cleanup_tick(uv_timer_t *t)
{
        struct kurz_service *s = t->data;

        kurz_writer_job(s->writer, cleanup_fn, cleanup_done, s);
}

static void reclaim_tick(uv_timer_t *t)
{
        struct kurz_service *s = t->data;

        kurz_qsbr_reclaim(s->qsbr);
}

/* --- lifecycle --- */

struct main_loop {
        uv_loop_t loop;
        uv_signal_t sigterm, sigint;
        uv_timer_t flush, cleanup, reclaim;
        int signum;
};

static void on_signal(uv_signal_t *h, int signum)
{
        struct main_loop *ml = h->data;

        ml->signum = signum;
        uv_stop(&ml->loop);
}

static void close_walk(uv_handle_t *h, void *arg)
{
        (void)arg;
        if (!uv_is_closing(h))
                uv_close(h, NULL);
}

static int parse_base_url(struct kurz_service *s)
{
        const char *b = s->cfg->base_url;
        size_t len = strlen(b);

        if (len == 0)
                return 0;
        while (len && b[len - 1] == '/')
                len--;
        if (len >= sizeof(s->base_url))
                return -EINVAL;
        memcpy(s->base_url, b, len);
        s->base_url[len] = '\0';
        if (kurz_url_check(kurz_str_c(s->base_url), 1000, &s->base_parts) != NULL ||
            strchr(s->base_url, '?') || strchr(s->base_url, '#'))
                return -EINVAL;
        s->has_base_url = true;
        return 0;
}

static void service_free(struct kurz_service *s)
{
        kurz_http_server_free(s->http);
        if (s->writer)
                kurz_writer_stop(s->writer);
        kurz_api_fleet_close(s); /* after the writer: deletes use L2 */
        kurz_codegen_free(s->codegen);
        if (s->store)
                s->store->ops->close(s->store);
        kurz_l1_free(s->l1);
        kurz_qsbr_free(s->qsbr);
        kurz_ratelimit_free(s->create_limit);
        kurz_ratelimit_free(s->read_limit);
        kurz_ratelimit_free(s->notfound_limit);
        kurz_api_blocklist_free(s->blocked);
        kurz_proxies_free(s->proxies);
        kurz_clicks_free(s->clicks);
        kurz_metrics_free(s->metrics);
}

static int service_open(struct kurz_service *s, const struct kurz_config *cfg)
{
        struct kurz_sqlite_config sc = {cfg->data_dir, cfg->store_threads + 2, 5000, false,
                                        cfg->click_fold_ms};
        struct kurz_codegen_config gc = {0};
        struct kurz_writer_config wc = {0};
        struct kurz_l1_config lc = {0};
        struct kurz_http_config hc;
        int rc;

        s->cfg = cfg;
        if (parse_base_url(s) < 0) {
                kurz_error("--base-url must be an http:// or https:// URL without query: %s",
                           cfg->base_url);
                return -EINVAL;
        }
        if (kurz_proxies_parse(cfg->trusted_proxies, &s->proxies) < 0) {
                kurz_error("--trusted-proxies is not a list of addresses or CIDRs: %s",
                           cfg->trusted_proxies);
                return -EINVAL;
        }
        if (s->store) {
                rc = 0; /* given by kurz_service_test_start() */
        } else if (cfg->database[0] || cfg->shards[0]) {
                struct kurz_pg_config pc = {0};

                pc.database = cfg->database;
                pc.replicas = cfg->replicas;
                pc.shards_file = cfg->shards;
                pc.pool_max = cfg->db_pool_max;
                pc.pool_min_idle = cfg->db_pool_min_idle;
                pc.connect_timeout_ms = cfg->db_connect_timeout_ms;
                pc.idle_timeout_ms = cfg->db_idle_timeout_ms;
                pc.max_lifetime_ms = cfg->db_max_lifetime_ms;
                pc.check_interval_ms = cfg->replica_check_interval_ms;
                pc.max_lag_bytes = cfg->replica_max_lag_bytes;
                pc.background = true;
                rc = kurz_pg_open(&pc, &s->store);
                if (rc < 0) {
                        /* The store logged why (a connection or a statement
                         * it refused): unavailable also covers a reachable
                         * primary that fails a migration. */
                        kurz_error("cannot open the PostgreSQL store: %s",
                                   rc == KURZ_E_UNAVAILABLE
                                       ? "a primary is unreachable or refused the setup"
                                         " (see above)"
                                       : strerror(-rc));
                        return rc;
                }
        } else {
                rc = kurz_sqlite_open(&sc, &s->store);
        }
        if (rc < 0) {
                kurz_error("cannot open the store in %s: %s", cfg->data_dir,
                           rc == -EBUSY ? "in use by another kurz process" : strerror(-rc));
                return rc;
        }
        gc.kind = strcmp(cfg->codes, "snowflake") == 0 ? KURZ_CODES_SNOWFLAKE : KURZ_CODES_COMPACT;
        gc.store = s->store;
        gc.block = 1000;
        gc.snowflake.epoch_ms = cfg->snowflake_epoch_ms;
        gc.snowflake.worker_id = cfg->worker_id;
        gc.snowflake.max_wait_ms = 1000;
        rc = kurz_codegen_new(&gc, &s->codegen);
        if (rc < 0) {
                kurz_error("cannot start the code generator: %d", rc);
                return rc;
        }
        wc.max_batch = 1024;
        wc.max_queue = 65536;
        wc.gen = kurz_codegen_next;
        wc.gen_arg = s->codegen;
        rc = kurz_writer_start(s->store, &wc, &s->writer);
        if (rc < 0)
                return rc;
        s->qsbr = kurz_qsbr_new(cfg->threads);
        if (!s->qsbr)
                return -ENOMEM;
        lc.max_entries = cfg->l1_size;
        lc.ttl_ms = (unsigned)(cfg->l1_ttl_ms > 0xffffffffu ? 0xffffffffu : cfg->l1_ttl_ms);
        lc.negative_ttl_ms =
            (unsigned)(cfg->l1_negative_ttl_ms > 0xffffffffu ? 0xffffffffu
                                                             : cfg->l1_negative_ttl_ms);
        lc.qsbr = s->qsbr;
        s->l1 = kurz_l1_new(&lc);
        s->clicks = kurz_clicks_new(cfg->threads, 4096);
        s->metrics = kurz_metrics_new(cfg->threads);
        if (!s->l1 || !s->clicks || !s->metrics)
                return -ENOMEM;
        if (cfg->create_rate_limit &&
            !(s->create_limit = kurz_ratelimit_new(cfg->create_rate_limit, 60000, 100000)))
                return -ENOMEM;
        if (cfg->read_rate_limit &&
            !(s->read_limit = kurz_ratelimit_new(cfg->read_rate_limit, 60000, 100000)))
                return -ENOMEM;
        if (cfg->max_404_per_minute &&
            (!(s->notfound_limit = kurz_ratelimit_new(cfg->max_404_per_minute, 60000, 100000)) ||
             !(s->blocked = kurz_api_blocklist_new())))
                return -ENOMEM;
        rc = kurz_api_fleet_open(s);
        if (rc < 0)
                return rc;

        kurz_http_config_defaults(&hc);
        hc.host = cfg->listen_host;
        hc.port = cfg->listen_port;
        hc.threads = cfg->threads;
        hc.max_connections = cfg->max_connections;
        hc.max_request_line = cfg->max_request_line;
        hc.max_header_bytes = cfg->max_header_bytes;
        hc.max_headers = cfg->max_headers;
        hc.max_body = cfg->max_body;
        hc.header_timeout_ms = (unsigned)cfg->header_timeout_ms;
        hc.idle_timeout_ms = (unsigned)cfg->idle_timeout_ms;
        hc.max_offload = cfg->max_inflight_reads;
        hc.batch_wait_us = cfg->batch_wait_us;
        hc.on_request = on_request;
        hc.on_event = on_event;
        hc.app = s;
        hc.qsbr = s->qsbr;
        rc = kurz_http_server_new(&hc, &s->http);
        if (rc < 0) {
                kurz_error("cannot listen on %s:%u: %s", cfg->listen_host, cfg->listen_port,
                           strerror(-rc));
                return rc;
        }
        return 0;
}

static void final_flush(struct kurz_service *s)
{
        for (unsigned i = 0; i < kurz_http_server_threads(s->http); i++)
                flush_thread(s, i);
}

int kurz_service_run(const struct kurz_config *cfg)
{
        struct kurz_service s = {0};
        struct main_loop ml = {0};
        enum kurz_log_level lvl;
        char nbuf[16];
        int rc;

        if (kurz_log_parse_level(cfg->log_level, &lvl) == 0)
                kurz_log_set_level(lvl);
        signal(SIGPIPE, SIG_IGN);
        /* libuv reads the pool size once, at first use. */
        snprintf(nbuf, sizeof(nbuf), "%u", cfg->store_threads);
        setenv("UV_THREADPOOL_SIZE", nbuf, 0);

        rc = service_open(&s, cfg);
        if (rc < 0)
                goto out_free;
        uv_loop_init(&ml.loop);
        uv_signal_init(&ml.loop, &ml.sigterm);
        uv_signal_init(&ml.loop, &ml.sigint);
        ml.sigterm.data = ml.sigint.data = &ml;
        uv_signal_start(&ml.sigterm, on_signal, SIGTERM);
        uv_signal_start(&ml.sigint, on_signal, SIGINT);
        rc = kurz_http_server_start(s.http);
        if (rc < 0) {
                kurz_error("cannot start the HTTP loops: %s", strerror(-rc));
                goto out_loop;
        }
        uv_timer_init(&ml.loop, &ml.flush);
        uv_timer_init(&ml.loop, &ml.cleanup);
        uv_timer_init(&ml.loop, &ml.reclaim);
        ml.flush.data = ml.cleanup.data = ml.reclaim.data = &s;
        uv_timer_start(&ml.flush, flush_tick, cfg->click_flush_ms, cfg->click_flush_ms);
        /* Expiry cleanup is a write: the create role (or all) runs it; lookup
         * and stats processes only read, and flush the clicks they count. */
        if (cfg->cleanup_interval_ms &&
            (cfg->role_id == KURZ_ROLE_ALL || cfg->role_id == KURZ_ROLE_CREATE))
                uv_timer_start(&ml.cleanup, cleanup_tick, 1000, cfg->cleanup_interval_ms);
        uv_timer_start(&ml.reclaim, reclaim_tick, 1000, 1000);
        atomic_store(&s.last_flush_s, kurz_api_now_s());

        printf("kurz: listening on http://%s%s%s:%u (role %s, %u threads, store %s in %s)\n",
               strchr(cfg->listen_host, ':') ? "[" : "", cfg->listen_host,
               strchr(cfg->listen_host, ':') ? "]" : "", kurz_http_server_port(s.http), cfg->role,
               cfg->threads, s.store->name, cfg->data_dir);
        fflush(stdout);

        uv_run(&ml.loop, UV_RUN_DEFAULT);

        kurz_info("signal %d: stopping (grace %llu ms)", ml.signum,
                  (unsigned long long)cfg->shutdown_grace_ms);
        kurz_http_server_stop(s.http, (unsigned)cfg->shutdown_grace_ms);
        final_flush(&s);
        rc = 0;
out_loop:
        uv_walk(&ml.loop, close_walk, NULL);
        uv_run(&ml.loop, UV_RUN_DEFAULT);
        uv_loop_close(&ml.loop);
out_free:
        service_free(&s); /* stops the writer: drains queued flushes first */
        if (rc == 0)
                kurz_info("stopped cleanly");
        return rc < 0 ? 1 : 0;
}

/* --- tests and fuzzing --- */

int kurz_service_test_start(const struct kurz_config *cfg, struct kurz_store *store,
                            struct kurz_service **out)
{
        struct kurz_service *s;
        int rc;

        *out = NULL;
        s = calloc(1, sizeof(*s));
        if (!s) {
                store->ops->close(store);
                return -ENOMEM;
        }
        s->store = store; /* service_open() sees it and opens no other */
        rc = service_open(s, cfg);
        if (rc < 0)
                goto out_free_service;
        rc = kurz_http_server_start(s->http);
        if (rc < 0)
                goto out_free_service;
        atomic_store(&s->last_flush_s, kurz_api_now_s());
        *out = s;
        return 0;

out_free_service:
        service_free(s);
        free(s);
        return rc;
}

struct kurz_http_server *kurz_service_test_http(struct kurz_service *s)
{
        return s->http;
}

void kurz_service_test_tick(struct kurz_service *s)
{
        post_flushes(s);
        kurz_writer_job(s->writer, cleanup_fn, cleanup_done, s);
        kurz_qsbr_reclaim(s->qsbr);
}

void kurz_service_test_stop(struct kurz_service *s)
{
        if (!s)
                return;
        kurz_http_server_stop(s->http, (unsigned)s->cfg->shutdown_grace_ms);
        final_flush(s);
        service_free(s);
        free(s);
}
