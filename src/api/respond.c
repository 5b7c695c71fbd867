/* api/respond.c - the response helpers every handler shares: JSON errors in
 * the plan's shape, 405 with Allow, the base URL of short links, client
 * identity, rate limiting and the block list against code enumeration. */
#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_int.h"
#include "util/hash.h"
#include "util/json.h"

static const struct kurz_http_header json_nocache = {KURZ_STR_LIT("Cache-Control"),
                                                     KURZ_STR_LIT("no-store")};

void kurz_api_json(struct kurz_service *s, struct kurz_http_exchange *x, enum kurz_route route,
                   int status, const struct kurz_buf *b, const struct kurz_http_header *headers,
                   size_t nheaders)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        struct kurz_http_header h[8];
        size_t n = 0;
        unsigned thread = req->thread;
        uint64_t start = req->start_ns;

        for (size_t i = 0; i < nheaders && n < 7; i++)
                h[n++] = headers[i];
        h[n++] = json_nocache;
        kurz_http_respond(x, status, h, n, "application/json", b ? b->p : "", b ? b->len : 0,
                          false);
        kurz_metrics_request(s->metrics, thread, route, status, kurz_http_now_ns() - start);
}

void kurz_api_error(struct kurz_service *s, struct kurz_http_exchange *x, enum kurz_route route,
                    int status, const char *error_code, const char *message, const char *extra,
                    const struct kurz_http_header *headers, size_t nheaders)
{
        struct kurz_buf b = {0};
        int rc = 0;

        rc |= kurz_buf_puts(&b, "{\"success\":false,\"message\":");
        rc |= kurz_json_escape(&b, message, strlen(message));
        rc |= kurz_buf_puts(&b, ",\"errorCode\":");
        rc |= kurz_json_escape(&b, error_code, strlen(error_code));
        if (extra)
                rc |= kurz_buf_puts(&b, extra);
        rc |= kurz_buf_puts(&b, "}");
        if (rc) {
                kurz_buf_free(&b);
                kurz_http_respond(x, 500, NULL, 0, NULL, NULL, 0, true);
                return;
        }
        kurz_api_json(s, x, route, status, &b, headers, nheaders);
        kurz_buf_free(&b);
}

void kurz_api_method_not_allowed(struct kurz_service *s, struct kurz_http_exchange *x,
                                 enum kurz_route route, const char *allow)
{
        struct kurz_http_header h = {KURZ_STR_LIT("Allow"), kurz_str_c(allow)};
        char msg[128];

        snprintf(msg, sizeof(msg), "method not allowed here; allowed: %s", allow);
        kurz_api_error(s, x, route, 405, "METHOD_NOT_ALLOWED", msg, NULL, &h, 1);
}

/* A Host header is attacker-controlled: keep only the characters a host and
 * port may have, so it cannot break out of a URL or a JSON string. */
static bool host_ok(struct kurz_str h)
{
        if (h.len == 0 || h.len > 255)
                return false;
        for (size_t i = 0; i < h.len; i++) {
                char c = h.p[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_'))
                        return false;
        }
        return true;
}

void kurz_api_base_url(struct kurz_service *s, const struct kurz_http_request *req,
                       struct kurz_buf *out)
{
        if (s->has_base_url) {
                kurz_buf_puts(out, s->base_url);
                return;
        }
        kurz_buf_puts(out, "http://");
        if (host_ok(req->host))
                kurz_buf_append(out, req->host.p, req->host.len);
        else
                kurz_buf_puts(out, "localhost");
}

void kurz_api_client_ip(struct kurz_service *s, const struct kurz_http_request *req,
                        char out[KURZ_IP_STRLEN])
{
        kurz_client_ip(s->proxies, &req->peer, req->x_forwarded_for, out);
}

bool kurz_api_rate_ok(struct kurz_service *s, struct kurz_http_exchange *x,
                      struct kurz_ratelimit *rl, enum kurz_route route)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        char ip[KURZ_IP_STRLEN], ra[16];
        unsigned retry = 1;
        size_t n;

        if (!rl)
                return true;
        n = kurz_client_ip(s->proxies, &req->peer, req->x_forwarded_for, ip);
        if (kurz_ratelimit_take(rl, (struct kurz_str){ip, n}, kurz_api_now_ms(), &retry))
                return true;
        kurz_metrics_add(s->metrics, req->thread, KURZ_C_RATE_LIMITED, 1);
        snprintf(ra, sizeof(ra), "%u", retry ? retry : 1);
        struct kurz_http_header h = {KURZ_STR_LIT("Retry-After"), kurz_str_c(ra)};
        kurz_api_error(s, x, route, 429, "RATE_LIMITED",
                       "too many requests from this client; retry later", NULL, &h, 1);
        return false;
}

/* --- code enumeration --- */

#define BLOCK_SLOTS 4096 /* power of two */

