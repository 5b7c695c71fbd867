/* api/api_int.h - what the handler files of src/api share: the service
 * context and response helpers. Not for use outside src/api. */
#ifndef KURZ_API_API_INT_H
#define KURZ_API_API_INT_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cache/l1.h"
#include "config/config.h"
#include "http/server.h"
#include "ids/codegen.h"
#include "limit/clientip.h"
#include "limit/ratelimit.h"
#include "metrics/metrics.h"
#include "stats/clicks.h"
#include "store/store.h"
#include "store/writer.h"
#include "util/buf.h"
#include "util/qsbr.h"
#include "util/validate.h"

struct kurz_service {
        const struct kurz_config *cfg;
        struct kurz_store *store;
        struct kurz_writer *writer;
        struct kurz_codegen *codegen;
        struct kurz_qsbr *qsbr;
        struct kurz_l1 *l1;
        struct kurz_ratelimit *create_limit;
        struct kurz_ratelimit *read_limit;
        struct kurz_ratelimit *notfound_limit; /* 404s per minute per client, or NULL */
        struct kurz_api_blocklist *blocked;    /* clients over notfound_limit */
        struct kurz_proxies *proxies;
        struct kurz_clicks *clicks;
        struct kurz_metrics *metrics;
        struct kurz_http_server *http;
        struct kurz_redis *redis;       /* --redis / --redis-cluster, or NULL (api/fleet.h) */
        struct kurz_l2 *l2;             /* the Redis cache tier, or NULL */
        struct kurz_api_flight *flight; /* single flight of redirect misses */
        bool has_base_url;
        struct kurz_url_parts base_parts; /* of cfg->base_url */
        char base_url[1024];              /* cfg->base_url without trailing '/' */
        _Atomic int64_t last_flush_s;     /* unix time of the last click flush */
        _Atomic int inflight_flushes;
};

/* --- respond.c --- */

/* Sends a JSON error {"success":false,"message","errorCode"} plus the extra
 * JSON members in `extra` (already serialized, starting with a comma, or
 * NULL). Records metrics for route. */
void kurz_api_error(struct kurz_service *s, struct kurz_http_exchange *x, enum kurz_route route,
                    int status, const char *error_code, const char *message, const char *extra,
                    const struct kurz_http_header *headers, size_t nheaders);
/* Sends a JSON body (status, body taken from b) and records metrics. */
void kurz_api_json(struct kurz_service *s, struct kurz_http_exchange *x, enum kurz_route route,
                   int status, const struct kurz_buf *b, const struct kurz_http_header *headers,
                   size_t nheaders);
/* 405 with Allow. */
void kurz_api_method_not_allowed(struct kurz_service *s, struct kurz_http_exchange *x,
                                 enum kurz_route route, const char *allow);
/* Writes the public base URL for this request into out (no trailing '/'):
 * --base-url, else "http://" + Host header (sanitized). */
void kurz_api_base_url(struct kurz_service *s, const struct kurz_http_request *req,
                       struct kurz_buf *out);
/* The client's IP as text (trusted proxies honoured). */
void kurz_api_client_ip(struct kurz_service *s, const struct kurz_http_request *req,
                        char out[KURZ_IP_STRLEN]);
/* True when the request may proceed under limiter rl; otherwise answers 429
 * and returns false. */
bool kurz_api_rate_ok(struct kurz_service *s, struct kurz_http_exchange *x,
                      struct kurz_ratelimit *rl, enum kurz_route route);
/* Code enumeration: clients that draw more than cfg->max_404_per_minute 404s
 * from the redirect and link routes get 429 on every lookup for
 * KURZ_API_BLOCK_MS after the 404 that crossed the limit. */
#define KURZ_API_BLOCK_MS 60000u
/* A table of blocked clients (fixed size, lock-free; a newly blocked client
 * may evict an older one that hashes to its slot). NULL on ENOMEM; free with
 * kurz_api_blocklist_free(). */
struct kurz_api_blocklist *kurz_api_blocklist_new(void);
void kurz_api_blocklist_free(struct kurz_api_blocklist *b); /* NULL is a no-op */
/* Before a lookup: true when the client may look codes up; otherwise answers
 * 429 with Retry-After and returns false. Costs one atomic load while nobody
 * is blocked. Loop thread of x. */
bool kurz_api_lookup_allowed(struct kurz_service *s, struct kurz_http_exchange *x,
                             enum kurz_route route);
/* Before answering a lookup 404: counts it for the client. True when the
 * caller should answer the 404; false when this 404 crossed the limit (the
 * client is now blocked and x was answered 429). Loop thread of x. */
bool kurz_api_count_404(struct kurz_service *s, struct kurz_http_exchange *x,
                        enum kurz_route route);
