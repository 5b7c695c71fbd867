/* tests/unit/test_l1.c - the L1 cache: hits, misses, TTL and link expiry,
 * negative entries, invalidation that a racing fill cannot undo, the size
 * bound and its memory cost, lock-free readers racing writers, and a hit rate
 * at least that of an ideal LRU on Zipf traffic. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "cache/l1.h"
#include "test.h"
#include "util/qsbr.h"

static struct kurz_qsbr *q;

static struct kurz_l1 *make(size_t max, unsigned ttl, unsigned neg_ttl)
{
        struct kurz_l1_config cfg = {max, ttl, neg_ttl, q};

        return kurz_l1_new(&cfg);
}

static int put(struct kurz_l1 *c, const char *code, const char *url, int64_t expires_at,
               uint64_t now)
{
        struct kurz_str k = kurz_str_c(code);

        return kurz_l1_put(c, k, kurz_str_c(url), expires_at, kurz_l1_seq(c, k), now);
}

/* Returns the result; on a hit copies the URL into buf. */
static enum kurz_l1_result get(struct kurz_l1 *c, const char *code, uint64_t now, char *buf,
                               size_t cap)
{
        struct kurz_l1_hit hit;
        enum kurz_l1_result r = kurz_l1_get(c, kurz_str_c(code), now, &hit);

        buf[0] = '\0';
        if (r == KURZ_L1_HIT && hit.url.len < cap) {
                memcpy(buf, hit.url.p, hit.url.len);
                buf[hit.url.len] = '\0';
        }
        return r;
}

static void test_basic(void)
{
        struct kurz_l1 *c = make(1000, 30000, 5000);
        struct kurz_l1_hit hit;
        char buf[256];

        CHECK(c != NULL);
        CHECK_EQ_INT(get(c, "abc", 1000, buf, sizeof(buf)), KURZ_L1_MISS);
        CHECK_EQ_INT(put(c, "abc", "https://example.com/a", 0, 1000), 0);
        CHECK_EQ_INT(get(c, "abc", 1001, buf, sizeof(buf)), KURZ_L1_HIT);
        CHECK_EQ_STR(buf, "https://example.com/a");
        CHECK_EQ_INT(get(c, "abd", 1001, buf, sizeof(buf)), KURZ_L1_MISS);
        CHECK_EQ_INT(get(c, "ab", 1001, buf, sizeof(buf)), KURZ_L1_MISS);

        /* Replacement. */
        CHECK_EQ_INT(put(c, "abc", "https://example.com/b", 0, 1002), 0);
        CHECK_EQ_INT(get(c, "abc", 1003, buf, sizeof(buf)), KURZ_L1_HIT);
        CHECK_EQ_STR(buf, "https://example.com/b");
        CHECK_EQ_INT(kurz_l1_get(c, KURZ_STR_LIT("abc"), 1003, &hit), KURZ_L1_HIT);
        CHECK_EQ_INT(hit.expires_at, 0);

        struct kurz_l1_stats st;
        kurz_l1_stats(c, &st);
        CHECK_EQ_INT(st.entries, 1);
        kurz_qsbr_quiescent(q, 0);
        kurz_l1_free(c);
}

static void test_ttl(void)
{
        struct kurz_l1 *c = make(1000, 30000, 5000);
        char buf[256];

        CHECK_EQ_INT(put(c, "t1", "https://x/t1", 0, 1000), 0);
        CHECK_EQ_INT(get(c, "t1", 30999, buf, sizeof(buf)), KURZ_L1_HIT);
        CHECK_EQ_INT(get(c, "t1", 31000, buf, sizeof(buf)), KURZ_L1_MISS);
        /* A fresh put brings it back. */
        CHECK_EQ_INT(put(c, "t1", "https://x/t1", 0, 31000), 0);
        CHECK_EQ_INT(get(c, "t1", 31001, buf, sizeof(buf)), KURZ_L1_HIT);
        kurz_qsbr_quiescent(q, 0);
        kurz_l1_free(c);
}

