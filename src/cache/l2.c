/* cache/l2.c - the Redis cache tier: lookups, tombstone-guarded fills,
 * invalidation with retries and publishing, the subscriber's fan-out, and the
 * hotness estimate that picks a fill's TTL. */
#include "cache/l2.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "redis/client.h"
#include "redis/cluster.h"
#include "util/buf.h"
#include "util/hash.h"
#include "util/log.h"

#define HOT_SLOTS           4096         /* power of two */
#define HOT_DECAY_MS        (10 * 60000) /* access counts halve this often */
#define RETRY_MS            500          /* failed invalidations are retried this often */
#define PUBLISH_MAX         4000         /* bytes of codes per published message */
#define PUBLISH_PENDING_MAX 65536        /* unpublished codes kept at most (bytes) */
#define KEY_MAX             (KURZ_CODE_MAX + 16)

/* Fill only while no tombstone exists; the tombstone and the link share the
 * {code} hash tag, so the script touches one slot. */
static const char FILL_LUA[] = "if redis.call('EXISTS',KEYS[2])==1 then return 0 end "
                               "redis.call('SET',KEYS[1],ARGV[1],'PX',ARGV[2]) return 1";
static const char INVAL_LUA[] =
    "redis.call('SET',KEYS[2],'1','PX',ARGV[1]) redis.call('DEL',KEYS[1]) return 1";

static const double lat_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                    0.005,  0.01,    0.025,  0.05,  0.1};
#define NLAT (sizeof(lat_bounds) / sizeof(lat_bounds[0]) + 1)

enum op_kind { OP_PUT, OP_INVAL };

struct op {
        struct op *next;
        enum op_kind kind;
        uint64_t at_ms;      /* PUT: read time; INVAL: first attempt */
        uint64_t not_before; /* INVAL retries */
        int64_t expires_at;
        int64_t hits;
        size_t code_len;
        char code[KURZ_CODE_MAX + 1];
        size_t url_len;
        char url[]; /* PUT only */
};

struct kurz_l2 {
        struct kurz_redis *redis;
        uint64_t ttl_ms, max_ttl_ms, tombstone_ms;
        struct kurz_l2_tier tiers[KURZ_L2_MAX_TIERS];
        int ntiers;
        size_t max_queue;

        pthread_mutex_t mu;
        pthread_cond_t wake;
        struct op *head, *tail; /* FIFO of new work */
        struct op *retry;       /* failed invalidations */
        size_t queued, nretry;
        struct kurz_buf publish; /* codes to publish, ' '-separated */
        bool stopping;
        pthread_t thread;
        bool started;

        kurz_l2_invalidate_fn on_inval;
        void *on_inval_arg;

        _Atomic uint32_t hot[HOT_SLOTS];
        _Atomic uint64_t hits, misses, errors, fills_ok, fills_tombstoned, fills_failed,
            fills_dropped, inval_sent, inval_failed, inval_received, inval_given_up, published,
            publish_failed;
        _Atomic uint64_t lat[NLAT];
        _Atomic uint64_t lat_sum_ns;
};

/* --- encoding --- */

int kurz_l2_encode(struct kurz_buf *out, int64_t expires_at, const char *url, size_t url_len)
{
        if (expires_at < 0)
                return -EINVAL;
        if (kurz_buf_printf(out, "%" PRId64 " ", expires_at) < 0 ||
            kurz_buf_append(out, url, url_len) < 0)
                return -ENOMEM;
        return 0;
}

int kurz_l2_decode(const char *v, size_t len, int64_t *expires_at, struct kurz_str *url)
{
        int64_t e = 0;
        size_t i = 0;

        while (i < len && v[i] >= '0' && v[i] <= '9') {
                if (i >= 18)
                        return -EINVAL;
                e = e * 10 + (v[i] - '0');
                i++;
        }
        if (i == 0 || i >= len || v[i] != ' ' || len - i - 1 == 0 || len - i - 1 > KURZ_URL_MAX)
                return -EINVAL;
        *expires_at = e;
        url->p = v + i + 1;
        url->len = len - i - 1;
        return 0;
}