/* Unix seconds now. */
int64_t kurz_api_now_s(void);
/* Milliseconds of the monotonic clock. */
uint64_t kurz_api_now_ms(void);
/* True when the Authorization header carries a well-formed Bearer token;
 * writes the SHA-256 hex of the token into hex (65 bytes). */
bool kurz_api_bearer_hash(const struct kurz_http_request *req, char hex[65]);

/* --- create.c: the create path the JSON API and the web form share --- */

/* Which input a refused create is about (to show the error next to it). */
enum kurz_api_field {
        KURZ_API_FIELD_NONE = 0,
        KURZ_API_FIELD_URL,
        KURZ_API_FIELD_BASE,
        KURZ_API_FIELD_ALIAS,
        KURZ_API_FIELD_EXPIRY,
};

/* A create request, already taken apart. Every slice is borrowed for the
 * kurz_api_create_run() call only; p == NULL means absent. */
struct kurz_api_create_in {
        struct kurz_str url;  /* required */
        struct kurz_str base; /* baseUrl of the short URL */
        struct kurz_str alias;
        struct kurz_str expires_at; /* RFC 3339 */
        int64_t expires_in;         /* seconds, when has_expires_in */
        bool has_expires_in;
};

/* The outcome of a create. Borrowed by the callback for its duration only. */
struct kurz_api_create_out {
        int status;                /* 201, 400, 409, 500 or 503 */
        const char *error_code;    /* NULL on success, else e.g. "ALIAS_TAKEN" */
        const char *message;       /* for API clients; NULL on success */
        enum kurz_api_field field; /* what a 400 or 409 is about */
        unsigned retry_after;      /* seconds for a Retry-After header, 0 = none */
        /* On success: */
        struct kurz_str url, short_url, code;
        int64_t created_at, expires_at; /* unix seconds, 0 = never */
        bool existing;                  /* the same URL was already shortened */
};

/* Called exactly once on x's loop thread; must answer x. */
typedef void (*kurz_api_create_fn)(struct kurz_service *s, struct kurz_http_exchange *x,
                                   const struct kurz_api_create_out *out, void *arg);

/* Validates in (the rules of POST /api/v1/create/shorten), hands the link to
 * the writer and calls fin after the commit that holds it returned (L1 and L2
 * filled), or at once (before returning) when in is refused. The caller has
 * already applied the create rate limit. Loop thread of x. */
void kurz_api_create_run(struct kurz_service *s, struct kurz_http_exchange *x,
                         const struct kurz_api_create_in *in, kurz_api_create_fn fin, void *arg);

/* --- handlers --- */
void kurz_api_redirect(struct kurz_service *s, struct kurz_http_exchange *x, struct kurz_str code);
void kurz_api_link_get(struct kurz_service *s, struct kurz_http_exchange *x, struct kurz_str code);
void kurz_api_create(struct kurz_service *s, struct kurz_http_exchange *x);
void kurz_api_delete(struct kurz_service *s, struct kurz_http_exchange *x, struct kurz_str code);
void kurz_api_list(struct kurz_service *s, struct kurz_http_exchange *x);
void kurz_api_health(struct kurz_service *s, struct kurz_http_exchange *x, bool deep);
void kurz_api_metrics(struct kurz_service *s, struct kurz_http_exchange *x);
/* qr.c: GET /api/v1/create/qr */
void kurz_api_qr(struct kurz_service *s, struct kurz_http_exchange *x);
/* ui.c: the web pages (HTML; JSON only for 405 and lookup rate limits) */
void kurz_api_ui_home(struct kurz_service *s, struct kurz_http_exchange *x);   /* GET / */
void kurz_api_ui_create(struct kurz_service *s, struct kurz_http_exchange *x); /* POST / */
/* GET /{code}+ */
void kurz_api_ui_preview(struct kurz_service *s, struct kurz_http_exchange *x,
                         struct kurz_str code);
/* GET /stats/{code} */
void kurz_api_ui_stats(struct kurz_service *s, struct kurz_http_exchange *x, struct kurz_str code);
/* GET /stats (?code=C redirects to /stats/C) */
void kurz_api_ui_platform(struct kurz_service *s, struct kurz_http_exchange *x);
/* GET /static/<name>: true when name is an asset (x answered), else false. */
bool kurz_api_ui_asset(struct kurz_service *s, struct kurz_http_exchange *x, struct kurz_str name);
/* ui_assets.c: appends the <link> and <script> tags of the versioned assets. */
int kurz_api_ui_asset_links(struct kurz_buf *b);
/* stats.c: GET /api/v1/stats/url/{code} and GET /api/v1/stats/platform. */
void kurz_api_stats_link(struct kurz_service *s, struct kurz_http_exchange *x,
                         struct kurz_str code);
void kurz_api_stats_platform(struct kurz_service *s, struct kurz_http_exchange *x);
#endif