static void test_link_expiry(void)
{
        struct kurz_l1 *c = make(1000, 30000, 5000);
        int64_t now_s = (int64_t)time(NULL);
        struct kurz_l1_hit hit;
        char buf[256];

        /* Expires within 2 s of wall time although the TTL is 30 s. */
        CHECK_EQ_INT(put(c, "e1", "https://x/e1", now_s + 2, 1000), 0);
        CHECK_EQ_INT(kurz_l1_get(c, KURZ_STR_LIT("e1"), 1000, &hit), KURZ_L1_HIT);
        CHECK_EQ_INT(hit.expires_at, now_s + 2);
        CHECK_EQ_INT(get(c, "e1", 1000 + 2001, buf, sizeof(buf)), KURZ_L1_MISS);

        /* A link expiring after the TTL keeps the TTL. */
        CHECK_EQ_INT(put(c, "e2", "https://x/e2", now_s + 3600, 1000), 0);
        CHECK_EQ_INT(get(c, "e2", 30999, buf, sizeof(buf)), KURZ_L1_HIT);
        CHECK_EQ_INT(get(c, "e2", 31000, buf, sizeof(buf)), KURZ_L1_MISS);

        /* Already expired: not cached, and an older copy is dropped. */
        CHECK_EQ_INT(put(c, "e3", "https://x/e3", 0, 1000), 0);
        CHECK_EQ_INT(put(c, "e3", "https://x/e3", now_s - 1, 1000), 0);
        CHECK_EQ_INT(get(c, "e3", 1001, buf, sizeof(buf)), KURZ_L1_MISS);
        kurz_qsbr_quiescent(q, 0);
        kurz_l1_free(c);
}

static void test_negative(void)
{
        struct kurz_l1 *c = make(1000, 30000, 5000);
        struct kurz_str k = KURZ_STR_LIT("nope");
        char buf[256];

        CHECK_EQ_INT(kurz_l1_put_negative(c, k, kurz_l1_seq(c, k), 1000), 0);
        CHECK_EQ_INT(get(c, "nope", 5999, buf, sizeof(buf)), KURZ_L1_NEGATIVE);
        CHECK_EQ_INT(get(c, "nope", 6000, buf, sizeof(buf)), KURZ_L1_MISS);
        /* A create replaces the negative entry. */
        CHECK_EQ_INT(kurz_l1_put_negative(c, k, kurz_l1_seq(c, k), 1000), 0);
        CHECK_EQ_INT(put(c, "nope", "https://x/nope", 0, 1001), 0);
        CHECK_EQ_INT(get(c, "nope", 1002, buf, sizeof(buf)), KURZ_L1_HIT);
        CHECK_EQ_STR(buf, "https://x/nope");
        kurz_qsbr_quiescent(q, 0);
        kurz_l1_free(c);

        /* negative_ttl_ms 0 disables them. */
        c = make(1000, 30000, 0);
        CHECK_EQ_INT(kurz_l1_put_negative(c, k, kurz_l1_seq(c, k), 1000), 0);
        CHECK_EQ_INT(get(c, "nope", 1001, buf, sizeof(buf)), KURZ_L1_MISS);
        kurz_l1_free(c);
}

static void test_invalidate(void)
{
        struct kurz_l1 *c = make(1000, 30000, 5000);
        struct kurz_str k = KURZ_STR_LIT("del");
        uint64_t seq;
        char buf[256];

        CHECK_EQ_INT(put(c, "del", "https://x/del", 0, 1000), 0);
        /* A miss reads seq, asks the store (which still has the link)... */
        seq = kurz_l1_seq(c, k);
        /* ...meanwhile the link is deleted and invalidated... */
        kurz_l1_invalidate(c, k);
        CHECK(kurz_l1_seq(c, k) != seq);
        CHECK_EQ_INT(get(c, "del", 1001, buf, sizeof(buf)), KURZ_L1_MISS);
        /* ...so the late fill must not resurrect it. */
        CHECK_EQ_INT(kurz_l1_put(c, k, KURZ_STR_LIT("https://x/del"), 0, seq, 1002), -ESTALE);
        CHECK_EQ_INT(kurz_l1_put_negative(c, k, seq, 1002), -ESTALE);
        CHECK_EQ_INT(get(c, "del", 1003, buf, sizeof(buf)), KURZ_L1_MISS);
        /* A fill that started after the invalidation is fine. */
        CHECK_EQ_INT(put(c, "del", "https://x/del2", 0, 1004), 0);
        CHECK_EQ_INT(get(c, "del", 1005, buf, sizeof(buf)), KURZ_L1_HIT);
        CHECK_EQ_STR(buf, "https://x/del2");
        /* Invalidating an absent code still bumps the sequence. */
        seq = kurz_l1_seq(c, KURZ_STR_LIT("zz"));
        kurz_l1_invalidate(c, KURZ_STR_LIT("zz"));
        CHECK_EQ_INT(kurz_l1_put_negative(c, KURZ_STR_LIT("zz"), seq, 1006), -ESTALE);
        kurz_qsbr_quiescent(q, 0);
        kurz_l1_free(c);
}

