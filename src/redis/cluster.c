/* redis/cluster.c - routing, redirections, retries, slot map refresh and the
 * subscriber thread on top of redis/client.c's nodes. r->mu guards the node
 * table and the slot map; nodes are never freed before kurz_redis_close(), so
 * a pointer read under r->mu stays valid after it is released. */
#include "redis/cluster.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redis/client.h"
#include "redis/crc16.h"
#include "redis/reply.h"
#include "util/buf.h"
#include "util/log.h"

#define MAX_NODES          256  /* node objects at most (MOVED can name new ones) */
#define MAX_ATTEMPTS       16   /* redirections + retries per command */
#define REFRESH_MIN_GAP_MS 200  /* between two triggered refreshes */
#define SUB_PING_MS        1000 /* subscriber keepalive */
#define SUB_DEAD_MS        3000 /* no byte for this long: reconnect */

struct kurz_redis {
        bool cluster;
        unsigned timeout_ms;
        unsigned refresh_ms;
        struct kurz_redis_node_config ncfg; /* template; host/port per node */
        char *password;
        pthread_mutex_t mu;
        struct kurz_redis_node *nodes[MAX_NODES];
        unsigned nnodes;
        unsigned nseeds; /* nodes[0..nseeds) are the configured ones */
        struct kurz_redis_node *owner[KURZ_REDIS_SLOTS];

        /* refresh thread (cluster mode) */
        pthread_t refresher;
        bool refresher_started;
        pthread_cond_t wake;
        bool need_refresh;
        bool stopping;
        uint64_t last_refresh_ms;

        /* subscriber thread */
        pthread_t subscriber;
        bool subscriber_started;
        char *channel;
        kurz_redis_message_fn fn;
        void *fn_arg;
        _Atomic bool sub_stop;
        _Atomic bool subscribed;
        unsigned sub_next; /* round robin over nodes */

        _Atomic uint64_t moved, ask, tryagain, clusterdown, refreshes, refresh_failures,
            sub_connects;
};

bool kurz_redis_is_cluster(const struct kurz_redis *r)
{
        return r->cluster;
}

static void set_err(char *err, size_t errlen, const char *msg, const char *what)
{
        if (err && errlen)
                snprintf(err, errlen, "%s: %s", msg, what);
}

/* Under r->mu (or before threads start). */
static struct kurz_redis_node *node_get(struct kurz_redis *r, const char *host, unsigned port)
{
        struct kurz_redis_node_config nc = r->ncfg;
        struct kurz_redis_node *n;

        for (unsigned i = 0; i < r->nnodes; i++)
                if (kurz_redis_node_port(r->nodes[i]) == port &&
                    strcmp(kurz_redis_node_host(r->nodes[i]), host) == 0)
                        return r->nodes[i];
        if (r->nnodes >= MAX_NODES)
                return NULL;
        nc.host = host;
        nc.port = port;
        n = kurz_redis_node_new(&nc);
        if (n)
                r->nodes[r->nnodes++] = n;
        return n;
}

/* "host:port" or "[v6]:port" into a; the port may be left out when def_port
 * is non-zero. */
static int parse_hostport(const char *s, size_t len, unsigned def_port, struct kurz_redis_addr *a)
{
        const char *host = s, *portp = NULL;
        unsigned long port = def_port;
        size_t hlen, plen = 0;

        if (len && s[0] == '[') {
                const char *close = memchr(s, ']', len);
                size_t rest;

                if (!close)
                        return -EINVAL;
                host = s + 1;
                hlen = (size_t)(close - host);
                rest = len - (size_t)(close - s) - 1;
                if (rest) {
                        if (close[1] != ':')
                                return -EINVAL;
                        portp = close + 2;
                        plen = rest - 1;
                }
        } else {
                const char *colon = memchr(s, ':', len);

                hlen = colon ? (size_t)(colon - s) : len;
                if (colon) {
                        portp = colon + 1;
                        plen = len - hlen - 1;
                }
        }
        if (portp) {
                if (plen == 0 || plen > 5)
                        return -EINVAL;
                port = 0;
                for (size_t i = 0; i < plen; i++) {
                        if (portp[i] < '0' || portp[i] > '9')
                                return -EINVAL;
                        port = port * 10 + (unsigned long)(portp[i] - '0');
                }
        }
        if (hlen == 0 || hlen >= sizeof(a->host) || port == 0 || port > 65535)
                return -EINVAL;
        memcpy(a->host, host, hlen);
        a->host[hlen] = '\0';
        a->port = (unsigned)port;
        return 0;
}

