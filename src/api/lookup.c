/* api/lookup.c - GET /{code} (the redirect, the product's hot path) and
 * GET /api/v1/urls/{code}. A code in L1 is answered inline on the loop thread
 * with no lock, allocation or syscall; a miss asks the store on the blocking
 * pool and fills L1 unless a delete raced it. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "util/json.h"

struct lookup_job {
        struct kurz_service *s;
        uint64_t seq;
        size_t code_len;
        char code[KURZ_CODE_MAX + 1];
        int rc;
        bool head;
        struct kurz_link link;
};

static void not_found(struct kurz_service *s, struct kurz_http_exchange *x, enum kurz_route route,
                      struct kurz_str code, bool expired)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        struct kurz_buf extra = {0};

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
        struct kurz_http_header h[2] = {{KURZ_STR_LIT("Location"), url},
                                        {KURZ_STR_LIT("Cache-Control"),
                                         KURZ_STR_LIT("private, max-age=0")}};
        uint64_t max_age = s->cfg->redirect_max_age_ms / 1000;

        if (max_age) {
                if (expires_at && (uint64_t)(expires_at - now_s) < max_age)
                        max_age = (uint64_t)(expires_at - now_s);
                h[1].value.p = cc;
                h[1].value.len = (size_t)snprintf(cc, sizeof(cc), "public, max-age=%" PRIu64,
                                                  max_age);
        }
        if (get) {
                kurz_clicks_add(s->clicks, thread, code, now_s);
                kurz_metrics_add(s->metrics, thread, KURZ_C_CLICKS, 1);
        }
        kurz_http_respond(x, 302, h, 2, NULL, NULL, 0, false);
        kurz_metrics_request(s->metrics, thread, KURZ_ROUTE_REDIRECT, 302,
                             kurz_http_now_ns() - start);
}

static void unavailable(struct kurz_service *s, struct kurz_http_exchange *x,
                        enum kurz_route route)
{
        struct kurz_http_header h = {KURZ_STR_LIT("Retry-After"), KURZ_STR_LIT("1")};

        kurz_metrics_add(s->metrics, KURZ_METRICS_SHARED, KURZ_C_STORE_ERROR, 1);
        kurz_api_error(s, x, route, 503, "SERVICE_UNAVAILABLE",
                       "the link store is unavailable; retry shortly", NULL, &h, 1);
}

static void lookup_work(void *arg)
{
        struct lookup_job *j = arg;

        j->rc = j->s->store->ops->lookup(j->s->store, j->code, j->code_len, &j->link);
}

static void redirect_done(struct kurz_http_exchange *x, void *arg)
{
        struct lookup_job *j = arg;
        struct kurz_service *s = j->s;
        struct kurz_str code = {j->code, j->code_len};
        int64_t now_s = kurz_api_now_s();

        if (j->rc == 0) {
                struct kurz_str url = {j->link.url, j->link.url_len};
                bool expired = j->link.expires_at && j->link.expires_at <= now_s;

                if (expired) {
                        not_found(s, x, KURZ_ROUTE_REDIRECT, code, true);
                } else {
                        kurz_l1_put(s->l1, code, url, j->link.expires_at, j->seq,
                                    kurz_api_now_ms());
                        redirect(s, x, code, url, j->link.expires_at, now_s);
                }
                free(j->link.url);
        } else if (j->rc == KURZ_E_NOTFOUND) {
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
        kurz_metrics_add(s->metrics, req->thread, KURZ_C_STORE_READ, 1);
        j = calloc(1, sizeof(*j));
        if (!j)
                goto out_unavailable;
        j->s = s;
        j->seq = kurz_l1_seq(s->l1, code);
        j->code_len = code.len;
        memcpy(j->code, code.p, code.len);
        if (kurz_http_offload(x, lookup_work, redirect_done, j) < 0) {
                free(j);
                goto out_unavailable;
        }
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
        rc |= kurz_buf_printf(&b, ",\"expired\":%s,\"totalClicks\":%" PRId64 ",\"lastAccessAt\":",
                              j->link.expires_at && j->link.expires_at <= kurz_api_now_s()
                                  ? "true"
                                  : "false",
                              j->link.clicks);
        rc |= kurz_json_time(&b, j->link.last_access);
        rc |= kurz_buf_puts(&b, "}");
        if (rc)
                kurz_api_error(s, x, KURZ_ROUTE_LINK, 500, "INTERNAL_SERVER_ERROR",
                               "out of memory", NULL, NULL, 0);
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
        struct lookup_job *j = calloc(1, sizeof(*j));

        if (!j)
                goto out_unavailable;
        j->s = s;
        j->code_len = code.len;
        memcpy(j->code, code.p, code.len);
        if (kurz_http_offload(x, lookup_work, link_done, j) < 0) {
                free(j);
                goto out_unavailable;
        }
        return;

out_unavailable:
        unavailable(s, x, KURZ_ROUTE_LINK);
}