/* After a gap in the invalidation stream every entry may be stale: all go,
 * and no fill that started before can bring one back. */
static void test_invalidate_all(void)
{
        struct kurz_l1 *c = make(10000, 30000, 5000);
        struct kurz_l1_stats st;
        char code[16], buf[256];
        uint64_t seq;

        for (unsigned long i = 0; i < 2000; i++) {
                snprintf(code, sizeof(code), "ia%lu", i);
                CHECK_EQ_INT(put(c, code, "https://x/ia", 0, 1000), 0);
        }
        CHECK_EQ_INT(
            kurz_l1_put_negative(c, KURZ_STR_LIT("neg"), kurz_l1_seq(c, KURZ_STR_LIT("neg")), 1000),
            0);
        seq = kurz_l1_seq(c, KURZ_STR_LIT("ia7"));
        kurz_l1_invalidate_all(c);
        kurz_l1_stats(c, &st);
        CHECK_EQ_INT(st.entries, 0);
        for (unsigned long i = 0; i < 2000; i += 97) {
                snprintf(code, sizeof(code), "ia%lu", i);
                CHECK_EQ_INT(get(c, code, 1001, buf, sizeof(buf)), KURZ_L1_MISS);
        }
        CHECK_EQ_INT(get(c, "neg", 1001, buf, sizeof(buf)), KURZ_L1_MISS);
        CHECK_EQ_INT(
            kurz_l1_put(c, KURZ_STR_LIT("ia7"), KURZ_STR_LIT("https://x/old"), 0, seq, 1002),
            -ESTALE);
        /* The cache works as before afterwards. */
        CHECK_EQ_INT(put(c, "ia7", "https://x/new", 0, 1003), 0);
        CHECK_EQ_INT(get(c, "ia7", 1004, buf, sizeof(buf)), KURZ_L1_HIT);
        CHECK_EQ_STR(buf, "https://x/new");
        kurz_qsbr_quiescent(q, 0);
        kurz_l1_free(c);
        /* A disabled cache: nothing to do. */
        c = make(0, 30000, 5000);
        kurz_l1_invalidate_all(c);
        kurz_l1_free(c);
}

static void test_disabled(void)
{
        struct kurz_l1 *c = make(0, 30000, 5000);
        struct kurz_l1_stats st;
        char buf[64];

        CHECK(c != NULL);
        CHECK_EQ_INT(put(c, "a", "https://x/a", 0, 1000), 0);
        CHECK_EQ_INT(kurz_l1_put_negative(c, KURZ_STR_LIT("b"), 0, 1000), 0);
        CHECK_EQ_INT(get(c, "a", 1001, buf, sizeof(buf)), KURZ_L1_MISS);
        CHECK_EQ_INT(get(c, "b", 1001, buf, sizeof(buf)), KURZ_L1_MISS);
        kurz_l1_invalidate(c, KURZ_STR_LIT("a"));
        kurz_l1_stats(c, &st);
        CHECK_EQ_INT(st.entries, 0);
        kurz_l1_free(c);
}

/* "c" and i in base 36: a distinct code per i, cheaper than sprintf. */
static void code_of(unsigned long i, char *out)
{
        char tmp[16];
        size_t n = 0;

        do {
                tmp[n++] = "0123456789abcdefghijklmnopqrstuvwxyz"[i % 36];
                i /= 36;
        } while (i);
        *out++ = 'c';
        while (n)
                *out++ = tmp[--n];
        *out = '\0';
}

