/* redis/client.c - a Redis node: connection pool, timeouts, circuit breaker.
 * The pool mutex guards the idle stack, the connection count and the breaker;
 * no network I/O happens under it. */
#include "redis/client.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- breaker --- */

void kurz_redis_breaker_init(struct kurz_redis_breaker *b, unsigned base_ms, unsigned max_ms)
{
        memset(b, 0, sizeof(*b));
        b->base_ms = base_ms ? base_ms : 1;
        b->max_ms = max_ms < b->base_ms ? b->base_ms : max_ms;
        b->backoff_ms = b->base_ms;
}

bool kurz_redis_breaker_allow(struct kurz_redis_breaker *b, uint64_t now_ms, bool *probe)
{
        if (probe)
                *probe = false;
        switch (b->state) {
        case KURZ_BREAKER_CLOSED:
                return true;
        case KURZ_BREAKER_OPEN:
                if (now_ms < b->open_until_ms)
                        return false;
                b->state = KURZ_BREAKER_HALF_OPEN;
                if (probe)
                        *probe = true;
                return true;
        case KURZ_BREAKER_HALF_OPEN:
                return false;
        }
        return false;
}

void kurz_redis_breaker_success(struct kurz_redis_breaker *b)
{
        b->state = KURZ_BREAKER_CLOSED;
        b->backoff_ms = b->base_ms;
}

void kurz_redis_breaker_failure(struct kurz_redis_breaker *b, uint64_t now_ms)
{
        switch (b->state) {
        case KURZ_BREAKER_OPEN:
                return; /* a straggler: the node is already known to be failing */
        case KURZ_BREAKER_CLOSED:
                b->opens++;
                b->backoff_ms = b->base_ms;
                break;
        case KURZ_BREAKER_HALF_OPEN:
                break; /* the probe failed: wait longer */
        }
        b->state = KURZ_BREAKER_OPEN;
        b->open_until_ms = now_ms + b->backoff_ms;
        b->backoff_ms = b->backoff_ms > b->max_ms / 2 ? b->max_ms : b->backoff_ms * 2;
}

/* --- node --- */

struct conn {
        redisContext *ctx;
        unsigned tmo_ms; /* socket timeout set now */
};

struct kurz_redis_node {
        char *host;
        unsigned port;
        char *password;
        unsigned db;
        unsigned pool_size;
        unsigned connect_timeout_ms;
        pthread_mutex_t mu;
        pthread_cond_t freed; /* a connection went back or was closed */
        struct conn *idle;    /* stack of pool_size */
        unsigned nidle;
        unsigned nopen; /* idle + borrowed + being connected */
        struct kurz_redis_breaker breaker;
        uint64_t commands, failures;
};

uint64_t kurz_redis_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct timeval tv_ms(uint64_t ms)
{
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};

        return tv;
}

struct kurz_redis_node *kurz_redis_node_new(const struct kurz_redis_node_config *cfg)
{
        struct kurz_redis_node *n = calloc(1, sizeof(*n));
        pthread_condattr_t ca;

        if (!n)
                return NULL;
        n->host = strdup(cfg->host);
        n->password = cfg->password && *cfg->password ? strdup(cfg->password) : NULL;
        n->pool_size = cfg->pool_size ? cfg->pool_size : 1;
        n->idle = calloc(n->pool_size, sizeof(*n->idle));
        if (!n->host || !n->idle || (cfg->password && *cfg->password && !n->password))
                goto out_free;
        n->port = cfg->port;
        n->db = cfg->db;
        n->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 100;
        kurz_redis_breaker_init(&n->breaker, cfg->breaker_base_ms ? cfg->breaker_base_ms : 250,
                                cfg->breaker_max_ms ? cfg->breaker_max_ms : 5000);
        pthread_mutex_init(&n->mu, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&n->freed, &ca);
        pthread_condattr_destroy(&ca);
        return n;

out_free:
        free(n->host);
        free(n->password);
        free(n->idle);
        free(n);
        return NULL;
}