int kurz_l2_parse_tiers(const char *s, struct kurz_l2_tier *tiers, size_t cap)
{
        char buf[256], *save = NULL, *tok;
        int n = 0;

        if (!s || !*s || strcmp(s, "off") == 0)
                return 0;
        if (strlen(s) >= sizeof(buf))
                return -EINVAL;
        strcpy(buf, s);
        for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                char *eq = strchr(tok, '='), *end;
                unsigned long long hits;
                uint64_t ms;

                if (!eq || (size_t)n >= cap || tok[0] < '0' || tok[0] > '9')
                        return -EINVAL;
                *eq = '\0';
                hits = strtoull(tok, &end, 10);
                if (*end || kurz_config_parse_duration(eq + 1, &ms) < 0 || ms == 0)
                        return -EINVAL;
                if (n && hits <= tiers[n - 1].min_hits)
                        return -EINVAL;
                tiers[n].min_hits = hits;
                tiers[n].ttl_ms = ms;
                n++;
        }
        return n;
}

static size_t key(char *out, const char *kind, const char *code, size_t len)
{
        int n = snprintf(out, KEY_MAX, "kurz:%s:{%.*s}", kind, (int)len, code);

        return n > 0 && n < KEY_MAX ? (size_t)n : 0;
}

static unsigned hot_slot(const char *code, size_t len)
{
        return (unsigned)(kurz_hash(code, len) & (HOT_SLOTS - 1));
}

/* --- lookups --- */

int kurz_l2_get(struct kurz_l2 *l2, const char *code, size_t code_len, struct kurz_link *out)
{
        char k[KEY_MAX];
        const char *argv[2] = {"GET", k};
        size_t lens[2] = {3, key(k, "u", code, code_len)};
        uint64_t dt_ns;
        struct timespec a, b;
        redisReply *rep;
        struct kurz_str url;
        int64_t exp;
        int rc;

        if (!lens[1] || code_len == 0 || code_len > KURZ_CODE_MAX)
                return -EINVAL;
        atomic_fetch_add_explicit(&l2->hot[hot_slot(code, code_len)], 1, memory_order_relaxed);
        clock_gettime(CLOCK_MONOTONIC, &a);
        rc = kurz_redis_command(l2->redis, k, lens[1], 2, argv, lens, &rep);
        clock_gettime(CLOCK_MONOTONIC, &b);
        dt_ns = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)b.tv_nsec -
                (uint64_t)a.tv_nsec;
        {
                double s = (double)dt_ns / 1e9;
                size_t i = 0;
                while (i < NLAT - 1 && s > lat_bounds[i])
                        i++;
                atomic_fetch_add_explicit(&l2->lat[i], 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&l2->lat_sum_ns, dt_ns, memory_order_relaxed);
        }
        if (rc < 0) {
                atomic_fetch_add(&l2->errors, 1);
                return rc;
        }
        if (rep->type == REDIS_REPLY_NIL) {
                freeReplyObject(rep);
                atomic_fetch_add(&l2->misses, 1);
                return KURZ_E_NOTFOUND;
        }
        if (rep->type != REDIS_REPLY_STRING || kurz_l2_decode(rep->str, rep->len, &exp, &url) < 0) {
                freeReplyObject(rep);
                atomic_fetch_add(&l2->errors, 1);
                return -EPROTO;
        }
        memset(out, 0, sizeof(*out));
        out->url = strndup(url.p, url.len);
        freeReplyObject(rep);
        if (!out->url) {
                atomic_fetch_add(&l2->errors, 1);
                return -ENOMEM;
        }
        memcpy(out->code, code, code_len);
        out->url_len = url.len;
        out->expires_at = exp;
        atomic_fetch_add(&l2->hits, 1);
        return 0;
}

/* --- the queue --- */

static struct op *op_new(enum op_kind kind, const char *code, size_t code_len, size_t url_len)
{
        struct op *o;

