/* api/admin.c - the management API behind admin keys: DELETE
 * /api/v1/urls/{code} and GET /api/v1/urls (list). Keys are checked against
 * the SHA-256 hashes in the store; the delete runs on the writer thread and
 * drops the L1 entry before the client hears back, so a deleted code stops
 * redirecting at once. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "cache/l2.h"
#include "util/json.h"

#define EUNAUTH (-EACCES)

struct admin_job {
        struct kurz_service *s;
        struct kurz_http_deferred *d;
        char key_hex[65];
        char code[KURZ_CODE_MAX + 1];
        size_t code_len;
        size_t limit;
        int rc;
        struct kurz_link *links;
};

static void unauthorized(struct kurz_service *s, struct kurz_http_exchange *x,
                         enum kurz_route route)
{
        struct kurz_http_header h = {KURZ_STR_LIT("WWW-Authenticate"),
                                     KURZ_STR_LIT("Bearer realm=\"kurz\"")};

        kurz_api_error(s, x, route, 401, "UNAUTHORIZED",
                       "a valid admin API key is required (Authorization: Bearer <key>)", NULL, &h,
                       1);
}

static void store_failed(struct kurz_service *s, struct kurz_http_exchange *x,
                         enum kurz_route route)
{
        struct kurz_http_header h = {KURZ_STR_LIT("Retry-After"), KURZ_STR_LIT("1")};

        kurz_metrics_add(s->metrics, KURZ_METRICS_SHARED, KURZ_C_STORE_ERROR, 1);
        kurz_api_error(s, x, route, 503, "SERVICE_UNAVAILABLE",
                       "the link store is unavailable; retry shortly", NULL, &h, 1);
}

/* Writer thread: check the key, delete, then invalidate L1 (after the commit,
 * so a racing miss either read the link before it and is refused by the
 * invalidation sequence, or reads after it and finds nothing). */
static int delete_fn(struct kurz_store *st, void *arg)
{
        struct admin_job *j = arg;
        int rc = st->ops->key_check(st, j->key_hex);

        if (rc == KURZ_E_NOTFOUND)
                return EUNAUTH;
        if (rc < 0)
                return rc;
        rc = st->ops->remove(st, j->code, j->code_len);
        if (rc == 0 || rc == KURZ_E_NOTFOUND) {
                /* L2 before L1: a miss that starts after the L1 invalidation
                 * must not find the link in L2 (tombstone + DEL, then a
                 * publish that drops it from every process's L1). */
                if (j->s->l2)
                        kurz_l2_invalidate(j->s->l2, j->code, j->code_len);
                kurz_l1_invalidate(j->s->l1, (struct kurz_str){j->code, j->code_len});
        }
        return rc;
}

static void delete_reply(struct kurz_http_exchange *x, void *arg)
{
        struct admin_job *j = arg;
        struct kurz_service *s = j->s;
        struct kurz_buf b = {0};

        if (j->rc == 0) {
                kurz_buf_puts(&b, "{\"success\":true,\"shortCode\":");
                kurz_json_escape(&b, j->code, j->code_len);
                kurz_buf_puts(&b, ",\"message\":\"deleted\",\"errorCode\":null}");
                kurz_api_json(s, x, KURZ_ROUTE_DELETE, 200, &b, NULL, 0);
        } else if (j->rc == EUNAUTH) {
                unauthorized(s, x, KURZ_ROUTE_DELETE);
        } else if (j->rc == KURZ_E_NOTFOUND) {
                kurz_api_error(s, x, KURZ_ROUTE_DELETE, 404, "URL_NOT_FOUND", "short URL not found",
                               ",\"found\":false", NULL, 0);
        } else {
                store_failed(s, x, KURZ_ROUTE_DELETE);
        }
        kurz_buf_free(&b);
        free(j);
}

static void delete_done(void *arg, int rc)
{
        struct admin_job *j = arg;

        j->rc = rc;
        kurz_http_resume(j->d, delete_reply, j);
}

void kurz_api_delete(struct kurz_service *s, struct kurz_http_exchange *x, struct kurz_str code)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        struct admin_job *j = calloc(1, sizeof(*j));

        if (!j) {
                store_failed(s, x, KURZ_ROUTE_DELETE);
                return;
        }
        if (!kurz_api_bearer_hash(req, j->key_hex)) {
                free(j);
                unauthorized(s, x, KURZ_ROUTE_DELETE);
                return;
        }
        j->s = s;
        j->code_len = code.len;
        memcpy(j->code, code.p, code.len);
        j->d = kurz_http_defer(x);
        if (kurz_writer_job(s->writer, delete_fn, delete_done, j) < 0) {
                j->rc = KURZ_E_UNAVAILABLE;
                kurz_http_resume(j->d, delete_reply, j);
        }
}

static void list_work(void *arg)
{
        struct admin_job *j = arg;
        struct kurz_store *st = j->s->store;

        j->rc = st->ops->key_check(st, j->key_hex);
        if (j->rc == KURZ_E_NOTFOUND) {
                j->rc = EUNAUTH;
                return;
        }
        if (j->rc < 0)
                return;
        j->rc = st->ops->list(st, j->code, j->limit, &j->links);
}