void kurz_redis_node_free(struct kurz_redis_node *n)
{
        if (!n)
                return;
        for (unsigned i = 0; i < n->nidle; i++)
                redisFree(n->idle[i].ctx);
        pthread_cond_destroy(&n->freed);
        pthread_mutex_destroy(&n->mu);
        free(n->idle);
        free(n->host);
        free(n->password);
        free(n);
}

const char *kurz_redis_node_host(const struct kurz_redis_node *n)
{
        return n->host;
}

unsigned kurz_redis_node_port(const struct kurz_redis_node *n)
{
        return n->port;
}

bool kurz_redis_node_available(struct kurz_redis_node *n)
{
        bool ok;

        pthread_mutex_lock(&n->mu);
        ok = n->breaker.state == KURZ_BREAKER_CLOSED ||
             (n->breaker.state == KURZ_BREAKER_OPEN &&
              kurz_redis_now_ms() >= n->breaker.open_until_ms);
        pthread_mutex_unlock(&n->mu);
        return ok;
}

void kurz_redis_node_stats(struct kurz_redis_node *n, struct kurz_redis_node_stats *out)
{
        pthread_mutex_lock(&n->mu);
        out->state = n->breaker.state;
        out->commands = __atomic_load_n(&n->commands, __ATOMIC_RELAXED);
        out->failures = n->failures;
        out->breaker_opens = n->breaker.opens;
        out->open_conns = n->nopen;
        out->idle_conns = n->nidle;
        pthread_mutex_unlock(&n->mu);
}

/* Sends a command on a fresh connection and checks for +OK. */
static bool setup_ok(redisContext *c, const char *cmd, const char *arg)
{
        const char *argv[2] = {cmd, arg};
        size_t lens[2] = {strlen(cmd), strlen(arg)};
        redisReply *r = redisCommandArgv(c, 2, argv, lens);
        bool ok = r && r->type == REDIS_REPLY_STATUS;

        if (r)
                freeReplyObject(r);
        return ok;
}

static redisContext *connect_node(struct kurz_redis_node *n, uint64_t deadline_ms)
{
        uint64_t now = kurz_redis_now_ms();
        uint64_t tmo = deadline_ms > now ? deadline_ms - now : 1;
        redisContext *c;
        char db[16];

        if (tmo > n->connect_timeout_ms)
                tmo = n->connect_timeout_ms;
        c = redisConnectWithTimeout(n->host, (int)n->port, tv_ms(tmo));
        if (!c)
                return NULL;
        if (c->err)
                goto out_free;
        if (redisSetTimeout(c, tv_ms(tmo)) != REDIS_OK)
                goto out_free;
        if (n->password && !setup_ok(c, "AUTH", n->password))
                goto out_free;
        if (n->db) {
                snprintf(db, sizeof(db), "%u", n->db);
                if (!setup_ok(c, "SELECT", db))
                        goto out_free;
        }
        return c;

out_free:
        redisFree(c);
        return NULL;
}

/* Under n->mu: closes every idle connection (the node failed; they are
 * likely dead too). */
static void drop_idle(struct kurz_redis_node *n)
{
        for (unsigned i = 0; i < n->nidle; i++) {
                redisFree(n->idle[i].ctx);
                n->nopen--;
        }
        n->nidle = 0;
        pthread_cond_broadcast(&n->freed);
}

static void node_failed(struct kurz_redis_node *n, struct conn *c)
{
        if (c->ctx)
                redisFree(c->ctx);
        pthread_mutex_lock(&n->mu);
        n->nopen--;
        n->failures++;
        kurz_redis_breaker_failure(&n->breaker, kurz_redis_now_ms());
        drop_idle(n);
        pthread_mutex_unlock(&n->mu);
}

/* Borrows a connection (connecting when needed). Returns 0 or an error as
 * kurz_redis_node_command(). */
