/* api/fleet.c - Redis, L2, single flight and the fleet-wide create limit,
 * wired for the handlers (see api/fleet.h). */
#include "api/fleet.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_int.h"
#include "cache/l2.h"
#include "limit/shared.h"
#include "redis/client.h"
#include "redis/cluster.h"
#include "util/hash.h"
#include "util/log.h"

#define FLIGHT_STRIPES 64 /* power of two */

struct flight_entry {
        struct flight_entry *next;
        struct kurz_api_flight_waiter *waiters;
        size_t len;
        char code[KURZ_CODE_MAX + 1];
};

struct kurz_api_flight {
        struct {
                pthread_mutex_t mu;
                struct flight_entry *head;
        } stripe[FLIGHT_STRIPES];
        _Atomic uint64_t coalesced;
        _Atomic uint64_t limit_fallbacks; /* shared limit unavailable: local used */
};

/* --- single flight --- */

static unsigned stripe_of(struct kurz_str code)
{
        return (unsigned)(kurz_hash(code.p, code.len) & (FLIGHT_STRIPES - 1));
}

static struct flight_entry **find(struct flight_entry **pp, struct kurz_str code)
{
        for (; *pp; pp = &(*pp)->next)
                if ((*pp)->len == code.len && memcmp((*pp)->code, code.p, code.len) == 0)
                        return pp;
        return NULL;
}

bool kurz_api_flight_join(struct kurz_service *s, struct kurz_http_exchange *x,
                          struct kurz_str code)
{
        struct kurz_api_flight *f = s->flight;
        unsigned k;
        struct flight_entry **pp, *e;

        if (!f || code.len == 0 || code.len > KURZ_CODE_MAX)
                return false;
        k = stripe_of(code);
        pthread_mutex_lock(&f->stripe[k].mu);
        pp = find(&f->stripe[k].head, code);
        if (pp) {
                struct kurz_api_flight_waiter *w = malloc(sizeof(*w));
                if (!w) {
                        pthread_mutex_unlock(&f->stripe[k].mu);
                        return false; /* read alone */
                }
                /* Deferred under the lock: the leader cannot finish (and
                 * resume w) before w->d is set. */
                w->d = kurz_http_defer(x);
                w->next = (*pp)->waiters;
                (*pp)->waiters = w;
                pthread_mutex_unlock(&f->stripe[k].mu);
                atomic_fetch_add_explicit(&f->coalesced, 1, memory_order_relaxed);
                return true;
        }
        e = calloc(1, sizeof(*e));
        if (e) {
                e->len = code.len;
                memcpy(e->code, code.p, code.len);
                e->next = f->stripe[k].head;
                f->stripe[k].head = e;
        }
        pthread_mutex_unlock(&f->stripe[k].mu);
        return false;
}

struct kurz_api_flight_waiter *kurz_api_flight_finish(struct kurz_service *s, struct kurz_str code)
{
        struct kurz_api_flight *f = s->flight;
        struct kurz_api_flight_waiter *w = NULL;
        struct flight_entry **pp, *e = NULL;
        unsigned k;

        if (!f || code.len == 0 || code.len > KURZ_CODE_MAX)
                return NULL;
        k = stripe_of(code);
        pthread_mutex_lock(&f->stripe[k].mu);
        pp = find(&f->stripe[k].head, code);
        if (pp) {
                e = *pp;
                *pp = e->next;
        }
        pthread_mutex_unlock(&f->stripe[k].mu);
        if (e) {
                w = e->waiters;
                free(e);
        }
        return w;
}

static void flight_free(struct kurz_api_flight *f)
{
        if (!f)
                return;
        for (unsigned k = 0; k < FLIGHT_STRIPES; k++) {
                /* Every flight ended before the loops stopped. */
                while (f->stripe[k].head) {
                        struct flight_entry *e = f->stripe[k].head;
                        f->stripe[k].head = e->next;
                        while (e->waiters) {
                                struct kurz_api_flight_waiter *w = e->waiters;
                                e->waiters = w->next;
                                free(w);
                        }
                        free(e);
                }
                pthread_mutex_destroy(&f->stripe[k].mu);
        }
        free(f);
}

/* --- the pooled read --- */