/* Direct-mapped: slot i holds the hash of one blocked client's address and
 * when its block ends. A reader may see a key with another client's expiry
 * for a moment while a slot is rewritten: at worst one request is judged by
 * the neighbour's time, which a limit of this kind can afford. */
struct kurz_api_blocklist {
        _Atomic uint64_t latest_ms; /* the latest end of any block */
        struct {
                _Atomic uint64_t key;
                _Atomic uint64_t until_ms;
        } slot[BLOCK_SLOTS];
};

struct kurz_api_blocklist *kurz_api_blocklist_new(void)
{
        struct kurz_api_blocklist *b = calloc(1, sizeof(*b));

        return b; /* all zero: nobody blocked */
}

void kurz_api_blocklist_free(struct kurz_api_blocklist *b)
{
        free(b);
}

static uint64_t client_key(struct kurz_service *s, const struct kurz_http_request *req)
{
        char ip[KURZ_IP_STRLEN];
        size_t n = kurz_client_ip(s->proxies, &req->peer, req->x_forwarded_for, ip);

        return kurz_hash(ip, n) | 1; /* 0 marks an empty slot */
}

static void too_many_404(struct kurz_service *s, struct kurz_http_exchange *x,
                         enum kurz_route route, uint64_t wait_ms)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        char ra[24];
        struct kurz_http_header h = {KURZ_STR_LIT("Retry-After"), {ra, 0}};

        h.value.len =
            (size_t)snprintf(ra, sizeof(ra), "%llu", (unsigned long long)((wait_ms + 999) / 1000));
        kurz_metrics_add(s->metrics, req->thread, KURZ_C_RATE_LIMITED, 1);
        kurz_api_error(s, x, route, 429, "RATE_LIMITED",
                       "too many lookups of unknown short URLs from this client; retry later", NULL,
                       &h, 1);
}

bool kurz_api_lookup_allowed(struct kurz_service *s, struct kurz_http_exchange *x,
                             enum kurz_route route)
{
        struct kurz_api_blocklist *b = s->blocked;
        uint64_t now, key, until;
        unsigned i;

        if (!b)
                return true;
        now = kurz_api_now_ms();
        if (atomic_load_explicit(&b->latest_ms, memory_order_relaxed) <= now)
                return true; /* nobody blocked: the common case */
        key = client_key(s, kurz_http_request(x));
        i = (unsigned)(key >> 20) & (BLOCK_SLOTS - 1);
        if (atomic_load_explicit(&b->slot[i].key, memory_order_acquire) != key)
                return true;
        until = atomic_load_explicit(&b->slot[i].until_ms, memory_order_relaxed);
        if (until <= now)
                return true;
        too_many_404(s, x, route, until - now);
        return false;
}

bool kurz_api_count_404(struct kurz_service *s, struct kurz_http_exchange *x, enum kurz_route route)
{
        const struct kurz_http_request *req = kurz_http_request(x);
        struct kurz_api_blocklist *b = s->blocked;
        char ip[KURZ_IP_STRLEN];
        uint64_t now, key, until, latest;
        size_t n;
        unsigned i;

        if (!s->notfound_limit || !b)
                return true;
        now = kurz_api_now_ms();
        n = kurz_client_ip(s->proxies, &req->peer, req->x_forwarded_for, ip);
        if (kurz_ratelimit_take(s->notfound_limit, (struct kurz_str){ip, n}, now, NULL))
                return true;
        key = kurz_hash(ip, n) | 1;
        i = (unsigned)(key >> 20) & (BLOCK_SLOTS - 1);
        until = now + KURZ_API_BLOCK_MS;
        atomic_store_explicit(&b->slot[i].until_ms, until, memory_order_relaxed);
        atomic_store_explicit(&b->slot[i].key, key, memory_order_release);
        latest = atomic_load_explicit(&b->latest_ms, memory_order_relaxed);
        while (latest < until && !atomic_compare_exchange_weak(&b->latest_ms, &latest, until))
                ;
        too_many_404(s, x, route, KURZ_API_BLOCK_MS);
        return false;
}

int64_t kurz_api_now_s(void)
{
        return (int64_t)time(NULL);
}

uint64_t kurz_api_now_ms(void)
{
        return kurz_http_now_ns() / 1000000;
}

bool kurz_api_bearer_hash(const struct kurz_http_request *req, char hex[65])
{
        static const char digits[] = "0123456789abcdef";
        struct kurz_str a = req->authorization;
        unsigned char md[SHA256_DIGEST_LENGTH];
        size_t i = 7;

        if (a.len < 8 || strncasecmp(a.p, "Bearer ", 7) != 0)
                return false;
        while (i < a.len && a.p[i] == ' ')
                i++;
        if (i == a.len || a.len - i > 256)
                return false;
        SHA256((const unsigned char *)a.p + i, a.len - i, md);
        for (size_t k = 0; k < sizeof(md); k++) {
                hex[2 * k] = digits[md[k] >> 4];
                hex[2 * k + 1] = digits[md[k] & 15];
        }
        hex[64] = '\0';
        return true;
}