/* redis://[[user]:password@]host[:port][/db] */
static int parse_url(const char *url, struct kurz_redis_addr *a, char **password, unsigned *db)
{
        const char *p = url, *at, *slash, *end;

        if (strncmp(p, "redis://", 8) == 0)
                p += 8;
        end = p + strlen(p);
        slash = strchr(p, '/');
        if (slash) {
                char *e;
                unsigned long d;
                if (slash[1]) {
                        d = strtoul(slash + 1, &e, 10);
                        if (*e || d > 1000 || slash[1] < '0' || slash[1] > '9')
                                return -EINVAL;
                        *db = (unsigned)d;
                }
                end = slash;
        }
        at = memchr(p, '@', (size_t)(end - p));
        if (at) {
                const char *colon = memchr(p, ':', (size_t)(at - p));
                if (colon && at > colon + 1) {
                        *password = strndup(colon + 1, (size_t)(at - colon - 1));
                        if (!*password)
                                return -ENOMEM;
                }
                p = at + 1;
        }
        return parse_hostport(p, (size_t)(end - p), 6379, a);
}

/* --- slot map --- */

/* Asks one node for CLUSTER SLOTS and installs the map. */
static int refresh_from(struct kurz_redis *r, struct kurz_redis_node *n)
{
        static const char *argv[2] = {"CLUSTER", "SLOTS"};
        static const size_t lens[2] = {7, 5};
        struct kurz_redis_slotmap *map;
        redisReply *reply;
        uint64_t deadline = kurz_redis_now_ms() + (r->timeout_ms > 500 ? r->timeout_ms : 500);
        int rc;

        rc = kurz_redis_node_command(n, 2, argv, lens, false, deadline, &reply);
        if (rc < 0)
                return rc;
        map = malloc(sizeof(*map));
        if (!map) {
                freeReplyObject(reply);
                return -ENOMEM;
        }
        rc = kurz_redis_slots_parse(reply, kurz_redis_node_host(n), map);
        freeReplyObject(reply);
        if (rc <= 0) {
                free(map);
                return rc < 0 ? rc : -EAGAIN;
        }
        pthread_mutex_lock(&r->mu);
        {
                struct kurz_redis_node *byidx[KURZ_REDIS_MAX_NODES];
                for (unsigned i = 0; i < map->nnodes; i++)
                        byidx[i] = node_get(r, map->nodes[i].addr.host, map->nodes[i].addr.port);
                for (unsigned s = 0; s < KURZ_REDIS_SLOTS; s++)
                        r->owner[s] =
                            map->owner[s] == KURZ_REDIS_NO_NODE ? NULL : byidx[map->owner[s]];
        }
        pthread_mutex_unlock(&r->mu);
        free(map);
        atomic_fetch_add(&r->refreshes, 1);
        return 0;
}

/* Tries the nodes that look healthy first, then every node. */
static int refresh(struct kurz_redis *r)
{
        struct kurz_redis_node *cand[MAX_NODES];
        unsigned n;
        int rc = -EAGAIN;

        pthread_mutex_lock(&r->mu);
        n = r->nnodes;
        memcpy(cand, r->nodes, n * sizeof(cand[0]));
        pthread_mutex_unlock(&r->mu);
        for (int pass = 0; pass < 2; pass++) {
                for (unsigned i = 0; i < n; i++) {
                        if (pass == 0 && !kurz_redis_node_available(cand[i]))
                                continue;
                        if (pass == 1 && kurz_redis_node_available(cand[i]))
                                continue;
                        rc = refresh_from(r, cand[i]);
                        if (rc == 0)
                                return 0;
                }
        }
        atomic_fetch_add(&r->refresh_failures, 1);
        return rc;
}