        if (code_len == 0 || code_len > KURZ_CODE_MAX)
                return NULL;
        o = calloc(1, sizeof(*o) + url_len + 1);
        if (!o)
                return NULL;
        o->kind = kind;
        o->code_len = code_len;
        memcpy(o->code, code, code_len);
        return o;
}

/* Takes o; drops it when the queue is full. */
static void enqueue(struct kurz_l2 *l2, struct op *o)
{
        pthread_mutex_lock(&l2->mu);
        if (l2->queued >= l2->max_queue || l2->stopping) {
                pthread_mutex_unlock(&l2->mu);
                atomic_fetch_add(o->kind == OP_PUT ? &l2->fills_dropped : &l2->inval_given_up, 1);
                free(o);
                return;
        }
        if (l2->tail)
                l2->tail->next = o;
        else
                l2->head = o;
        l2->tail = o;
        l2->queued++;
        pthread_cond_signal(&l2->wake);
        pthread_mutex_unlock(&l2->mu);
}

static void queue_publish(struct kurz_l2 *l2, const char *code, size_t len)
{
        pthread_mutex_lock(&l2->mu);
        if (l2->publish.len + len + 1 <= PUBLISH_PENDING_MAX) {
                if (l2->publish.len)
                        kurz_buf_append(&l2->publish, " ", 1);
                kurz_buf_append(&l2->publish, code, len);
        }
        pthread_cond_signal(&l2->wake);
        pthread_mutex_unlock(&l2->mu);
}

void kurz_l2_put_async(struct kurz_l2 *l2, const char *code, size_t code_len, const char *url,
                       size_t url_len, int64_t expires_at, int64_t hits, uint64_t read_at_ms)
{
        struct op *o;

        if (url_len == 0 || url_len > KURZ_URL_MAX)
                return;
        o = op_new(OP_PUT, code, code_len, url_len);
        if (!o) {
                atomic_fetch_add(&l2->fills_dropped, 1);
                return;
        }
        memcpy(o->url, url, url_len);
        o->url_len = url_len;
        o->expires_at = expires_at;
        o->hits = hits;
        o->at_ms = read_at_ms;
        enqueue(l2, o);
}

static uint64_t ttl_for(struct kurz_l2 *l2, const char *code, size_t len, int64_t hits)
{
        uint64_t local = atomic_load_explicit(&l2->hot[hot_slot(code, len)], memory_order_relaxed);
        uint64_t h = hits > 0 && (uint64_t)hits > local ? (uint64_t)hits : local;
        uint64_t ttl = l2->ttl_ms;

        for (int i = 0; i < l2->ntiers; i++)
                if (h >= l2->tiers[i].min_hits)
                        ttl = l2->tiers[i].ttl_ms;
        return ttl;
}

static void do_put(struct kurz_l2 *l2, struct op *o)
{
        char ku[KEY_MAX], kt[KEY_MAX], ttl[24];
        struct kurz_buf v = {0};
        uint64_t ms = ttl_for(l2, o->code, o->code_len, o->hits);
        uint64_t now = kurz_redis_now_ms();
        redisReply *rep;
        int rc;

        /* A delete between the read and now left a tombstone that lives
         * tombstone_ms: a fill older than that could outlive it. */
        if (now - o->at_ms + 1000 >= l2->tombstone_ms) {
                atomic_fetch_add(&l2->fills_dropped, 1);
                return;
        }
        if (o->expires_at) {
                int64_t left_s = o->expires_at - (int64_t)time(NULL);
                if (left_s <= 0)
                        return;
                if ((uint64_t)left_s * 1000 < ms)
                        ms = (uint64_t)left_s * 1000;
        }
        if (kurz_l2_encode(&v, o->expires_at, o->url, o->url_len) < 0) {
                atomic_fetch_add(&l2->fills_failed, 1);
                kurz_buf_free(&v);
                return;
        }
        snprintf(ttl, sizeof(ttl), "%" PRIu64, ms);
        {
                const char *argv[7] = {"EVAL", FILL_LUA, "2", ku, kt, v.p, ttl};
                size_t lens[7] = {4,
                                  sizeof(FILL_LUA) - 1,
                                  1,
                                  key(ku, "u", o->code, o->code_len),
                                  key(kt, "t", o->code, o->code_len),
                                  v.len,
                                  strlen(ttl)};
                rc = kurz_redis_command(l2->redis, ku, lens[3], 7, argv, lens, &rep);
        }
        kurz_buf_free(&v);
        if (rc < 0) {
                atomic_fetch_add(&l2->fills_failed, 1);
                return;
        }
        if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1)
                atomic_fetch_add(&l2->fills_ok, 1);
        else if (rep->type == REDIS_REPLY_INTEGER)
                atomic_fetch_add(&l2->fills_tombstoned, 1);
        else
                atomic_fetch_add(&l2->fills_failed, 1);
        freeReplyObject(rep);
}

