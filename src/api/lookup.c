/* api/lookup.c - GET /{code} (the redirect, the product's hot path) and
 * GET /api/v1/urls/{code}. A code in L1 is answered inline on the loop thread
 * with no lock, allocation or syscall; a miss asks the store on the blocking
 * pool and fills L1 unless a delete raced it. When the pool is saturated the
 * excess gets a fast 503; a client drawing too many 404s gets 429. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "api/fleet.h"
#include "util/json.h"

struct lookup_job {
        struct kurz_service *s;
        uint64_t seq;
        size_t code_len;
        char code[KURZ_CODE_MAX + 1];
        int rc;
        bool head;
        bool leader; /* a redirect miss leading a single flight (api/fleet.h) */
        bool waiter; /* a copy of a leader's result for a request that waited */
        struct kurz_link link;
};

static void not_found(struct kurz_service *s, struct kurz_http_exchange *x, enum kurz_route route,
                      struct kurz_str code, bool expired)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        struct kurz_buf extra = {0};

        if (!kurz_api_count_404(s, x, route))
                return; /* too many: answered 429 */
        kurz_buf_puts(&extra, ",\"shortUrl\":");
        {
                struct kurz_buf u = {0};
                kurz_api_base_url(s, req, &u);
                kurz_buf_puts(&u, "/");
                kurz_buf_append(&u, code.p, code.len);
                kurz_json_escape(&extra, u.p ? u.p : "", u.len);
                kurz_buf_free(&u);
        }
        kurz_buf_puts(&extra, ",\"found\":false");
        kurz_api_error(s, x, route, 404, expired ? "URL_EXPIRED" : "URL_NOT_FOUND",
                       expired ? "short URL has expired" : "short URL not found",
                       extra.p ? extra.p : "", NULL, 0);
        kurz_buf_free(&extra);
}

/* Answers 302 for a live link and counts the click. url is borrowed. */
static void redirect(struct kurz_service *s, struct kurz_http_exchange *x, struct kurz_str code,
                     struct kurz_str url, int64_t expires_at, int64_t now_s)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        unsigned thread = req->thread;
        uint64_t start = req->start_ns;
        bool get = req->method == KURZ_HTTP_GET;
        char cc[64];
        struct kurz_http_header h[2] = {
            {KURZ_STR_LIT("Location"), url},
            {KURZ_STR_LIT("Cache-Control"), KURZ_STR_LIT("private, max-age=0")}};
        uint64_t max_age = s->cfg->redirect_max_age_ms / 1000;

        if (max_age) {
                if (expires_at && (uint64_t)(expires_at - now_s) < max_age)
                        max_age = (uint64_t)(expires_at - now_s);
                h[1].value.p = cc;
                h[1].value.len =
                    (size_t)snprintf(cc, sizeof(cc), "public, max-age=%" PRIu64, max_age);
        }
        if (get) {
                kurz_clicks_add(s->clicks, thread, code, now_s);
                kurz_metrics_add(s->metrics, thread, KURZ_C_CLICKS, 1);
        }
        kurz_http_respond(x, 302, h, 2, NULL, NULL, 0, false);
        kurz_metrics_request(s->metrics, thread, KURZ_ROUTE_REDIRECT, 302,
                             kurz_http_now_ns() - start);
}

static void unavailable(struct kurz_service *s, struct kurz_http_exchange *x, enum kurz_route route)
{
        struct kurz_http_header h = {KURZ_STR_LIT("Retry-After"), KURZ_STR_LIT("1")};

        kurz_metrics_add(s->metrics, KURZ_METRICS_SHARED, KURZ_C_STORE_ERROR, 1);
        kurz_api_error(s, x, route, 503, "SERVICE_UNAVAILABLE",
                       "the link store is unavailable; retry shortly", NULL, &h, 1);
}

static void lookup_work(void *arg);

/* The blocking pool has max_offload reads of this loop in flight: a fast
 * 503 now beats a slow answer after an unbounded queue (load shedding). */
static void overloaded(struct kurz_service *s, struct kurz_http_exchange *x, enum kurz_route route)
{
        struct kurz_http_header h = {KURZ_STR_LIT("Retry-After"), KURZ_STR_LIT("1")};

        kurz_metrics_add(s->metrics, kurz_http_request(x)->thread, KURZ_C_SHED, 1);
        kurz_api_error(s, x, route, 503, "SERVICE_UNAVAILABLE",
                       "the server is overloaded; retry shortly", NULL, &h, 1);
}

