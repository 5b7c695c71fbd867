/* api/create.c - POST /api/v1/create/shorten. Validates on the loop thread,
 * hands the link to the store's writer (group commit) and answers 201 only
 * after the commit that holds it returned; then fills L1 (write-through).
 * The web form (api/ui.c) creates through the same kurz_api_create_run(). */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "api/fleet.h"
#include "cache/l2.h"
#include "redis/client.h"
#include "util/hash.h"
#include "util/json.h"

#define MAX_EXPIRY_S (100LL * 366 * 86400) /* a century is forever enough */

struct create_job {
        struct kurz_writer_create wc;
        struct kurz_service *s;
        struct kurz_http_deferred *d;
        kurz_api_create_fn fin;
        void *fin_arg;
        char *url;  /* owned */
        char *base; /* owned: the base of shortUrl */
        char alias[KURZ_CODE_MAX + 1];
};

static void bad(struct kurz_service *s, struct kurz_http_exchange *x, const char *msg)
{
        kurz_api_error(s, x, KURZ_ROUTE_CREATE, 400, "INVALID_INPUT", msg, NULL, NULL, 0);
}

static void job_free(struct create_job *j)
{
        free(j->url);
        free(j->base);
        free(j);
}

/* Answers fin with a refusal. */
static void refuse(struct kurz_service *s, struct kurz_http_exchange *x, kurz_api_create_fn fin,
                   void *arg, int status, const char *code, const char *msg,
                   enum kurz_api_field field)
{
        struct kurz_api_create_out o = {0};

        o.status = status;
        o.error_code = code;
        o.message = msg;
        o.field = field;
        fin(s, x, &o, arg);
}

static void create_done(struct kurz_http_exchange *x, void *arg)
{
        struct create_job *j = arg;
        struct kurz_service *s = j->s;
        struct kurz_create *c = &j->wc.item;
        struct kurz_api_create_out o = {0};
        struct kurz_buf u = {0};
        int rc = 0;

        switch (c->status) {
        case KURZ_CREATE_NEW:
        case KURZ_CREATE_EXISTING:
                break;
        case KURZ_CREATE_ALIAS_TAKEN:
                refuse(s, x, j->fin, j->fin_arg, 409, "ALIAS_TAKEN",
                       "this alias is already taken; choose another", KURZ_API_FIELD_ALIAS);
                goto out;
        default:
                kurz_metrics_add(s->metrics, KURZ_METRICS_SHARED, KURZ_C_STORE_ERROR, 1);
                if (c->err == -EAGAIN || c->err == KURZ_E_UNAVAILABLE || c->err == -EBUSY) {
                        o.status = 503;
                        o.error_code = "SERVICE_UNAVAILABLE";
                        o.message = "the link store cannot take writes now; retry shortly";
                        o.retry_after = 1;
                        j->fin(s, x, &o, j->fin_arg);
                } else {
                        refuse(s, x, j->fin, j->fin_arg, 500, "URL_GENERATION_FAILED",
                               "could not generate a short code", KURZ_API_FIELD_NONE);
                }
                goto out;
        }
        if (c->status == KURZ_CREATE_NEW)
                kurz_metrics_add(s->metrics, KURZ_METRICS_SHARED, KURZ_C_CREATED, 1);
        {
                struct kurz_str code = kurz_str_c(c->code);
                kurz_l1_put(s->l1, code, (struct kurz_str){j->url, c->url_len}, c->out_expires_at,
                            kurz_l1_seq(s->l1, code), kurz_api_now_ms());
                /* Write-through to L2 too, in the background. */
                if (s->l2)
                        kurz_l2_put_async(s->l2, code.p, code.len, j->url, c->url_len,
                                          c->out_expires_at, 0, kurz_redis_now_ms());
        }
        rc |= kurz_buf_puts(&u, j->base);
        rc |= kurz_buf_puts(&u, "/");
        rc |= kurz_buf_puts(&u, c->code);
        if (rc) {
                refuse(s, x, j->fin, j->fin_arg, 500, "INTERNAL_SERVER_ERROR", "out of memory",
                       KURZ_API_FIELD_NONE);
                goto out;
        }
        o.status = 201;
        o.url = (struct kurz_str){j->url, c->url_len};
        o.short_url = (struct kurz_str){u.p, u.len};
        o.code = kurz_str_c(c->code);
        o.created_at = c->out_created_at;
        o.expires_at = c->out_expires_at;
        o.existing = c->status == KURZ_CREATE_EXISTING;
        j->fin(s, x, &o, j->fin_arg);
out:
        kurz_buf_free(&u);
        job_free(j);
}