/* Tombstone + DEL in one script. Returns 0 or a negative errno. */
static int do_inval(struct kurz_l2 *l2, const char *code, size_t len)
{
        char ku[KEY_MAX], kt[KEY_MAX], ttl[24];
        redisReply *rep;
        int rc;

        snprintf(ttl, sizeof(ttl), "%" PRIu64, l2->tombstone_ms);
        {
                const char *argv[6] = {"EVAL", INVAL_LUA, "2", ku, kt, ttl};
                size_t lens[6] = {4,
                                  sizeof(INVAL_LUA) - 1,
                                  1,
                                  key(ku, "u", code, len),
                                  key(kt, "t", code, len),
                                  strlen(ttl)};
                if (!lens[3] || !lens[4])
                        return -EINVAL;
                rc = kurz_redis_command(l2->redis, ku, lens[3], 6, argv, lens, &rep);
        }
        if (rc < 0)
                return rc;
        rc = rep->type == REDIS_REPLY_INTEGER ? 0 : -EIO;
        freeReplyObject(rep);
        return rc;
}

static void retry_later(struct kurz_l2 *l2, struct op *o)
{
        o->not_before = kurz_redis_now_ms() + RETRY_MS;
        pthread_mutex_lock(&l2->mu);
        if (l2->nretry >= l2->max_queue) {
                pthread_mutex_unlock(&l2->mu);
                atomic_fetch_add(&l2->inval_given_up, 1);
                free(o);
                return;
        }
        o->next = l2->retry;
        l2->retry = o;
        l2->nretry++;
        pthread_mutex_unlock(&l2->mu);
}

int kurz_l2_invalidate(struct kurz_l2 *l2, const char *code, size_t code_len)
{
        int rc = do_inval(l2, code, code_len);
        struct op *o;

        if (rc == 0) {
                atomic_fetch_add(&l2->inval_sent, 1);
                queue_publish(l2, code, code_len);
                return 0;
        }
        atomic_fetch_add(&l2->inval_failed, 1);
        o = op_new(OP_INVAL, code, code_len, 0);
        if (o) {
                o->at_ms = kurz_redis_now_ms();
                retry_later(l2, o);
        } else {
                atomic_fetch_add(&l2->inval_given_up, 1);
        }
        return rc;
}

void kurz_l2_invalidate_async(struct kurz_l2 *l2, const char *code, size_t code_len)
{
        struct op *o = op_new(OP_INVAL, code, code_len, 0);

        if (!o) {
                atomic_fetch_add(&l2->inval_given_up, 1);
                return;
        }
        o->at_ms = kurz_redis_now_ms();
        enqueue(l2, o);
}

/* Cache thread: one INVAL attempt; failures go to the retry list until no L2
 * entry written before the delete can still be alive (max TTL). */
static void run_inval(struct kurz_l2 *l2, struct op *o)
{
        if (do_inval(l2, o->code, o->code_len) == 0) {
                atomic_fetch_add(&l2->inval_sent, 1);
                queue_publish(l2, o->code, o->code_len);
                free(o);
                return;
        }
        atomic_fetch_add(&l2->inval_failed, 1);
        if (kurz_redis_now_ms() - o->at_ms > l2->max_ttl_ms) {
                atomic_fetch_add(&l2->inval_given_up, 1);
                free(o);
                return;
        }
        retry_later(l2, o);
}