static void test_capacity(void)
{
        const size_t max = 1000;
        struct kurz_l1 *c = make(max, 30000, 5000);
        struct kurz_l1_stats st;
        char code[32], url[64], buf[64];
        size_t present = 0;

        for (unsigned long i = 0; i < 10 * max; i++) {
                code_of(i, code);
                snprintf(url, sizeof(url), "https://x/%s", code);
                CHECK_EQ_INT(put(c, code, url, 0, 1000), 0);
                kurz_l1_stats(c, &st);
                if (st.entries > max) {
                        CHECK(st.entries <= max);
                        break;
                }
                if (i % 100 == 0)
                        kurz_qsbr_quiescent(q, 0);
        }
        kurz_l1_stats(c, &st);
        /* Full, and never beyond (test_memory shows that codes spread
         * unevenly over the shards still fill it). */
        CHECK_EQ_INT(st.entries, max);
        CHECK(st.evictions >= 9 * max);
        for (unsigned long i = 0; i < 10 * max; i++) {
                code_of(i, code);
                if (get(c, code, 1001, buf, sizeof(buf)) == KURZ_L1_HIT) {
                        present++;
                        CHECK(strcmp(buf + strlen("https://x/"), code) == 0);
                }
        }
        CHECK_EQ_INT(present, st.entries);
        kurz_qsbr_quiescent(q, 0);
        kurz_qsbr_reclaim(q);
        kurz_l1_free(c);
}

static void test_memory(void)
{
        const size_t n = 100000;
        struct kurz_l1 *c = make(n, 30000, 5000);
        struct kurz_l1_stats st;
        char code[32], url[64];

        for (unsigned long i = 0; i < n; i++) {
                code_of(i, code);
                /* 50-byte URLs. */
                snprintf(url, sizeof(url), "https://example.com/%030lu", i);
                CHECK_EQ_INT(put(c, code, url, 0, 1000), 0);
        }
        kurz_l1_stats(c, &st);
        printf("     %zu entries, %zu bytes, %.1f bytes/entry (URL 50)\n", st.entries, st.bytes,
               (double)st.bytes / (double)st.entries);
        CHECK_EQ_INT(st.entries, n); /* n codes fit a cache of n */
        CHECK_EQ_INT(st.evictions, 0);
        CHECK(st.bytes <= st.entries * (150 + 50));
        /* Emptied, it takes n other codes without evicting any: the global
         * count went back to 0. */
        kurz_l1_invalidate_all(c);
        kurz_qsbr_quiescent(q, 0);
        kurz_l1_stats(c, &st);
        CHECK_EQ_INT(st.entries, 0);
        for (unsigned long i = n; i < 2 * n; i++) {
                code_of(i, code);
                snprintf(url, sizeof(url), "https://example.com/%030lu", i);
                CHECK_EQ_INT(put(c, code, url, 0, 1000), 0);
                if (i % 1000 == 0)
                        kurz_qsbr_quiescent(q, 0);
        }
        kurz_l1_stats(c, &st);
        CHECK_EQ_INT(st.entries, n);
        CHECK_EQ_INT(st.evictions, 0);
        kurz_qsbr_quiescent(q, 0);
        kurz_qsbr_reclaim(q);
        kurz_l1_free(c);
}

/* --- readers racing writers --- */

#define RACE_CODES   512
#define RACE_READERS 3

static struct kurz_qsbr *race_q;
static struct kurz_l1 *race_c;
static atomic_bool race_stop;
static atomic_long race_hits, race_bad;

static uint64_t xorshift(uint64_t *s)
{
        uint64_t x = *s;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return *s = x;
}