static void redirect_done(struct kurz_http_exchange *x, void *arg);

static void waiter_unavailable(struct kurz_http_exchange *x, void *arg)
{
        unavailable(arg, x, KURZ_ROUTE_REDIRECT);
}

/* Ends leader j's single flight: every request that waited for its read gets
 * a copy of the result, answered on its own loop thread. */
static void wake_waiters(struct lookup_job *j)
{
        struct kurz_api_flight_waiter *w =
            kurz_api_flight_finish(j->s, (struct kurz_str){j->code, j->code_len});

        while (w) {
                struct kurz_api_flight_waiter *next = w->next;
                struct lookup_job *c = malloc(sizeof(*c));

                if (c) {
                        *c = *j;
                        c->leader = false;
                        c->waiter = true;
                        c->link.url = NULL;
                        if (j->rc == 0 && !(c->link.url = strndup(j->link.url, j->link.url_len)))
                                c->rc = KURZ_E_UNAVAILABLE;
                        kurz_http_resume(w->d, redirect_done, c);
                } else {
                        kurz_http_resume(w->d, waiter_unavailable, j->s);
                }
                free(w);
                w = next;
        }
}

/* Runs the store read of j on the blocking pool and then done; answers 503
 * when that cannot be. Frees j unless it was handed over. */
static void offload_lookup(struct kurz_service *s, struct kurz_http_exchange *x,
                           enum kurz_route route, struct lookup_job *j,
                           void (*done)(struct kurz_http_exchange *x, void *arg))
{
        int rc = kurz_http_offload(x, lookup_work, done, j);

        if (rc == 0)
                return;
        if (j->leader) {
                j->rc = KURZ_E_UNAVAILABLE;
                wake_waiters(j);
        }
        free(j);
        if (rc == -EBUSY)
                overloaded(s, x, route);
        else
                unavailable(s, x, route);
}

static void lookup_work(void *arg)
{
        struct lookup_job *j = arg;

        if (j->leader) /* a redirect: L2 first when configured */
                j->rc = kurz_api_fleet_read(j->s, j->code, j->code_len, &j->link);
        else
                j->rc = j->s->store->ops->lookup(j->s->store, j->code, j->code_len, &j->link);
}

static void redirect_done(struct kurz_http_exchange *x, void *arg)
{
        struct lookup_job *j = arg;
        struct kurz_service *s = j->s;
        struct kurz_str code = {j->code, j->code_len};
        int64_t now_s = kurz_api_now_s();

        if (j->leader)
                wake_waiters(j);
        if (j->rc == 0) {
                struct kurz_str url = {j->link.url, j->link.url_len};
                bool expired = j->link.expires_at && j->link.expires_at <= now_s;

                if (expired) {
                        not_found(s, x, KURZ_ROUTE_REDIRECT, code, true);
                } else {
                        if (!j->waiter)
                                kurz_l1_put(s->l1, code, url, j->link.expires_at, j->seq,
                                            kurz_api_now_ms());
                        redirect(s, x, code, url, j->link.expires_at, now_s);
                }
                free(j->link.url);
        } else if (j->rc == KURZ_E_NOTFOUND) {
                if (!j->waiter)
                        kurz_l1_put_negative(s->l1, code, j->seq, kurz_api_now_ms());
                not_found(s, x, KURZ_ROUTE_REDIRECT, code, false);
        } else {
                unavailable(s, x, KURZ_ROUTE_REDIRECT);
        }
        free(j);
}