/* The JSON API's answer to a create. */
static void json_fin(struct kurz_service *s, struct kurz_http_exchange *x,
                     const struct kurz_api_create_out *o, void *arg)
{
        struct kurz_buf b = {0};
        int rc = 0;

        (void)arg;
        if (o->error_code) {
                struct kurz_http_header h = {KURZ_STR_LIT("Retry-After"), KURZ_STR_LIT("1")};
                char ra[16];

                if (o->retry_after > 1) {
                        snprintf(ra, sizeof(ra), "%u", o->retry_after);
                        h.value = kurz_str_c(ra);
                }
                kurz_api_error(s, x, KURZ_ROUTE_CREATE, o->status, o->error_code, o->message, NULL,
                               &h, o->retry_after ? 1 : 0);
                return;
        }
        rc |= kurz_buf_puts(&b, "{\"originalUrl\":");
        rc |= kurz_json_escape(&b, o->url.p, o->url.len);
        rc |= kurz_buf_puts(&b, ",\"shortUrl\":");
        rc |= kurz_json_escape(&b, o->short_url.p, o->short_url.len);
        rc |= kurz_buf_puts(&b, ",\"shortCode\":");
        rc |= kurz_json_escape(&b, o->code.p, o->code.len);
        rc |= kurz_buf_puts(&b, ",\"success\":true,\"message\":null,\"errorCode\":null,"
                                "\"createdAt\":");
        rc |= kurz_json_time(&b, o->created_at);
        rc |= kurz_buf_puts(&b, ",\"expiresAt\":");
        rc |= kurz_json_time(&b, o->expires_at);
        rc |= kurz_buf_puts(&b, "}");
        if (rc) {
                kurz_api_error(s, x, KURZ_ROUTE_CREATE, 500, "INTERNAL_SERVER_ERROR",
                               "out of memory", NULL, NULL, 0);
        } else {
                struct kurz_http_header h = {KURZ_STR_LIT("Location"), o->short_url};
                kurz_api_json(s, x, KURZ_ROUTE_CREATE, 201, &b, &h, 1);
        }
        kurz_buf_free(&b);
}

/* Writer thread: the commit returned; finish on the exchange's loop. */
static void writer_done(struct kurz_writer_create *wc)
{
        struct create_job *j = (struct create_job *)wc;

        kurz_http_resume(j->d, create_done, j);
}

/* Reads an optional string member; returns false (after answering 400) when
 * it is present but not a string. */
static bool opt_string(struct kurz_service *s, struct kurz_http_exchange *x, json_t *obj,
                       const char *key, const char **out, size_t *len)
{
        json_t *v = json_object_get(obj, key);
        char msg[96];

        *out = NULL;
        *len = 0;
        if (!v || json_is_null(v))
                return true;
        if (!json_is_string(v)) {
                snprintf(msg, sizeof(msg), "%s must be a string", key);
                bad(s, x, msg);
                return false;
        }
        *out = json_string_value(v);
        *len = json_string_length(v);
        return true;
}

/* Parses and validates baseUrl: an http(s) URL without query or fragment;
 * a trailing '/' is dropped. Returns a message when invalid. */
static const char *check_base(struct kurz_str b, struct kurz_url_parts *parts)
{
        const char *err = kurz_url_check(b, 1000, parts);

        if (err)
                return "baseUrl must be an http:// or https:// URL";
        if (memchr(b.p, '?', b.len) || memchr(b.p, '#', b.len))
                return "baseUrl must not have a query or fragment";
        return NULL;
}

/* Is the target u a link to this kurz itself (by --base-url or by the Host
 * header the client used)? Such links would redirect in a loop. */