static void flush_publish(struct kurz_l2 *l2)
{
        struct kurz_buf b;

        pthread_mutex_lock(&l2->mu);
        b = l2->publish;
        l2->publish = (struct kurz_buf){0};
        pthread_mutex_unlock(&l2->mu);
        if (!b.len) {
                kurz_buf_free(&b);
                return;
        }
        /* Messages of at most PUBLISH_MAX bytes, split at spaces. */
        for (size_t off = 0; off < b.len;) {
                size_t end = off + PUBLISH_MAX < b.len ? off + PUBLISH_MAX : b.len;
                while (end < b.len && end > off && b.p[end] != ' ')
                        end--;
                if (kurz_redis_publish(l2->redis, KURZ_L2_CHANNEL, b.p + off, end - off) < 0) {
                        atomic_fetch_add(&l2->publish_failed, 1);
                        /* Put the rest back for the next round. */
                        pthread_mutex_lock(&l2->mu);
                        if (l2->publish.len + (b.len - off) + 1 <= PUBLISH_PENDING_MAX) {
                                if (l2->publish.len)
                                        kurz_buf_append(&l2->publish, " ", 1);
                                kurz_buf_append(&l2->publish, b.p + off, b.len - off);
                        }
                        pthread_mutex_unlock(&l2->mu);
                        break;
                }
                atomic_fetch_add(&l2->published, 1);
                off = end + 1;
        }
        kurz_buf_free(&b);
}

static void *l2_main(void *arg)
{
        struct kurz_l2 *l2 = arg;
        uint64_t last_decay = kurz_redis_now_ms(), last_publish_try = 0;

        pthread_mutex_lock(&l2->mu);
        while (!l2->stopping) {
                uint64_t now = kurz_redis_now_ms();
                struct op *o = l2->head, *due = NULL;

                if (o) {
                        l2->head = o->next;
                        if (!l2->head)
                                l2->tail = NULL;
                        l2->queued--;
                        pthread_mutex_unlock(&l2->mu);
                        o->next = NULL;
                        if (o->kind == OP_PUT) {
                                do_put(l2, o);
                                free(o);
                        } else {
                                run_inval(l2, o);
                        }
                        pthread_mutex_lock(&l2->mu);
                        continue;
                }
                /* Queue empty: publish, retry, decay. */
                if (l2->publish.len && now - last_publish_try >= 100) {
                        last_publish_try = now;
                        pthread_mutex_unlock(&l2->mu);
                        flush_publish(l2);
                        pthread_mutex_lock(&l2->mu);
                        continue;
                }
                for (struct op **pp = &l2->retry; *pp;) {
                        if ((*pp)->not_before <= now) {
                                struct op *r = *pp;
                                *pp = r->next;
                                r->next = due;
                                due = r;
                                l2->nretry--;
                        } else {
                                pp = &(*pp)->next;
                        }
                }
                if (due) {
                        pthread_mutex_unlock(&l2->mu);
                        while (due) {
                                struct op *next = due->next;
                                due->next = NULL;
                                run_inval(l2, due);
                                due = next;
                        }
                        pthread_mutex_lock(&l2->mu);
                        continue;
                }
                if (now - last_decay >= HOT_DECAY_MS) {
                        last_decay = now;
                        for (size_t i = 0; i < HOT_SLOTS; i++)
                                atomic_store_explicit(
                                    &l2->hot[i],
                                    atomic_load_explicit(&l2->hot[i], memory_order_relaxed) / 2,
                                    memory_order_relaxed);
                }
                {
                        uint64_t wake_at = now + (l2->publish.len ? 100 : RETRY_MS);
                        struct timespec ts = {(time_t)(wake_at / 1000),
                                              (long)(wake_at % 1000) * 1000000};
                        pthread_cond_timedwait(&l2->wake, &l2->mu, &ts);
                }
        }
        pthread_mutex_unlock(&l2->mu);
        return NULL;
}