static void *race_reader(void *arg)
{
        unsigned id = (unsigned)(uintptr_t)arg;
        uint64_t rnd = 0x9e3779b97f4a7c15ull * (id + 1);
        char code[32];
        long hits = 0;

        kurz_qsbr_online(race_q, id);
        while (!atomic_load_explicit(&race_stop, memory_order_relaxed)) {
                struct kurz_l1_hit hit;
                struct kurz_str k;

                code_of(xorshift(&rnd) % RACE_CODES, code);
                k = kurz_str_c(code);
                if (kurz_l1_get(race_c, k, 1000, &hit) == KURZ_L1_HIT) {
                        hits++;
                        if (hit.url.len != 10 + k.len || memcmp(hit.url.p, "https://x/", 10) ||
                            memcmp(hit.url.p + 10, k.p, k.len))
                                atomic_fetch_add(&race_bad, 1);
                }
                kurz_qsbr_quiescent(race_q, id);
        }
        kurz_qsbr_offline(race_q, id);
        atomic_fetch_add(&race_hits, hits);
        return NULL;
}

static void *race_writer(void *arg)
{
        uint64_t rnd = 0x243f6a8885a308d3ull * ((uintptr_t)arg + 7);
        char code[32], url[64];

        for (unsigned long i = 0; i < 100000; i++) {
                unsigned long r = xorshift(&rnd);
                struct kurz_str k;

                code_of(r % RACE_CODES, code);
                k = kurz_str_c(code);
                if (r % 8 == 0) {
                        kurz_l1_invalidate(race_c, k);
                } else if (r % 8 == 1) {
                        kurz_l1_put_negative(race_c, k, kurz_l1_seq(race_c, k), 1000);
                } else {
                        snprintf(url, sizeof(url), "https://x/%s", code);
                        kurz_l1_put(race_c, k, kurz_str_c(url), 0, kurz_l1_seq(race_c, k), 1000);
                }
        }
        return NULL;
}

static void test_concurrent(void)
{
        pthread_t r[RACE_READERS], w[2];
        struct kurz_l1_config cfg = {128, 30000, 5000, NULL};
        struct kurz_l1_stats st;

        race_q = kurz_qsbr_new(RACE_READERS);
        cfg.qsbr = race_q;
        race_c = kurz_l1_new(&cfg);
        CHECK(race_q && race_c);
        if (!race_q || !race_c)
                return;
        for (unsigned i = 0; i < RACE_READERS; i++)
                pthread_create(&r[i], NULL, race_reader, (void *)(uintptr_t)i);
        for (unsigned i = 0; i < 2; i++)
                pthread_create(&w[i], NULL, race_writer, (void *)(uintptr_t)i);
        for (unsigned i = 0; i < 2; i++)
                pthread_join(w[i], NULL);
        atomic_store(&race_stop, true);
        for (unsigned i = 0; i < RACE_READERS; i++)
                pthread_join(r[i], NULL);
        kurz_l1_stats(race_c, &st);
        printf("     %ld reader hits, %zu entries, %llu evictions, %zu pending\n",
               atomic_load(&race_hits), st.entries, (unsigned long long)st.evictions,
               kurz_qsbr_pending(race_q));
        CHECK_EQ_INT(atomic_load(&race_bad), 0);
        CHECK(atomic_load(&race_hits) > 0);
        CHECK(st.entries <= 128);
        /* Writers reclaimed along the way: garbage stayed bounded, and with
         * every reader offline all of it goes now. */
        CHECK(kurz_qsbr_pending(race_q) < 10000);
        kurz_qsbr_reclaim(race_q);
        CHECK_EQ_INT(kurz_qsbr_pending(race_q), 0);
        kurz_l1_free(race_c);
        kurz_qsbr_free(race_q);
}

/* --- hit rate against an ideal LRU on a Zipf trace --- */

#define ZIPF_KEYS     1000000
#define ZIPF_CACHE    100000
#define ZIPF_ACCESSES 1200000

struct lru {
        int32_t *prev, *next;
        bool *in;
        int32_t head, tail;
        size_t size, cap;
};

static bool lru_access(struct lru *l, int32_t k)
{
        bool hit = l->in[k];

        if (hit) {
                if (l->head == k)
                        return true;
                /* unlink */
                l->next[l->prev[k]] = l->next[k];
                if (l->next[k] >= 0)
                        l->prev[l->next[k]] = l->prev[k];
                else
                        l->tail = l->prev[k];
        } else {
                l->in[k] = true;
                l->size++;
        }
        /* push front */
        l->prev[k] = -1;
        l->next[k] = l->head;
        if (l->head >= 0)
                l->prev[l->head] = k;
        l->head = k;
        if (l->tail < 0)
                l->tail = k;
        if (l->size > l->cap) {
                int32_t t = l->tail;

                l->tail = l->prev[t];
                l->next[l->tail] = -1;
                l->in[t] = false;
                l->size--;
        }
        return hit;
}