int kurz_api_fleet_read(struct kurz_service *s, const char *code, size_t len, struct kurz_link *out)
{
        uint64_t t0 = kurz_redis_now_ms();
        int rc;

        if (s->l2 && kurz_l2_get(s->l2, code, len, out) == 0)
                return 0;
        kurz_metrics_add(s->metrics, KURZ_METRICS_SHARED, KURZ_C_STORE_READ, 1);
        /* L2's lifetime depends on the link's clicks; without L2 the
         * redirect needs none of the totals. */
        if (!s->l2 && s->store->ops->lookup_target)
                rc = s->store->ops->lookup_target(s->store, code, len, out);
        else
                rc = s->store->ops->lookup(s->store, code, len, out);
        if (rc == 0 && s->l2 && (!out->expires_at || out->expires_at > kurz_api_now_s()))
                kurz_l2_put_async(s->l2, code, len, out->url, out->url_len, out->expires_at,
                                  out->clicks, t0);
        return rc;
}

/* --- create limit --- */

struct limit_job {
        struct kurz_service *s;
        void (*cont)(struct kurz_service *s, struct kurz_http_exchange *x);
        void (*deny)(struct kurz_service *s, struct kurz_http_exchange *x, unsigned retry);
        char ip[KURZ_IP_STRLEN];
        bool allowed;
        unsigned retry;
};

static uint64_t wall_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void limit_work(void *arg)
{
        struct limit_job *j = arg;
        struct kurz_service *s = j->s;
        struct kurz_str ip = kurz_str_c(j->ip);
        int rc = kurz_shared_limit_take(s->redis, "create", ip, s->cfg->create_rate_limit, 60000,
                                        wall_ms(), &j->retry);

        if (rc >= 0) {
                j->allowed = rc == 1;
                return;
        }
        /* Redis cannot answer: this process's own limiter, never no limit. */
        atomic_fetch_add_explicit(&s->flight->limit_fallbacks, 1, memory_order_relaxed);
        j->allowed = kurz_ratelimit_take(s->create_limit, ip, kurz_api_now_ms(), &j->retry);
}

static void refuse(struct kurz_service *s, struct kurz_http_exchange *x, unsigned retry)
{
        char ra[16];
        struct kurz_http_header h;

        snprintf(ra, sizeof(ra), "%u", retry ? retry : 1);
        h = (struct kurz_http_header){KURZ_STR_LIT("Retry-After"), kurz_str_c(ra)};
        kurz_api_error(s, x, KURZ_ROUTE_CREATE, 429, "RATE_LIMITED",
                       "too many requests from this client; retry later", NULL, &h, 1);
}

static void limit_done(struct kurz_http_exchange *x, void *arg)
{
        struct limit_job *j = arg;

        if (j->allowed) {
                j->cont(j->s, x);
        } else {
                kurz_metrics_add(j->s->metrics, kurz_http_request(x)->thread, KURZ_C_RATE_LIMITED,
                                 1);
                j->deny(j->s, x, j->retry);
        }
        free(j);
}

void kurz_api_create_limited(struct kurz_service *s, struct kurz_http_exchange *x,
                             void (*cont)(struct kurz_service *s, struct kurz_http_exchange *x))
{
        kurz_api_create_limited_ex(s, x, cont, refuse);
}

void kurz_api_create_limited_ex(struct kurz_service *s, struct kurz_http_exchange *x,
                                void (*cont)(struct kurz_service *s, struct kurz_http_exchange *x),
                                void (*deny)(struct kurz_service *s, struct kurz_http_exchange *x,
                                             unsigned retry))
{
        char ip[KURZ_IP_STRLEN];
        unsigned retry = 1;
        struct limit_job *j;
        size_t n;

        if (!s->create_limit) {
                cont(s, x);
                return;
        }
        if (!s->redis)
                goto local;
        j = calloc(1, sizeof(*j));
        if (!j)
                goto local;
        j->s = s;
        j->cont = cont;
        j->deny = deny;
        kurz_api_client_ip(s, kurz_http_request(x), j->ip);
        if (kurz_http_offload(x, limit_work, limit_done, j) == 0)
                return;
        free(j);
        atomic_fetch_add_explicit(&s->flight->limit_fallbacks, 1, memory_order_relaxed);
local:
        n = kurz_client_ip(s->proxies, &kurz_http_request(x)->peer,
                           kurz_http_request(x)->x_forwarded_for, ip);
        if (kurz_ratelimit_take(s->create_limit, (struct kurz_str){ip, n}, kurz_api_now_ms(),
                                &retry)) {
                cont(s, x);
                return;
        }
        kurz_metrics_add(s->metrics, kurz_http_request(x)->thread, KURZ_C_RATE_LIMITED, 1);
        deny(s, x, retry);
}