static bool points_to_self(struct kurz_service *s, const struct kurz_http_request *req,
                           const struct kurz_url_parts *up)
{
        if (s->has_base_url && kurz_url_same_origin(up, &s->base_parts))
                return true;
        if (req->host.len) {
                char tmp[300];
                int n = snprintf(tmp, sizeof(tmp), "http://%.*s/", (int)req->host.len, req->host.p);
                struct kurz_url_parts hp;
                if (n > 0 && (size_t)n < sizeof(tmp) &&
                    !kurz_url_check((struct kurz_str){tmp, (size_t)n}, sizeof(tmp), &hp) &&
                    kurz_str_ieq(hp.host, up->host) &&
                    (hp.port == up->port || (hp.port == 80 && up->port == 443)))
                        return true;
        }
        return false;
}

void kurz_api_create_run(struct kurz_service *s, struct kurz_http_exchange *x,
                         const struct kurz_api_create_in *in, kurz_api_create_fn fin, void *arg)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        struct kurz_str url = in->url, alias = in->alias;
        struct kurz_url_parts up, bp;
        const char *err;
        struct create_job *j = NULL;
        struct kurz_buf basebuf = {0};
        int64_t now = kurz_api_now_s(), expires_at;
        bool explicit_expiry = false;
        enum kurz_api_field field = KURZ_API_FIELD_URL;
        int rc;

        if (!url.p) {
                err = "originalUrl is required";
                goto out_bad;
        }
        if (memchr(url.p, '\0', url.len)) {
                err = "originalUrl must not contain NUL characters";
                goto out_bad;
        }
        err = kurz_url_check(url, KURZ_URL_MAX, &up);
        if (err)
                goto out_bad;
        if (points_to_self(s, req, &up)) {
                err = "originalUrl must not point to this URL shortener";
                goto out_bad;
        }
        if (in->base.p) {
                struct kurz_str bs = in->base;
                field = KURZ_API_FIELD_BASE;
                if (memchr(bs.p, '\0', bs.len)) {
                        err = "baseUrl is invalid";
                        goto out_bad;
                }
                if ((err = check_base(bs, &bp)))
                        goto out_bad;
                if (kurz_url_same_origin(&up, &bp)) {
                        err = "originalUrl must not point to this URL shortener";
                        field = KURZ_API_FIELD_URL;
                        goto out_bad;
                }
                while (bs.len && bs.p[bs.len - 1] == '/')
                        bs.len--;
                kurz_buf_append(&basebuf, bs.p, bs.len);
        } else {
                kurz_api_base_url(s, req, &basebuf);
        }
        if (alias.p) {
                field = KURZ_API_FIELD_ALIAS;
                if (memchr(alias.p, '\0', alias.len)) {
                        err = "alias is invalid";
                        goto out_bad;
                }
                if ((err = kurz_alias_check(alias)))
                        goto out_bad;
        }
        field = KURZ_API_FIELD_EXPIRY;
        if (in->has_expires_in && in->expires_at.p) {
                err = "give either expiresAt or expiresIn, not both";
                goto out_bad;
        }
        expires_at =
            s->cfg->default_expiry_ms ? now + (int64_t)(s->cfg->default_expiry_ms / 1000) : 0;
        if (in->has_expires_in) {
                if (in->expires_in <= 0 || in->expires_in > MAX_EXPIRY_S) {
                        err = "expiresIn must be a positive whole number of seconds "
                              "(at most 100 years)";
                        goto out_bad;
                }
                /* Expiry is kept in whole seconds and now is rounded down:
                 * one second more keeps the link for at least expiresIn
                 * seconds (a link of expiresIn 1 made at x.999 would
                 * otherwise expire 1 ms later). */
                expires_at = now + in->expires_in + 1;
                explicit_expiry = true;
        } else if (in->expires_at.p) {
                int64_t t;
                if (kurz_time_parse_rfc3339(in->expires_at.p, in->expires_at.len, &t) < 0) {
                        err = "expiresAt must be an RFC 3339 date-time, e.g. "
                              "2030-01-01T00:00:00Z";
                        goto out_bad;
                }
                if (t <= now) {
                        err = "expiresAt must be in the future";
                        goto out_bad;
                }
                if (t - now > MAX_EXPIRY_S) {
                        err = "expiresAt is too far in the future (at most 100 years)";
                        goto out_bad;
                }
                expires_at = t;
                explicit_expiry = true;
        }

        j = calloc(1, sizeof(*j));
        if (!j || !(j->url = strndup(url.p, url.len)) || kurz_buf_append(&basebuf, "", 1) < 0)
                goto out_unavailable;
        j->base = basebuf.p;
        basebuf = (struct kurz_buf){0};
        j->s = s;
        j->fin = fin;
        j->fin_arg = arg;
        if (alias.p)
                memcpy(j->alias, alias.p, alias.len); /* <= 64: checked; NUL from calloc */
        j->wc.item.url = j->url;
        j->wc.item.url_len = url.len;
        j->wc.item.url_hash = kurz_hash(url.p, url.len);
        j->wc.item.alias = alias.p ? j->alias : NULL;
        j->wc.item.created_at = now;
        j->wc.item.expires_at = expires_at;
        j->wc.item.dedupe = !alias.p && !explicit_expiry;
        j->wc.done = writer_done;
        j->d = kurz_http_defer(x);
        rc = kurz_writer_create(s->writer, &j->wc);
        if (rc < 0) {
                /* Not queued: answer on this thread, as the deferral allows. */
                j->wc.item.status = KURZ_CREATE_FAILED;
                j->wc.item.err = -EAGAIN;
                kurz_http_resume(j->d, create_done, j);
        }
        return;