static void want_refresh(struct kurz_redis *r)
{
        if (!r->cluster)
                return;
        pthread_mutex_lock(&r->mu);
        if (!r->need_refresh) {
                r->need_refresh = true;
                pthread_cond_signal(&r->wake);
        }
        pthread_mutex_unlock(&r->mu);
}

static void *refresher_main(void *arg)
{
        struct kurz_redis *r = arg;

        pthread_mutex_lock(&r->mu);
        while (!r->stopping) {
                uint64_t now = kurz_redis_now_ms();
                uint64_t due = r->last_refresh_ms + r->refresh_ms;

                if (r->need_refresh && now < r->last_refresh_ms + REFRESH_MIN_GAP_MS)
                        due = r->last_refresh_ms + REFRESH_MIN_GAP_MS;
                else if (r->need_refresh)
                        due = now;
                if (now < due) {
                        struct timespec ts = {(time_t)(due / 1000), (long)(due % 1000) * 1000000};
                        pthread_cond_timedwait(&r->wake, &r->mu, &ts);
                        continue;
                }
                r->need_refresh = false;
                r->last_refresh_ms = now;
                pthread_mutex_unlock(&r->mu);
                if (refresh(r) < 0)
                        kurz_debug("redis: slot map refresh failed");
                pthread_mutex_lock(&r->mu);
        }
        pthread_mutex_unlock(&r->mu);
        return NULL;
}

/* --- open / close --- */

int kurz_redis_open(const struct kurz_redis_config *cfg, struct kurz_redis **out, char *err,
                    size_t errlen)
{
        struct kurz_redis *r;
        pthread_condattr_t ca;
        int rc = 0;

        *out = NULL;
        if (!!(cfg->url && *cfg->url) == !!(cfg->cluster && *cfg->cluster)) {
                set_err(err, errlen, "give either a Redis URL or a cluster seed list", "");
                return -EINVAL;
        }
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->cluster = cfg->cluster && *cfg->cluster;
        r->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 50;
        r->refresh_ms = cfg->refresh_ms ? cfg->refresh_ms : 5000;
        r->ncfg.pool_size = cfg->pool_size ? cfg->pool_size : 8;
        r->ncfg.connect_timeout_ms = r->timeout_ms;
        r->ncfg.breaker_base_ms = cfg->breaker_base_ms ? cfg->breaker_base_ms : 250;
        r->ncfg.breaker_max_ms = cfg->breaker_max_ms ? cfg->breaker_max_ms : 5000;
        pthread_mutex_init(&r->mu, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&r->wake, &ca);
        pthread_condattr_destroy(&ca);

        if (!r->cluster) {
                struct kurz_redis_addr a;
                rc = parse_url(cfg->url, &a, &r->password, &r->ncfg.db);
                if (rc < 0) {
                        set_err(err, errlen, "not a redis://host:port URL", cfg->url);
                        goto out_close;
                }
                r->ncfg.password = r->password;
                if (!node_get(r, a.host, a.port)) {
                        rc = -ENOMEM;
                        goto out_close;
                }
                r->nseeds = 1;
        } else {
                const char *p = cfg->cluster;
                while (*p) {
                        const char *comma = strchr(p, ',');
                        size_t len = comma ? (size_t)(comma - p) : strlen(p);
                        struct kurz_redis_addr a;

                        while (len && *p == ' ') {
                                p++;
                                len--;
                        }
                        if (parse_hostport(p, len, 0, &a) < 0) {
                                set_err(err, errlen, "not a host:port list", cfg->cluster);
                                rc = -EINVAL;
                                goto out_close;
                        }
                        if (!node_get(r, a.host, a.port)) {
                                rc = -ENOMEM;
                                goto out_close;
                        }
                        p += len;
                        if (*p == ',')
                                p++;
                }
                r->nseeds = r->nnodes;
                if (r->nseeds == 0) {
                        set_err(err, errlen, "empty cluster seed list", "");
                        rc = -EINVAL;
                        goto out_close;
                }
                /* One synchronous attempt so that the first requests find a
                 * map; failing is fine, the refresher keeps trying. */
                if (refresh(r) < 0)
                        kurz_warn("redis: no cluster seed answered CLUSTER SLOTS yet; "
                                  "retrying in the background");
                r->last_refresh_ms = kurz_redis_now_ms();
                rc = pthread_create(&r->refresher, NULL, refresher_main, r);
                if (rc) {
                        rc = -rc;
                        goto out_close;
                }
                r->refresher_started = true;
        }
        *out = r;
        return 0;

out_close:
        kurz_redis_close(r);
        return rc;
}