static void zipf_case(double s)
{
        double *cdf = malloc(sizeof(double) * ZIPF_KEYS), sum = 0;
        int32_t *guide = malloc(sizeof(int32_t) * ZIPF_KEYS);
        struct lru l = {
            malloc(sizeof(int32_t) * ZIPF_KEYS),
            malloc(sizeof(int32_t) * ZIPF_KEYS),
            calloc(ZIPF_KEYS, sizeof(bool)),
            -1,
            -1,
            0,
            ZIPF_CACHE,
        };
        struct kurz_l1 *c = make(ZIPF_CACHE, 1u << 30, 5000);
        uint64_t rnd = 88172645463325252ull;
        size_t lru_hits = 0, l1_hits = 0;
        char code[32], url[64];

        CHECK(cdf && guide && l.prev && l.next && l.in && c);
        for (size_t i = 0; i < ZIPF_KEYS; i++) {
                sum += 1.0 / pow((double)(i + 1), s);
                cdf[i] = sum;
        }
        /* guide[j]: the first rank whose cdf reaches j/ZIPF_KEYS of the sum,
         * so a draw needs a short scan instead of a binary search. */
        for (size_t j = 0, i = 0; j < ZIPF_KEYS; j++) {
                while (cdf[i] < sum * (double)j / ZIPF_KEYS)
                        i++;
                guide[j] = (int32_t)i;
        }
        for (unsigned long n = 0; n < ZIPF_ACCESSES; n++) {
                double u = (double)(xorshift(&rnd) >> 11) / 9007199254740992.0 * sum;
                size_t j = (size_t)(u / sum * ZIPF_KEYS), lo;
                struct kurz_l1_hit hit;
                struct kurz_str k;

                lo = guide[j < ZIPF_KEYS ? j : ZIPF_KEYS - 1];
                while (lo < ZIPF_KEYS - 1 && cdf[lo] < u)
                        lo++;
                /* Scatter ranks over the key space. */
                code_of((lo * 2654435761u) % 4294967291u, code);
                k = kurz_str_c(code);
                lru_hits += lru_access(&l, (int32_t)lo);
                if (kurz_l1_get(c, k, 1000, &hit) == KURZ_L1_HIT) {
                        l1_hits++;
                } else {
                        snprintf(url, sizeof(url), "https://x/%s", code);
                        kurz_l1_put(c, k, kurz_str_c(url), 0, kurz_l1_seq(c, k), 1000);
                }
                if (n % 256 == 0)
                        kurz_qsbr_quiescent(q, 0);
        }
        printf("     zipf s=%.1f: L1 hit rate %.4f, ideal LRU %.4f\n", s,
               (double)l1_hits / ZIPF_ACCESSES, (double)lru_hits / ZIPF_ACCESSES);
        CHECK((double)l1_hits / ZIPF_ACCESSES >= (double)lru_hits / ZIPF_ACCESSES - 0.01);
        kurz_qsbr_quiescent(q, 0);
        kurz_qsbr_reclaim(q);
        kurz_l1_free(c);
        free(cdf);
        free(guide);
        free(l.prev);
        free(l.next);
        free(l.in);
}

static void test_hit_rate(void)
{
        zipf_case(1.0);
        zipf_case(0.8);
}

int main(void)
{
        q = kurz_qsbr_new(1);
        kurz_qsbr_online(q, 0);
        RUN(test_basic);
        RUN(test_ttl);
        RUN(test_link_expiry);
        RUN(test_negative);
        RUN(test_invalidate);
        RUN(test_invalidate_all);
        RUN(test_disabled);
        RUN(test_capacity);
        RUN(test_memory);
        RUN(test_concurrent);
        RUN(test_hit_rate);
        kurz_qsbr_offline(q, 0);
        kurz_qsbr_free(q);
        TEST_END("l1");
}