out_unavailable:
        if (j)
                job_free(j);
        kurz_buf_free(&basebuf);
        refuse(s, x, fin, arg, 503, "SERVICE_UNAVAILABLE", "out of memory", KURZ_API_FIELD_NONE);
        return;
out_bad:
        kurz_buf_free(&basebuf);
        refuse(s, x, fin, arg, 400, "INVALID_INPUT", err, field);
}

/* POST /api/v1/create/shorten, once the client's rate limit allowed it:
 * takes the JSON body apart and runs the shared create. */
static void create_checked(struct kurz_service *s, struct kurz_http_exchange *x)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        struct kurz_api_create_in in = {0};
        const char *url, *base, *alias, *exp_at;
        size_t url_len, base_len, alias_len, exp_at_len;
        json_error_t jerr;
        json_t *root = NULL, *exp_in;

        if (req->body.len == 0) {
                bad(s, x, "request body must be a JSON object with originalUrl");
                return;
        }
        root = json_loadb(req->body.p, req->body.len, JSON_REJECT_DUPLICATES, &jerr);
        /* Out of memory is not the client's fault: not a 400. jansson
         * leaves the error empty when its lexer cannot allocate. */
        if (!root && (json_error_code(&jerr) == json_error_out_of_memory || !jerr.text[0])) {
                kurz_api_error(s, x, KURZ_ROUTE_CREATE, 503, "SERVICE_UNAVAILABLE", "out of memory",
                               NULL, NULL, 0);
                return;
        }
        if (!root || !json_is_object(root)) {
                bad(s, x, "request body must be a JSON object with originalUrl");
                goto out;
        }
        if (!opt_string(s, x, root, "originalUrl", &url, &url_len) ||
            !opt_string(s, x, root, "baseUrl", &base, &base_len) ||
            !opt_string(s, x, root, "alias", &alias, &alias_len) ||
            !opt_string(s, x, root, "expiresAt", &exp_at, &exp_at_len))
                goto out;
        in.url = (struct kurz_str){url, url_len};
        in.base = (struct kurz_str){base, base_len};
        in.alias = (struct kurz_str){alias, alias_len};
        in.expires_at = (struct kurz_str){exp_at, exp_at_len};
        exp_in = json_object_get(root, "expiresIn");
        if (exp_in && !json_is_null(exp_in)) {
                /* Not a whole number: 0, which the shared check refuses. */
                in.has_expires_in = true;
                in.expires_in = json_is_integer(exp_in) ? json_integer_value(exp_in) : 0;
        }
        kurz_api_create_run(s, x, &in, json_fin, NULL); /* copies what it keeps */
out:
        json_decref(root);
}

void kurz_api_create(struct kurz_service *s, struct kurz_http_exchange *x)
{
        /* With Redis the limit is fleet-wide and checked on the blocking
         * pool; without, by this process inline. */
        kurz_api_create_limited(s, x, create_checked);
}