void kurz_api_redirect(struct kurz_service *s, struct kurz_http_exchange *x, struct kurz_str code)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        struct kurz_l1_hit hit;
        struct lookup_job *j;
        int64_t now_s;

        if (s->read_limit && !kurz_api_rate_ok(s, x, s->read_limit, KURZ_ROUTE_REDIRECT))
                return;
        if (!kurz_api_lookup_allowed(s, x, KURZ_ROUTE_REDIRECT))
                return;
        switch (kurz_l1_get(s->l1, code, req->start_ns / 1000000, &hit)) {
        case KURZ_L1_HIT:
                kurz_metrics_add(s->metrics, req->thread, KURZ_C_L1_HIT, 1);
                now_s = kurz_api_now_s();
                if (hit.expires_at && hit.expires_at <= now_s)
                        not_found(s, x, KURZ_ROUTE_REDIRECT, code, true);
                else
                        redirect(s, x, code, hit.url, hit.expires_at, now_s);
                return;
        case KURZ_L1_NEGATIVE:
                kurz_metrics_add(s->metrics, req->thread, KURZ_C_L1_NEGATIVE, 1);
                not_found(s, x, KURZ_ROUTE_REDIRECT, code, false);
                return;
        case KURZ_L1_MISS:
                break;
        }
        kurz_metrics_add(s->metrics, req->thread, KURZ_C_L1_MISS, 1);
        /* kurz_store_reads_total is counted where the store is really read
         * (kurz_api_fleet_read): L2 hits and coalesced misses do not. */
        j = calloc(1, sizeof(*j));
        if (!j)
                goto out_unavailable;
        j->s = s;
        j->seq = kurz_l1_seq(s->l1, code);
        j->code_len = code.len;
        memcpy(j->code, code.p, code.len);
        /* Single flight: a read of this code already in flight answers this
         * request too. */
        if (kurz_api_flight_join(s, x, code)) {
                free(j);
                return;
        }
        j->leader = true;
        offload_lookup(s, x, KURZ_ROUTE_REDIRECT, j, redirect_done);
        return;

out_unavailable:
        unavailable(s, x, KURZ_ROUTE_REDIRECT);
}

static void link_done(struct kurz_http_exchange *x, void *arg)
{
        struct lookup_job *j = arg;
        struct kurz_service *s = j->s;
        const struct kurz_http_request *req = kurz_http_request(x);
        struct kurz_str code = {j->code, j->code_len};
        struct kurz_buf b = {0}, u = {0};
        int rc = 0;

        if (j->rc == KURZ_E_NOTFOUND) {
                not_found(s, x, KURZ_ROUTE_LINK, code, false);
                goto out;
        }
        if (j->rc < 0) {
                unavailable(s, x, KURZ_ROUTE_LINK);
                goto out;
        }
        kurz_api_base_url(s, req, &u);
        rc |= kurz_buf_puts(&u, "/");
        rc |= kurz_buf_append(&u, j->code, j->code_len);
        rc |= kurz_buf_puts(&b, "{\"success\":true,\"originalUrl\":");
        rc |= kurz_json_escape(&b, j->link.url, j->link.url_len);
        rc |= kurz_buf_puts(&b, ",\"shortCode\":");
        rc |= kurz_json_escape(&b, j->code, j->code_len);
        rc |= kurz_buf_puts(&b, ",\"shortUrl\":");
        rc |= kurz_json_escape(&b, u.p, u.len);
        rc |= kurz_buf_puts(&b, ",\"createdAt\":");
        rc |= kurz_json_time(&b, j->link.created_at);
        rc |= kurz_buf_puts(&b, ",\"expiresAt\":");
        rc |= kurz_json_time(&b, j->link.expires_at);
        rc |= kurz_buf_printf(
            &b, ",\"expired\":%s,\"totalClicks\":%" PRId64 ",\"lastAccessAt\":",
            j->link.expires_at && j->link.expires_at <= kurz_api_now_s() ? "true" : "false",
            j->link.clicks);
        rc |= kurz_json_time(&b, j->link.last_access);
        rc |= kurz_buf_puts(&b, "}");
        if (rc)
                kurz_api_error(s, x, KURZ_ROUTE_LINK, 500, "INTERNAL_SERVER_ERROR", "out of memory",
                               NULL, NULL, 0);
        else
                kurz_api_json(s, x, KURZ_ROUTE_LINK, 200, &b, NULL, 0);
out:
        kurz_buf_free(&b);
        kurz_buf_free(&u);
        free(j->link.url);
        free(j);
}

void kurz_api_link_get(struct kurz_service *s, struct kurz_http_exchange *x, struct kurz_str code)
{
        struct lookup_job *j;

        if (!kurz_api_lookup_allowed(s, x, KURZ_ROUTE_LINK))
                return;
        j = calloc(1, sizeof(*j));
        if (!j)
                goto out_unavailable;
        j->s = s;
        j->code_len = code.len;
        memcpy(j->code, code.p, code.len);
        offload_lookup(s, x, KURZ_ROUTE_LINK, j, link_done);
        return;

out_unavailable:
        unavailable(s, x, KURZ_ROUTE_LINK);
}