/* --- subscription --- */

static void on_message(void *arg, const char *msg, size_t len)
{
        struct kurz_l2 *l2 = arg;
        size_t i = 0;

        if (!msg) { /* (re)subscribed: any invalidation may have been missed */
                if (l2->on_inval)
                        l2->on_inval(l2->on_inval_arg, (struct kurz_str){"", 0});
                return;
        }
        while (i < len) {
                size_t j = i;
                while (j < len && msg[j] != ' ')
                        j++;
                if (j > i && j - i <= KURZ_CODE_MAX) {
                        atomic_fetch_add(&l2->inval_received, 1);
                        if (l2->on_inval)
                                l2->on_inval(l2->on_inval_arg, (struct kurz_str){msg + i, j - i});
                }
                i = j + 1;
        }
}

int kurz_l2_subscribe(struct kurz_l2 *l2, kurz_l2_invalidate_fn fn, void *arg)
{
        l2->on_inval = fn;
        l2->on_inval_arg = arg;
        return kurz_redis_subscribe(l2->redis, KURZ_L2_CHANNEL, on_message, l2);
}

/* --- lifecycle --- */

int kurz_l2_new(const struct kurz_l2_config *cfg, struct kurz_l2 **out)
{
        struct kurz_l2 *l2;
        pthread_condattr_t ca;
        int rc;

        *out = NULL;
        l2 = calloc(1, sizeof(*l2));
        if (!l2)
                return -ENOMEM;
        l2->redis = cfg->redis;
        l2->ttl_ms = cfg->ttl_ms ? cfg->ttl_ms : 300000;
        l2->tombstone_ms = cfg->tombstone_ms ? cfg->tombstone_ms : 60000;
        l2->max_queue = cfg->max_queue ? cfg->max_queue : 10000;
        l2->ntiers = kurz_l2_parse_tiers(cfg->hot_ttls ? cfg->hot_ttls : "10=10m,100=15m,1000=30m",
                                         l2->tiers, KURZ_L2_MAX_TIERS);
        if (l2->ntiers < 0) {
                free(l2);
                return -EINVAL;
        }
        l2->max_ttl_ms = l2->ttl_ms;
        for (int i = 0; i < l2->ntiers; i++)
                if (l2->tiers[i].ttl_ms > l2->max_ttl_ms)
                        l2->max_ttl_ms = l2->tiers[i].ttl_ms;
        pthread_mutex_init(&l2->mu, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&l2->wake, &ca);
        pthread_condattr_destroy(&ca);
        rc = pthread_create(&l2->thread, NULL, l2_main, l2);
        if (rc) {
                kurz_l2_free(l2);
                return -rc;
        }
        l2->started = true;
        *out = l2;
        return 0;
}

static void free_list(struct op *o)
{
        while (o) {
                struct op *next = o->next;
                free(o);
                o = next;
        }
}

void kurz_l2_free(struct kurz_l2 *l2)
{
        if (!l2)
                return;
        pthread_mutex_lock(&l2->mu);
        l2->stopping = true;
        pthread_cond_broadcast(&l2->wake);
        pthread_mutex_unlock(&l2->mu);
        if (l2->started)
                pthread_join(l2->thread, NULL);
        /* The subscriber calls on_message(l2): it stops before l2 goes. */
        if (l2->on_inval)
                kurz_redis_unsubscribe(l2->redis);
        free_list(l2->head);
        free_list(l2->retry);
        kurz_buf_free(&l2->publish);
        pthread_cond_destroy(&l2->wake);
        pthread_mutex_destroy(&l2->mu);
        free(l2);
}

/* --- metrics --- */

static int counter(struct kurz_buf *out, const char *name, const char *help, uint64_t v)
{
        return kurz_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name,
                               name, (unsigned long long)v);
}