static void list_done(struct kurz_http_exchange *x, void *arg)
{
        struct admin_job *j = arg;
        struct kurz_service *s = j->s;
        const struct kurz_http_request *req = kurz_http_request(x);
        struct kurz_buf b = {0}, base = {0};
        int rc = 0;

        if (j->rc == EUNAUTH) {
                unauthorized(s, x, KURZ_ROUTE_LIST);
                goto out;
        }
        if (j->rc < 0) {
                store_failed(s, x, KURZ_ROUTE_LIST);
                goto out;
        }
        kurz_api_base_url(s, req, &base);
        rc |= kurz_buf_append(&base, "/", 1);
        rc |= kurz_buf_puts(&b, "{\"success\":true,\"links\":[");
        for (int i = 0; i < j->rc; i++) {
                struct kurz_link *l = &j->links[i];
                size_t blen = base.len;

                rc |= kurz_buf_puts(&b, i ? ",{\"shortCode\":" : "{\"shortCode\":");
                rc |= kurz_json_escape(&b, l->code, strlen(l->code));
                rc |= kurz_buf_puts(&b, ",\"shortUrl\":");
                rc |= kurz_buf_puts(&base, l->code);
                rc |= kurz_json_escape(&b, base.p, base.len);
                base.len = blen;
                rc |= kurz_buf_puts(&b, ",\"originalUrl\":");
                rc |= kurz_json_escape(&b, l->url, l->url_len);
                rc |= kurz_buf_puts(&b, ",\"createdAt\":");
                rc |= kurz_json_time(&b, l->created_at);
                rc |= kurz_buf_puts(&b, ",\"expiresAt\":");
                rc |= kurz_json_time(&b, l->expires_at);
                rc |= kurz_buf_printf(&b, ",\"totalClicks\":%" PRId64 "}", l->clicks);
        }
        rc |= kurz_buf_puts(&b, "],\"next\":");
        if (j->rc > 0 && (size_t)j->rc == j->limit)
                rc |= kurz_json_escape(&b, j->links[j->rc - 1].code,
                                       strlen(j->links[j->rc - 1].code));
        else
                rc |= kurz_buf_puts(&b, "null");
        rc |= kurz_buf_puts(&b, "}");
        if (rc)
                kurz_api_error(s, x, KURZ_ROUTE_LIST, 500, "INTERNAL_SERVER_ERROR", "out of memory",
                               NULL, NULL, 0);
        else
                kurz_api_json(s, x, KURZ_ROUTE_LIST, 200, &b, NULL, 0);
out:
        if (j->rc > 0)
                kurz_store_links_free(j->links, (size_t)j->rc);
        kurz_buf_free(&b);
        kurz_buf_free(&base);
        free(j);
}

/* Finds key=value in a query string; codes and numbers need no decoding. */
static struct kurz_str query_get(struct kurz_str q, const char *key)
{
        size_t klen = strlen(key), i = 0;

        while (i < q.len) {
                size_t end = i;
                while (end < q.len && q.p[end] != '&')
                        end++;
                if (end - i > klen && memcmp(q.p + i, key, klen) == 0 && q.p[i + klen] == '=')
                        return (struct kurz_str){q.p + i + klen + 1, end - i - klen - 1};
                i = end + 1;
        }
        return (struct kurz_str){NULL, 0};
}

void kurz_api_list(struct kurz_service *s, struct kurz_http_exchange *x)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        struct kurz_str after = query_get(req->query, "after");
        struct kurz_str lim = query_get(req->query, "limit");
        struct admin_job *j;
        size_t limit = 100;

        if (after.len && !kurz_code_syntax_ok(after)) {
                kurz_api_error(s, x, KURZ_ROUTE_LIST, 400, "INVALID_INPUT",
                               "after must be a short code", NULL, NULL, 0);
                return;
        }
        if (lim.len) {
                limit = 0;
                for (size_t i = 0; i < lim.len; i++) {
                        if (lim.p[i] < '0' || lim.p[i] > '9' || limit > 1000) {
                                limit = 0;
                                break;
                        }
                        limit = limit * 10 + (size_t)(lim.p[i] - '0');
                }
                if (limit == 0 || limit > 1000) {
                        kurz_api_error(s, x, KURZ_ROUTE_LIST, 400, "INVALID_INPUT",
                                       "limit must be 1..1000", NULL, NULL, 0);
                        return;
                }
        }
        j = calloc(1, sizeof(*j));
        if (!j) {
                store_failed(s, x, KURZ_ROUTE_LIST);
                return;
        }
        if (!kurz_api_bearer_hash(req, j->key_hex)) {
                free(j);
                unauthorized(s, x, KURZ_ROUTE_LIST);
                return;
        }
        j->s = s;
        memcpy(j->code, after.p ? after.p : "", after.len);
        j->limit = limit;
        if (kurz_http_offload(x, list_work, list_done, j) < 0) {
                free(j);
                store_failed(s, x, KURZ_ROUTE_LIST);
        }
}