static int borrow(struct kurz_redis_node *n, uint64_t deadline_ms, struct conn *out)
{
        bool probe = false;
        int rc = 0;

        pthread_mutex_lock(&n->mu);
        if (!kurz_redis_breaker_allow(&n->breaker, kurz_redis_now_ms(), &probe)) {
                pthread_mutex_unlock(&n->mu);
                return -EAGAIN;
        }
        while (n->nidle == 0 && n->nopen >= n->pool_size) {
                struct timespec ts = {(time_t)(deadline_ms / 1000),
                                      (long)(deadline_ms % 1000) * 1000000};
                if (kurz_redis_now_ms() >= deadline_ms ||
                    pthread_cond_timedwait(&n->freed, &n->mu, &ts) == ETIMEDOUT) {
                        if (n->nidle == 0 && n->nopen >= n->pool_size) {
                                rc = -ETIMEDOUT;
                                break;
                        }
                }
        }
        if (rc < 0) {
                /* A probe that got no connection tested nothing: let the
                 * next caller probe. */
                if (probe)
                        n->breaker.state = KURZ_BREAKER_OPEN;
                pthread_mutex_unlock(&n->mu);
                return rc;
        }
        if (n->nidle) {
                *out = n->idle[--n->nidle];
                pthread_mutex_unlock(&n->mu);
                return 0;
        }
        n->nopen++;
        pthread_mutex_unlock(&n->mu);
        out->ctx = connect_node(n, deadline_ms);
        out->tmo_ms = 0;
        if (!out->ctx) {
                struct conn none = {0};
                node_failed(n, &none);
                return -ECONNREFUSED;
        }
        return 0;
}

static void give_back(struct kurz_redis_node *n, struct conn *c)
{
        pthread_mutex_lock(&n->mu);
        kurz_redis_breaker_success(&n->breaker);
        if (n->nidle < n->pool_size) {
                n->idle[n->nidle++] = *c;
        } else { /* cannot happen: nopen <= pool_size */
                redisFree(c->ctx);
                n->nopen--;
        }
        pthread_cond_signal(&n->freed);
        pthread_mutex_unlock(&n->mu);
}

int kurz_redis_node_command(struct kurz_redis_node *n, int argc, const char **argv,
                            const size_t *argvlen, bool asking, uint64_t deadline_ms,
                            struct redisReply **reply)
{
        struct conn c;
        uint64_t now, left;
        void *r = NULL;
        int rc;

        *reply = NULL;
        rc = borrow(n, deadline_ms, &c);
        if (rc < 0)
                return rc;
        __atomic_fetch_add(&n->commands, 1, __ATOMIC_RELAXED);
        now = kurz_redis_now_ms();
        left = deadline_ms > now ? deadline_ms - now : 1;
        /* A setsockopt pair only when the budget differs by more than a few ms
         * from what the socket has. */
        if (c.tmo_ms == 0 || left + 5 < c.tmo_ms || left > (uint64_t)c.tmo_ms + 5) {
                if (redisSetTimeout(c.ctx, tv_ms(left)) != REDIS_OK)
                        goto out_failed;
                c.tmo_ms = (unsigned)left;
        }
        if (asking) {
                static const char *ask[1] = {"ASKING"};
                static const size_t asklen[1] = {6};
                void *ar = NULL;

                if (redisAppendCommandArgv(c.ctx, 1, ask, asklen) != REDIS_OK ||
                    redisAppendCommandArgv(c.ctx, argc, argv, argvlen) != REDIS_OK ||
                    redisGetReply(c.ctx, &ar) != REDIS_OK)
                        goto out_failed;
                freeReplyObject(ar);
                if (redisGetReply(c.ctx, &r) != REDIS_OK)
                        goto out_failed;
        } else {
                r = redisCommandArgv(c.ctx, argc, argv, argvlen);
                if (!r)
                        goto out_failed;
        }
        give_back(n, &c);
        *reply = r;
        return 0;

out_failed:
        rc = errno == EAGAIN || errno == EWOULDBLOCK || strstr(c.ctx->errstr, "temporarily") ||
                     strstr(c.ctx->errstr, "timed out")
                 ? -ETIMEDOUT
             : c.ctx->err == REDIS_ERR_OOM ? -ENOMEM
                                           : -EIO;
        node_failed(n, &c);
        return rc;
}