void kurz_redis_unsubscribe(struct kurz_redis *r)
{
        atomic_store(&r->sub_stop, true);
        if (r->subscriber_started)
                pthread_join(r->subscriber, NULL);
        r->subscriber_started = false;
}

void kurz_redis_close(struct kurz_redis *r)
{
        if (!r)
                return;
        kurz_redis_unsubscribe(r);
        pthread_mutex_lock(&r->mu);
        r->stopping = true;
        pthread_cond_broadcast(&r->wake);
        pthread_mutex_unlock(&r->mu);
        if (r->refresher_started)
                pthread_join(r->refresher, NULL);
        for (unsigned i = 0; i < r->nnodes; i++)
                kurz_redis_node_free(r->nodes[i]);
        pthread_cond_destroy(&r->wake);
        pthread_mutex_destroy(&r->mu);
        free(r->channel);
        free(r->password);
        free(r);
}

/* --- commands --- */

static bool is_error(const redisReply *rep, enum kurz_redis_err *kind,
                     struct kurz_redis_redirect *to)
{
        if (rep->type != REDIS_REPLY_ERROR)
                return false;
        *kind = kurz_redis_parse_error(rep->str, rep->len, to);
        return *kind != KURZ_REDIS_ERR_OTHER;
}

static void pause_ms(uint64_t ms)
{
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};

        nanosleep(&ts, NULL);
}

int kurz_redis_command(struct kurz_redis *r, const char *key, size_t keylen, int argc,
                       const char **argv, const size_t *argvlen, struct redisReply **reply)
{
        uint64_t deadline = kurz_redis_now_ms() + r->timeout_ms;
        unsigned slot = r->cluster ? kurz_redis_key_slot(key, keylen) : 0;
        struct kurz_redis_node *ask_node = NULL;
        uint64_t backoff = 2;
        int rc = -EAGAIN;

        *reply = NULL;
        for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
                struct kurz_redis_node *n = ask_node;
                struct kurz_redis_redirect to;
                enum kurz_redis_err kind;
                redisReply *rep;
                uint64_t now;

                if (!n) {
                        if (r->cluster) {
                                pthread_mutex_lock(&r->mu);
                                n = r->owner[slot];
                                pthread_mutex_unlock(&r->mu);
                        } else {
                                n = r->nodes[0];
                        }
                }
                if (!n) {
                        want_refresh(r);
                        return -EAGAIN;
                }
                rc = kurz_redis_node_command(n, argc, argv, argvlen, ask_node != NULL, deadline,
                                             &rep);
                ask_node = NULL;
                if (rc < 0) {
                        /* The node may have failed over: a replica is being
                         * promoted. The caller falls back; the map follows. */
                        want_refresh(r);
                        return rc;
                }
                if (!r->cluster || !is_error(rep, &kind, &to)) {
                        *reply = rep;
                        return 0;
                }
                freeReplyObject(rep);
                if (!to.addr.host[0] &&
                    (kind == KURZ_REDIS_ERR_MOVED || kind == KURZ_REDIS_ERR_ASK))
                        snprintf(to.addr.host, sizeof(to.addr.host), "%s", kurz_redis_node_host(n));
                switch (kind) {
                case KURZ_REDIS_ERR_MOVED:
                        atomic_fetch_add(&r->moved, 1);
                        pthread_mutex_lock(&r->mu);
                        n = node_get(r, to.addr.host, to.addr.port);
                        if (n)
                                r->owner[to.slot] = n;
                        pthread_mutex_unlock(&r->mu);
                        want_refresh(r);
                        if (!n)
                                return -ENOMEM;
                        break;
                case KURZ_REDIS_ERR_ASK:
                        atomic_fetch_add(&r->ask, 1);
                        pthread_mutex_lock(&r->mu);
                        ask_node = node_get(r, to.addr.host, to.addr.port);
                        pthread_mutex_unlock(&r->mu);
                        if (!ask_node)
                                return -ENOMEM;
                        break;
                case KURZ_REDIS_ERR_TRYAGAIN:
                case KURZ_REDIS_ERR_CLUSTERDOWN:
                        atomic_fetch_add(
                            kind == KURZ_REDIS_ERR_TRYAGAIN ? &r->tryagain : &r->clusterdown, 1);
                        if (kind == KURZ_REDIS_ERR_CLUSTERDOWN)
                                want_refresh(r);
                        now = kurz_redis_now_ms();
                        if (now + backoff >= deadline)
                                return -ETIMEDOUT;
                        pause_ms(backoff);
                        backoff = backoff * 2 > 20 ? 20 : backoff * 2;
                        break;
                case KURZ_REDIS_ERR_OTHER:
                        break;
                }
                if (kurz_redis_now_ms() >= deadline)
                        return -ETIMEDOUT;
        }
        return -EAGAIN;
}