int kurz_l2_metrics(struct kurz_l2 *l2, struct kurz_buf *out)
{
        uint64_t cum = 0;
        size_t pending;
        int rc = 0;

        pthread_mutex_lock(&l2->mu);
        pending = l2->nretry;
        for (struct op *o = l2->head; o; o = o->next)
                pending += o->kind == OP_INVAL;
        pthread_mutex_unlock(&l2->mu);
        rc |= counter(out, "kurz_l2_hits_total", "Lookups answered by Redis (L2).",
                      atomic_load(&l2->hits));
        rc |= counter(out, "kurz_l2_misses_total", "Lookups Redis (L2) did not have.",
                      atomic_load(&l2->misses));
        rc |= counter(out, "kurz_l2_errors_total",
                      "L2 lookups that failed (timeout, breaker open, bad value); the store "
                      "answered instead.",
                      atomic_load(&l2->errors));
        rc |= kurz_buf_printf(out, "# HELP kurz_l2_get_duration_seconds Time of L2 lookups.\n"
                                   "# TYPE kurz_l2_get_duration_seconds histogram\n");
        for (size_t i = 0; i < NLAT; i++) {
                cum += atomic_load(&l2->lat[i]);
                if (i < NLAT - 1)
                        rc |= kurz_buf_printf(
                            out, "kurz_l2_get_duration_seconds_bucket{le=\"%g\"} %llu\n",
                            lat_bounds[i], (unsigned long long)cum);
                else
                        rc |= kurz_buf_printf(
                            out, "kurz_l2_get_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                            (unsigned long long)cum);
        }
        rc |= kurz_buf_printf(out,
                              "kurz_l2_get_duration_seconds_sum %.9f\n"
                              "kurz_l2_get_duration_seconds_count %llu\n",
                              (double)atomic_load(&l2->lat_sum_ns) / 1e9, (unsigned long long)cum);
        rc |= kurz_buf_printf(
            out,
            "# HELP kurz_l2_fills_total L2 writes by result.\n# TYPE kurz_l2_fills_total counter\n"
            "kurz_l2_fills_total{result=\"ok\"} %llu\n"
            "kurz_l2_fills_total{result=\"tombstoned\"} %llu\n"
            "kurz_l2_fills_total{result=\"failed\"} %llu\n"
            "kurz_l2_fills_total{result=\"dropped\"} %llu\n",
            (unsigned long long)atomic_load(&l2->fills_ok),
            (unsigned long long)atomic_load(&l2->fills_tombstoned),
            (unsigned long long)atomic_load(&l2->fills_failed),
            (unsigned long long)atomic_load(&l2->fills_dropped));
        rc |= counter(out, "kurz_l2_invalidations_sent_total",
                      "Codes removed from L2 (tombstone + DEL) by this process.",
                      atomic_load(&l2->inval_sent));
        rc |= counter(out, "kurz_l2_invalidation_failures_total",
                      "L2 invalidation attempts that failed (retried).",
                      atomic_load(&l2->inval_failed));
        rc |= counter(out, "kurz_l2_invalidations_abandoned_total",
                      "Invalidations given up (queue full or older than the longest L2 TTL).",
                      atomic_load(&l2->inval_given_up));
        rc |= counter(out, "kurz_l2_invalidations_received_total",
                      "Invalidated codes received on the pub/sub channel.",
                      atomic_load(&l2->inval_received));
        rc |= counter(out, "kurz_l2_publishes_total", "Invalidation messages published.",
                      atomic_load(&l2->published));
        rc |= counter(out, "kurz_l2_publish_failures_total",
                      "Invalidation messages that could not be published (retried).",
                      atomic_load(&l2->publish_failed));
        rc |= kurz_buf_printf(out,
                              "# HELP kurz_l2_pending_invalidations Invalidations waiting for a "
                              "(re)try.\n# TYPE kurz_l2_pending_invalidations gauge\n"
                              "kurz_l2_pending_invalidations %zu\n",
                              pending);
        if (rc)
                return -ENOMEM;
        return kurz_redis_metrics(l2->redis, out);
}