/* --- lifecycle --- */

static void on_invalidate(void *arg, struct kurz_str code)
{
        struct kurz_service *s = arg;

        if (code.len == 0) /* the subscription was down: drop everything */
                kurz_l1_invalidate_all(s->l1);
        else
                kurz_l1_invalidate(s->l1, code);
}

int kurz_api_fleet_open(struct kurz_service *s)
{
        const struct kurz_config *cfg = s->cfg;
        struct kurz_redis_config rc = {0};
        struct kurz_l2_config lc = {0};
        char err[512] = "";
        int r;

        s->flight = calloc(1, sizeof(*s->flight));
        if (!s->flight)
                return -ENOMEM;
        for (unsigned k = 0; k < FLIGHT_STRIPES; k++)
                pthread_mutex_init(&s->flight->stripe[k].mu, NULL);
        if (!cfg->redis[0] && !cfg->redis_cluster[0])
                return 0;
        rc.url = cfg->redis[0] ? cfg->redis : NULL;
        rc.cluster = cfg->redis_cluster[0] ? cfg->redis_cluster : NULL;
        rc.timeout_ms = (unsigned)cfg->redis_timeout_ms;
        rc.pool_size = cfg->redis_pool_size;
        r = kurz_redis_open(&rc, &s->redis, err, sizeof(err));
        if (r < 0) {
                kurz_error("cannot use Redis: %s", err[0] ? err : strerror(-r));
                return r;
        }
        lc.redis = s->redis;
        lc.ttl_ms = cfg->l2_ttl_ms;
        lc.hot_ttls = cfg->l2_hot_ttls;
        r = kurz_l2_new(&lc, &s->l2);
        if (r < 0) {
                kurz_error("cannot start the L2 cache: %s",
                           r == -EINVAL ? "bad --l2-hot-ttls" : strerror(-r));
                return r;
        }
        r = kurz_l2_subscribe(s->l2, on_invalidate, s);
        if (r < 0) {
                kurz_error("cannot start the Redis subscriber: %s", strerror(-r));
                return r;
        }
        kurz_info("L2 cache on Redis %s %s (timeout %llu ms)",
                  kurz_redis_is_cluster(s->redis) ? "Cluster" : "server",
                  rc.url ? rc.url : rc.cluster, (unsigned long long)cfg->redis_timeout_ms);
        return 0;
}

void kurz_api_fleet_close(struct kurz_service *s)
{
        kurz_l2_free(s->l2);
        s->l2 = NULL;
        kurz_redis_close(s->redis);
        s->redis = NULL;
        flight_free(s->flight);
        s->flight = NULL;
}

int kurz_api_fleet_metrics(struct kurz_service *s, struct kurz_buf *out)
{
        int rc = 0;

        if (s->flight)
                rc |= kurz_buf_printf(
                    out,
                    "# HELP kurz_singleflight_coalesced_total Redirect misses that waited for "
                    "another request's read of the same code instead of reading themselves.\n"
                    "# TYPE kurz_singleflight_coalesced_total counter\n"
                    "kurz_singleflight_coalesced_total %llu\n"
                    "# HELP kurz_rate_limit_fallbacks_total Create limit checks made by this "
                    "process alone because the shared (Redis) limit could not be asked.\n"
                    "# TYPE kurz_rate_limit_fallbacks_total counter\n"
                    "kurz_rate_limit_fallbacks_total %llu\n",
                    (unsigned long long)atomic_load(&s->flight->coalesced),
                    (unsigned long long)atomic_load(&s->flight->limit_fallbacks));
        if (rc)
                return -ENOMEM;
        return s->l2 ? kurz_l2_metrics(s->l2, out) : 0;
}