int kurz_redis_publish(struct kurz_redis *r, const char *channel, const char *msg, size_t len)
{
        const char *argv[3] = {"PUBLISH", channel, msg};
        size_t lens[3] = {7, strlen(channel), len};
        redisReply *rep;
        int rc = kurz_redis_command(r, channel, lens[1], 3, argv, lens, &rep);

        if (rc < 0)
                return rc;
        rc = rep->type == REDIS_REPLY_INTEGER ? 0 : -EIO;
        freeReplyObject(rep);
        return rc;
}

/* --- subscriber --- */

bool kurz_redis_subscribed(struct kurz_redis *r)
{
        return atomic_load(&r->subscribed);
}

/* Picks the next node to subscribe on: in cluster mode round robin over every
 * known node, healthy-looking ones first. */
static void sub_target(struct kurz_redis *r, char *host, size_t hostlen, unsigned *port)
{
        struct kurz_redis_node *n = NULL;

        pthread_mutex_lock(&r->mu);
        for (unsigned k = 0; k < r->nnodes && !n; k++) {
                struct kurz_redis_node *c = r->nodes[(r->sub_next + k) % r->nnodes];
                pthread_mutex_unlock(&r->mu);
                bool ok = kurz_redis_node_available(c);
                pthread_mutex_lock(&r->mu);
                if (ok) {
                        n = c;
                        r->sub_next = (r->sub_next + k + 1) % r->nnodes;
                }
        }
        if (!n) {
                n = r->nodes[r->sub_next % r->nnodes];
                r->sub_next = (r->sub_next + 1) % r->nnodes;
        }
        snprintf(host, hostlen, "%s", kurz_redis_node_host(n));
        *port = kurz_redis_node_port(n);
        pthread_mutex_unlock(&r->mu);
}

static bool flush_out(redisContext *c)
{
        int done = 0;

        while (!done)
                if (redisBufferWrite(c, &done) != REDIS_OK)
                        return false;
        return true;
}

/* Sleeps up to ms in small steps; false when asked to stop. */
static bool nap(struct kurz_redis *r, uint64_t ms)
{
        while (ms && !atomic_load(&r->sub_stop)) {
                uint64_t step = ms > 50 ? 50 : ms;
                pause_ms(step);
                ms -= step;
        }
        return !atomic_load(&r->sub_stop);
}

