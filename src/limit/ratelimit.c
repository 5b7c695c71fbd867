/* limit/ratelimit.c - sliding-window rate limits per key. Each key keeps the
 * count of the current fixed window and of the previous one; the estimate at
 * time t is prev * (time left in the current window) / window + cur, which
 * smooths the burst a fixed window allows at its edges. Keys live in 64
 * striped chained hash tables, each with a mutex, a bounded size and an LRU
 * list, so a flood of new clients evicts idle ones instead of growing memory. */
#include "limit/ratelimit.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/hash.h"

#define RL_MAX_STRIPES    64
#define RL_MIN_PER_STRIPE 16
#define RL_KEY_MAX        64 /* bytes of a key kept; longer keys are told apart by hash */

struct rl_entry {
        struct rl_entry *next;                /* hash chain */
        struct rl_entry *lru_prev, *lru_next; /* most recently seen first */
        uint64_t hash;
        uint64_t window;  /* index (now_ms / window_ms) of the current window */
        uint64_t last_ms; /* last request seen */
        uint32_t prev;    /* count of the window before `window` */
        uint32_t cur;     /* count of `window` */
        size_t key_len;   /* full length of the key */
        char key[RL_KEY_MAX];
};

struct stripe {
        alignas(64) pthread_mutex_t lock;
        struct rl_entry **buckets;
        size_t mask;
        struct rl_entry lru; /* sentinel of the circular LRU list */
        size_t count, cap;
};

struct kurz_ratelimit {
        unsigned limit;
        uint64_t window_ms;
        unsigned nstripes;
        uint8_t key[16];
        struct stripe *stripes;
};

struct kurz_ratelimit *kurz_ratelimit_new(unsigned limit, unsigned window_ms, size_t max_keys)
{
        struct kurz_ratelimit *rl;
        unsigned n, i;

        rl = calloc(1, sizeof(*rl));
        if (!rl)
                return NULL;
        rl->limit = limit;
        rl->window_ms = window_ms ? window_ms : 1;
        kurz_hash_random_key(rl->key);
        if (max_keys == 0)
                max_keys = 1; /* a limit needs somewhere to count */
        n = RL_MAX_STRIPES;
        while (n > 1 && max_keys / n < RL_MIN_PER_STRIPE)
                n /= 2;
        rl->stripes = aligned_alloc(alignof(struct stripe), sizeof(struct stripe) * n);
        if (!rl->stripes)
                goto out_free_rl;
        for (i = 0; i < n; i++) {
                struct stripe *s = &rl->stripes[i];
                size_t nb = 4;

                s->cap = max_keys / n + (i < max_keys % n);
                while (nb < s->cap)
                        nb *= 2;
                s->buckets = calloc(nb, sizeof(*s->buckets));
                if (!s->buckets)
                        goto out_free_stripes;
                if (pthread_mutex_init(&s->lock, NULL) != 0) {
                        free(s->buckets);
                        goto out_free_stripes;
                }
                s->mask = nb - 1;
                s->lru.lru_prev = s->lru.lru_next = &s->lru;
                s->count = 0;
        }
        rl->nstripes = n;
        return rl;

out_free_stripes:
        while (i-- > 0) {
                pthread_mutex_destroy(&rl->stripes[i].lock);
                free(rl->stripes[i].buckets);
        }
        free(rl->stripes);
out_free_rl:
        free(rl);
        return NULL;
}

void kurz_ratelimit_free(struct kurz_ratelimit *rl)
{
        if (!rl)
                return;
        for (unsigned i = 0; i < rl->nstripes; i++) {
                struct stripe *s = &rl->stripes[i];
                struct rl_entry *e = s->lru.lru_next;

                while (e != &s->lru) {
                        struct rl_entry *next = e->lru_next;

                        free(e);
                        e = next;
                }
                free(s->buckets);
                pthread_mutex_destroy(&s->lock);
        }
        free(rl->stripes);
        free(rl);
}

static void lru_unlink(struct rl_entry *e)
{
        e->lru_prev->lru_next = e->lru_next;
        e->lru_next->lru_prev = e->lru_prev;
}

static void lru_push_front(struct stripe *s, struct rl_entry *e)
{
        e->lru_prev = &s->lru;
        e->lru_next = s->lru.lru_next;
        s->lru.lru_next->lru_prev = e;
        s->lru.lru_next = e;
}

static void stripe_unlink(struct stripe *s, struct rl_entry *e)
{
        struct rl_entry **link = &s->buckets[e->hash & s->mask];

        while (*link != e)
                link = &(*link)->next;
        *link = e->next;
        lru_unlink(e);
        s->count--;
}