static void handle_message(struct kurz_redis *r, redisReply *m)
{
        if (m->type != REDIS_REPLY_ARRAY || m->elements < 1 ||
            m->element[0]->type != REDIS_REPLY_STRING)
                return;
        if (m->elements == 3 && strcmp(m->element[0]->str, "message") == 0 &&
            m->element[2]->type == REDIS_REPLY_STRING)
                r->fn(r->fn_arg, m->element[2]->str, m->element[2]->len);
        else if (strcmp(m->element[0]->str, "subscribe") == 0) {
                atomic_store(&r->subscribed, true);
                /* Messages published before this point never reach us. */
                r->fn(r->fn_arg, NULL, 0);
        }
}

/* One subscription session: returns when the connection is lost or on stop. */
static void sub_session(struct kurz_redis *r, redisContext *c)
{
        uint64_t last_rx = kurz_redis_now_ms(), last_ping = last_rx;
        const char *argv[2] = {"SUBSCRIBE", r->channel};
        size_t lens[2] = {9, strlen(r->channel)};

        if (r->password && *r->password) {
                const char *a[2] = {"AUTH", r->password};
                size_t al[2] = {4, strlen(r->password)};
                if (redisAppendCommandArgv(c, 2, a, al) != REDIS_OK)
                        return;
        }
        if (redisAppendCommandArgv(c, 2, argv, lens) != REDIS_OK || !flush_out(c))
                return;
        while (!atomic_load(&r->sub_stop)) {
                void *rep = NULL;
                struct pollfd pfd = {c->fd, POLLIN, 0};
                uint64_t now;

                if (redisGetReplyFromReader(c, &rep) != REDIS_OK)
                        return;
                if (rep) {
                        handle_message(r, rep);
                        freeReplyObject(rep);
                        continue;
                }
                now = kurz_redis_now_ms();
                if (now - last_rx > SUB_DEAD_MS)
                        return;
                if (now - last_ping >= SUB_PING_MS) {
                        static const char *ping[1] = {"PING"};
                        static const size_t pl[1] = {4};
                        if (redisAppendCommandArgv(c, 1, ping, pl) != REDIS_OK || !flush_out(c))
                                return;
                        last_ping = now;
                }
                if (poll(&pfd, 1, 100) > 0) {
                        if (redisBufferRead(c) != REDIS_OK)
                                return;
                        last_rx = kurz_redis_now_ms();
                }
        }
}

static void *subscriber_main(void *arg)
{
        struct kurz_redis *r = arg;
        uint64_t backoff = 100;

        while (!atomic_load(&r->sub_stop)) {
                char host[KURZ_REDIS_HOST_MAX];
                unsigned port;
                redisContext *c;
                struct timeval tv = {1, 0};
                uint64_t started;

                sub_target(r, host, sizeof(host), &port);
                c = redisConnectWithTimeout(host, (int)port, tv);
                if (c && !c->err && redisSetTimeout(c, tv) == REDIS_OK) {
                        atomic_fetch_add(&r->sub_connects, 1);
                        started = kurz_redis_now_ms();
                        sub_session(r, c);
                        if (atomic_load(&r->subscribed) && kurz_redis_now_ms() - started > 5000)
                                backoff = 100; /* it worked for a while */
                        if (!atomic_load(&r->sub_stop))
                                kurz_warn("redis: subscription on %s:%u lost; reconnecting", host,
                                          port);
                }
                atomic_store(&r->subscribed, false);
                if (c)
                        redisFree(c);
                if (!nap(r, backoff))
                        break;
                backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
        }
        return NULL;
}

int kurz_redis_subscribe(struct kurz_redis *r, const char *channel, kurz_redis_message_fn fn,
                         void *arg)
{
        int rc;

        if (r->subscriber_started)
                return -EBUSY;
        r->channel = strdup(channel);
        if (!r->channel)
                return -ENOMEM;
        r->fn = fn;
        r->fn_arg = arg;
        rc = pthread_create(&r->subscriber, NULL, subscriber_main, r);
        if (rc)
                return -rc;
        r->subscriber_started = true;
        return 0;
}

/* --- metrics --- */

int kurz_redis_metrics(struct kurz_redis *r, struct kurz_buf *out)
{
        struct kurz_redis_node *nodes[MAX_NODES];
        struct kurz_redis_node_stats st[MAX_NODES];
        unsigned n;
        int rc = 0;

        pthread_mutex_lock(&r->mu);
        n = r->nnodes;
        memcpy(nodes, r->nodes, n * sizeof(nodes[0]));
        pthread_mutex_unlock(&r->mu);
        for (unsigned i = 0; i < n; i++)
                kurz_redis_node_stats(nodes[i], &st[i]);
#define NODE_METRIC(name, type, help, expr)                                                        \
        do {                                                                                       \
                rc |=                                                                              \
                    kurz_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);  \
                for (unsigned i = 0; i < n; i++)                                                   \
                        rc |= kurz_buf_printf(out, "%s{node=\"%s:%u\"} %llu\n", name,              \
                                              kurz_redis_node_host(nodes[i]),                      \
                                              kurz_redis_node_port(nodes[i]),                      \
                                              (unsigned long long)(expr));                         \
        } while (0)
        NODE_METRIC("kurz_redis_breaker_state", "gauge",
                    "Circuit breaker per Redis node: 0 closed, 1 open, 2 half-open.", st[i].state);
        NODE_METRIC("kurz_redis_commands_total", "counter", "Commands sent per Redis node.",
                    st[i].commands);
        NODE_METRIC("kurz_redis_failures_total", "counter",
                    "Connection errors and timeouts per Redis node.", st[i].failures);
        NODE_METRIC("kurz_redis_breaker_opens_total", "counter",
                    "Times the breaker of a Redis node opened.", st[i].breaker_opens);
        NODE_METRIC("kurz_redis_connections", "gauge", "Open connections per Redis node.",
                    st[i].open_conns);
#undef NODE_METRIC
        rc |= kurz_buf_printf(out,
                              "# HELP kurz_redis_redirects_total Redis Cluster redirections "
                              "followed.\n# TYPE kurz_redis_redirects_total counter\n"
                              "kurz_redis_redirects_total{type=\"moved\"} %llu\n"
                              "kurz_redis_redirects_total{type=\"ask\"} %llu\n",
                              (unsigned long long)atomic_load(&r->moved),
                              (unsigned long long)atomic_load(&r->ask));
        rc |= kurz_buf_printf(out,
                              "# HELP kurz_redis_retries_total Commands retried after TRYAGAIN "
                              "or CLUSTERDOWN.\n# TYPE kurz_redis_retries_total counter\n"
                              "kurz_redis_retries_total{reason=\"tryagain\"} %llu\n"
                              "kurz_redis_retries_total{reason=\"clusterdown\"} %llu\n",
                              (unsigned long long)atomic_load(&r->tryagain),
                              (unsigned long long)atomic_load(&r->clusterdown));
        rc |= kurz_buf_printf(out,
                              "# HELP kurz_redis_slot_refreshes_total Slot map refreshes "
                              "(CLUSTER SLOTS).\n# TYPE kurz_redis_slot_refreshes_total counter\n"
                              "kurz_redis_slot_refreshes_total{result=\"ok\"} %llu\n"
                              "kurz_redis_slot_refreshes_total{result=\"failed\"} %llu\n",
                              (unsigned long long)atomic_load(&r->refreshes),
                              (unsigned long long)atomic_load(&r->refresh_failures));
        rc |= kurz_buf_printf(out,
                              "# HELP kurz_redis_subscribed 1 while the invalidation "
                              "subscription is up.\n# TYPE kurz_redis_subscribed gauge\n"
                              "kurz_redis_subscribed %d\n"
                              "# HELP kurz_redis_subscriber_connects_total Subscriber "
                              "connections made.\n"
                              "# TYPE kurz_redis_subscriber_connects_total counter\n"
                              "kurz_redis_subscriber_connects_total %llu\n",
                              atomic_load(&r->subscribed) ? 1 : 0,
                              (unsigned long long)atomic_load(&r->sub_connects));
        return rc ? -ENOMEM : 0;
}