/* The stripe is full: drops every key idle for more than two windows (their
 * counts no longer matter), or else the least recently seen one. Returns one
 * of the dropped entries for reuse. */
static struct rl_entry *stripe_evict(struct kurz_ratelimit *rl, struct stripe *s, uint64_t now_ms)
{
        struct rl_entry *e, *keep = NULL;

        while ((e = s->lru.lru_prev) != &s->lru) {
                bool idle = now_ms > e->last_ms && now_ms - e->last_ms > 2 * rl->window_ms;

                if (!idle && keep)
                        break;
                stripe_unlink(s, e);
                if (keep)
                        free(keep);
                keep = e;
                if (!idle)
                        break;
        }
        return keep;
}

static struct rl_entry *stripe_find(struct stripe *s, uint64_t h, struct kurz_str key)
{
        size_t kept = key.len < RL_KEY_MAX ? key.len : RL_KEY_MAX;

        for (struct rl_entry *e = s->buckets[h & s->mask]; e; e = e->next)
                if (e->hash == h && e->key_len == key.len &&
                    (kept == 0 || memcmp(e->key, key.p, kept) == 0))
                        return e;
        return NULL;
}

/* Milliseconds from now until one more request would be allowed, given that
 * it is refused now. `elapsed` is the time since the current window began. */
static uint64_t wait_ms(const struct kurz_ratelimit *rl, const struct rl_entry *e, uint64_t elapsed)
{
        uint64_t w = rl->window_ms, lim = rl->limit;

        /* Allowed at elapsed x when prev * (w - x) + (cur + 1) * w <= lim * w,
         * i.e. x >= w - (lim - 1 - cur) * w / prev. */
        if (e->cur < lim) {
                uint64_t x = w - (lim - 1 - e->cur) * w / e->prev;

                return x > elapsed ? x - elapsed : 1;
        }
        /* The current window is used up: wait for the next one, where today's
         * count becomes prev and must decay below lim - 1. */
        return (w - elapsed) + (w - (lim - 1) * w / e->cur);
}

bool kurz_ratelimit_take(struct kurz_ratelimit *rl, struct kurz_str key, uint64_t now_ms,
                         unsigned *retry_after_s)
{
        uint64_t h, win, elapsed, w = rl->window_ms;
        struct stripe *s;
        struct rl_entry *e;
        bool allowed;

        if (rl->limit == 0)
                return true;
        h = kurz_siphash(rl->key, key.p, key.len);
        s = &rl->stripes[(h >> 58) & (rl->nstripes - 1)];
        win = now_ms / w;

        pthread_mutex_lock(&s->lock);
        e = stripe_find(s, h, key);
        if (e) {
                lru_unlink(e);
        } else {
                e = s->count >= s->cap ? stripe_evict(rl, s, now_ms) : NULL;
                if (!e)
                        e = malloc(sizeof(*e));
                if (!e) {
                        /* Out of memory: fail open rather than refuse everyone. */
                        pthread_mutex_unlock(&s->lock);
                        return true;
                }
                e->hash = h;
                e->window = win;
                e->prev = e->cur = 0;
                e->key_len = key.len;
                if (key.len)
                        memcpy(e->key, key.p, key.len < RL_KEY_MAX ? key.len : RL_KEY_MAX);
                e->next = s->buckets[h & s->mask];
                s->buckets[h & s->mask] = e;
                s->count++;
        }
        lru_push_front(s, e);
        e->last_ms = now_ms;

        /* Roll the windows forward (a clock that went back stays in place). */
        if (win == e->window + 1) {
                e->prev = e->cur;
                e->cur = 0;
                e->window = win;
        } else if (win > e->window + 1) {
                e->prev = e->cur = 0;
                e->window = win;
        }
        elapsed = win == e->window ? now_ms - win * w : 0;

        allowed = (uint64_t)e->prev * (w - elapsed) + ((uint64_t)e->cur + 1) * w <=
                  (uint64_t)rl->limit * w;
        if (allowed) {
                e->cur++;
        } else if (retry_after_s) {
                uint64_t ms = wait_ms(rl, e, elapsed), sec = (ms + 999) / 1000;

                *retry_after_s = sec < 1 ? 1 : sec > 86400 ? 86400 : (unsigned)sec;
        }
        pthread_mutex_unlock(&s->lock);
        return allowed;
}

size_t kurz_ratelimit_keys(struct kurz_ratelimit *rl)
{
        size_t n = 0;

        for (unsigned i = 0; i < rl->nstripes; i++) {
                pthread_mutex_lock(&rl->stripes[i].lock);
                n += rl->stripes[i].count;
                pthread_mutex_unlock(&rl->stripes[i].lock);
        }
        return n;
}
