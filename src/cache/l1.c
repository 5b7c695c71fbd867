/* cache/l1.c - the in-process cache of code -> URL that answers most
 * redirects: lock-free readers over open-addressing shards of pointers to
 * immutable entries, writers under a per-shard mutex, CLOCK eviction with a
 * small frequency counter, reclamation through QSBR.
 *
 * Layout. The cache is split into up to 64 shards (chosen by the top bits of a
 * keyed SipHash of the code, so clients cannot aim their codes at one probe
 * chain), each a power-of-two table of at least 2 * (max_entries / shards)
 * slots with linear probing. A slot is NULL (end of a probe chain), the
 * tombstone TOMB (a deleted entry: probes continue past it), or an entry.
 *
 * The bound is global: a put that finds max_entries live entries in the whole
 * cache evicts in its own shard first, so the cache holds max_entries however
 * unevenly the codes spread over the shards (with per-shard caps it held a few
 * % fewer). A shard may hold up to 1/8 more than its even share (cap; live
 * entries then fill <= 0.5625 of the slots): for shards of 1,000 entries and
 * more that is several standard deviations of the random imbalance, for the
 * smallest (64) about one, so small caches may hold a little less. Beyond cap
 * a shard evicts in itself whatever the total.
 *
 * Readers load the table and the slots with acquire, so they see an entry's
 * bytes as its writer initialised them; entries never change after they are
 * published, except `freq`, an atomic hint. Writers replace or delete by
 * storing a new pointer or TOMB, then retire the old entry to QSBR; it is
 * freed only after every reader has passed a quiescent state. When tombstones
 * pile up, the writer builds a fresh table, publishes it with a release store
 * and retires the old table the same way (entries are shared, not copied).
 *
 * Eviction is CLOCK with a 2-bit frequency: a hit raises freq (saturating at
 * 3, written only when it changes, so hot entries do not bounce their cache
 * line between cores); the hand decrements it and evicts the first entry
 * found at 0, or any expired entry. On skewed (Zipf) traffic this keeps the
 * frequently used entries that plain LRU loses to bursts of one-off codes. */
#include "cache/l1.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/hash.h"
#include "util/qsbr.h"

#define L1_MAX_SHARDS    64
#define L1_MIN_PER_SHARD 64   /* fewer, larger shards for small caches */
#define L1_CODE_MAX      1024 /* far above KURZ_CODE_MAX; bounds what we copy */
#define L1_URL_MAX       (1u << 20)
#define FREQ_MAX         3
#define RECLAIM_EVERY    64 /* retires per shard between kurz_qsbr_reclaim calls */

struct entry {
        struct kurz_qsbr_node qnode; /* used by qsbr after unlink; readers never touch it */
        uint64_t hash;
        uint64_t expire_ms; /* monotonic; a hit only while now_ms < expire_ms */
        int64_t expires_at; /* the link's own expiry, unix seconds, 0 = never */
        uint32_t url_len;
        uint16_t code_len;
        uint8_t negative;
        _Atomic uint8_t freq; /* CLOCK frequency 0..FREQ_MAX */
        char data[];          /* code, url, NUL */
};

struct table {
        struct kurz_qsbr_node qnode;
        size_t mask; /* slots - 1 */
        _Atomic(struct entry *) slots[];
};

struct shard {
        alignas(64) pthread_mutex_t lock; /* writers only */
        _Atomic uint64_t seq;             /* bumped by every invalidation */
        _Atomic(struct table *) tab;
        size_t cap;   /* most live entries in this shard: the even share + 1/8 */
        size_t tombs; /* under lock */
        size_t hand;  /* CLOCK hand, under lock */
        unsigned retires;
        _Atomic size_t count; /* live entries; written under lock */
        _Atomic size_t bytes; /* estimated heap bytes of entries and table */
        _Atomic uint64_t evictions;
};

struct kurz_l1 {
        struct kurz_qsbr *qsbr;
        unsigned ttl_ms;
        unsigned negative_ttl_ms;
        unsigned nshards; /* 0 when the cache is disabled */
        size_t max_entries;
        uint8_t key[16];
        struct shard *shards;
        /* Live entries in all shards, plus the puts that reserved a place
         * (see shard_insert). Writers of every shard change it: its own
         * cache line, away from what every lookup reads above. */
        alignas(64) _Atomic size_t total;
};

/* The tombstone: a distinct address that is never an entry anyone reads. */
static struct entry tomb_entry;
#define TOMB (&tomb_entry)

/* What malloc really spends on n bytes (glibc: an 8-byte header, 16-byte
 * granules, 32 bytes at least). An estimate, for stats only. */
static size_t heap_bytes(size_t n)
{
        n = (n + 8 + 15) & ~(size_t)15;
        return n < 32 ? 32 : n;
}

static size_t entry_size(const struct entry *e)
{
        return sizeof(*e) + e->code_len + e->url_len + 1;
}

static size_t table_size(size_t nslots)
{
        return sizeof(struct table) + nslots * sizeof(_Atomic(struct entry *));
}

static void entry_free_node(struct kurz_qsbr_node *node)
{
        free(node); /* the node is the entry's first member */
}

static void table_free_node(struct kurz_qsbr_node *node)
{
        free(node);
}

static struct table *table_new(size_t nslots)
{
        struct table *t = malloc(table_size(nslots));

        if (!t)
                return NULL;
        t->mask = nslots - 1;
        for (size_t i = 0; i < nslots; i++)
                atomic_init(&t->slots[i], NULL);
        return t;
}

struct kurz_l1 *kurz_l1_new(const struct kurz_l1_config *cfg)
{
        struct kurz_l1 *c;
        unsigned n, i;

        c = aligned_alloc(alignof(struct kurz_l1), sizeof(*c)); /* total's line */
        if (!c)
                return NULL;
        memset(c, 0, sizeof(*c));
        c->qsbr = cfg->qsbr;
        c->ttl_ms = cfg->ttl_ms;
        c->negative_ttl_ms = cfg->negative_ttl_ms;
        c->max_entries = cfg->max_entries;
        atomic_init(&c->total, 0);
        kurz_hash_random_key(c->key);
        if (cfg->max_entries == 0)
                return c; /* disabled: every get misses, puts do nothing */

        n = L1_MAX_SHARDS;
        while (n > 1 && cfg->max_entries / n < L1_MIN_PER_SHARD)
                n /= 2;
        c->shards = aligned_alloc(alignof(struct shard), sizeof(struct shard) * n);
        if (!c->shards)
                goto out_free_c;
        for (i = 0; i < n; i++) {
                struct shard *s = &c->shards[i];
                size_t nslots = 8, share = (cfg->max_entries + n - 1) / n;
                struct table *t;

                s->cap = share + share / 8;
                while (nslots < 2 * share)
                        nslots *= 2;
                t = table_new(nslots);
                if (!t)
                        goto out_free_shards;
                if (pthread_mutex_init(&s->lock, NULL) != 0) {
                        free(t);
                        goto out_free_shards;
                }
                atomic_init(&s->tab, t);
                atomic_init(&s->seq, 0);
                s->tombs = 0;
                s->hand = 0;
                s->retires = 0;
                atomic_init(&s->count, 0);
                atomic_init(&s->bytes, heap_bytes(table_size(nslots)));
                atomic_init(&s->evictions, 0);
        }
        c->nshards = n;
        return c;

out_free_shards:
        while (i-- > 0) {
                pthread_mutex_destroy(&c->shards[i].lock);
                free(atomic_load_explicit(&c->shards[i].tab, memory_order_relaxed));
        }
        free(c->shards);
out_free_c:
        free(c);
        return NULL;
}

void kurz_l1_free(struct kurz_l1 *c)
{
        if (!c)
                return;
        for (unsigned i = 0; i < c->nshards; i++) {
                struct shard *s = &c->shards[i];
                struct table *t = atomic_load_explicit(&s->tab, memory_order_relaxed);

                for (size_t j = 0; j <= t->mask; j++) {
                        struct entry *e = atomic_load_explicit(&t->slots[j], memory_order_relaxed);

                        if (e && e != TOMB)
                                free(e);
                }
                free(t);
                pthread_mutex_destroy(&s->lock);
        }
        free(c->shards);
        free(c);
}

static inline uint64_t code_hash(const struct kurz_l1 *c, struct kurz_str code)
{
        return kurz_siphash(c->key, code.p, code.len);
}

static inline struct shard *shard_of(struct kurz_l1 *c, uint64_t h)
{
        /* Top bits pick the shard, low bits the slot: independent. */
        return &c->shards[(h >> 58) & (c->nshards - 1)];
}

static inline bool entry_is(const struct entry *e, uint64_t h, struct kurz_str code)
{
        return e->hash == h && e->code_len == code.len &&
               (code.len == 0 || memcmp(e->data, code.p, code.len) == 0);
}

enum kurz_l1_result kurz_l1_get(struct kurz_l1 *c, struct kurz_str code, uint64_t now_ms,
                                struct kurz_l1_hit *hit)
{
        struct table *t;
        struct entry *e;
        uint64_t h;
        size_t i;
        uint8_t f;

        if (c->nshards == 0 || code.len > L1_CODE_MAX)
                return KURZ_L1_MISS;
        h = code_hash(c, code);
        t = atomic_load_explicit(&shard_of(c, h)->tab, memory_order_acquire);
        i = h & t->mask;
        for (size_t n = 0; n <= t->mask; n++, i = (i + 1) & t->mask) {
                e = atomic_load_explicit(&t->slots[i], memory_order_acquire);
                if (!e)
                        return KURZ_L1_MISS;
                if (e != TOMB && entry_is(e, h, code))
                        goto found;
        }
        return KURZ_L1_MISS;

found:
        if (now_ms >= e->expire_ms)
                return KURZ_L1_MISS; /* stale: a writer cleans it up later */
        f = atomic_load_explicit(&e->freq, memory_order_relaxed);
        if (f < FREQ_MAX)
                atomic_store_explicit(&e->freq, f + 1, memory_order_relaxed);
        if (e->negative)
                return KURZ_L1_NEGATIVE;
        hit->url.p = e->data + e->code_len;
        hit->url.len = e->url_len;
        hit->expires_at = e->expires_at;
        return KURZ_L1_HIT;
}

uint64_t kurz_l1_seq(struct kurz_l1 *c, struct kurz_str code)
{
        if (c->nshards == 0)
                return 0;
        return atomic_load_explicit(&shard_of(c, code_hash(c, code))->seq, memory_order_acquire);
}

/* --- writer side: everything below runs under the shard's lock --- */

static void shard_retire(struct kurz_l1 *c, struct shard *s, struct entry *e)
{
        atomic_fetch_sub_explicit(&s->bytes, heap_bytes(entry_size(e)), memory_order_relaxed);
        kurz_qsbr_retire_node(c->qsbr, &e->qnode, entry_free_node);
        s->retires++;
}

/* Unlinks the live entry in slot i. */
static void shard_remove_at(struct kurz_l1 *c, struct shard *s, struct table *t, size_t i)
{
        struct entry *e = atomic_load_explicit(&t->slots[i], memory_order_relaxed);

        atomic_store_explicit(&t->slots[i], TOMB, memory_order_release);
        s->tombs++;
        atomic_fetch_sub_explicit(&s->count, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&c->total, 1, memory_order_relaxed);
        shard_retire(c, s, e);
}

/* Returns the slot holding code, or SIZE_MAX. */
static size_t shard_find(struct table *t, uint64_t h, struct kurz_str code)
{
        size_t i = h & t->mask;

        for (size_t n = 0; n <= t->mask; n++, i = (i + 1) & t->mask) {
                struct entry *e = atomic_load_explicit(&t->slots[i], memory_order_relaxed);

                if (!e)
                        break;
                if (e != TOMB && entry_is(e, h, code))
                        return i;
        }
        return SIZE_MAX;
}

/* CLOCK: evicts one entry (an expired one, or the first with freq 0). The
 * shard holds at least one, so there is a victim within FREQ_MAX + 1 sweeps. */
static void shard_evict(struct kurz_l1 *c, struct shard *s, struct table *t, uint64_t now_ms)
{
        for (size_t n = 0; n < (FREQ_MAX + 2) * (t->mask + 1); n++) {
                size_t i = s->hand;
                struct entry *e = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
                uint8_t f;

                s->hand = (i + 1) & t->mask;
                if (!e || e == TOMB)
                        continue;
                if (now_ms < e->expire_ms) {
                        f = atomic_load_explicit(&e->freq, memory_order_relaxed);
                        if (f > 0) {
                                atomic_store_explicit(&e->freq, f - 1, memory_order_relaxed);
                                continue;
                        }
                }
                shard_remove_at(c, s, t, i);
                atomic_fetch_add_explicit(&s->evictions, 1, memory_order_relaxed);
                return;
        }
}

/* Replaces the table by a fresh one without tombstones (dropping expired
 * entries on the way). On ENOMEM the old one simply stays. */
static void shard_rebuild(struct kurz_l1 *c, struct shard *s, uint64_t now_ms)
{
        struct table *old = atomic_load_explicit(&s->tab, memory_order_relaxed);
        struct table *t = table_new(old->mask + 1);

        if (!t)
                return;
        for (size_t i = 0; i <= old->mask; i++) {
                struct entry *e = atomic_load_explicit(&old->slots[i], memory_order_relaxed);
                size_t j;

                if (!e || e == TOMB)
                        continue;
                if (now_ms >= e->expire_ms) {
                        /* Still reachable through the old table, which is
                         * retired below, after it: same grace period. */
                        atomic_fetch_sub_explicit(&s->count, 1, memory_order_relaxed);
                        atomic_fetch_sub_explicit(&c->total, 1, memory_order_relaxed);
                        shard_retire(c, s, e);
                        continue;
                }
                j = e->hash & t->mask;
                while (atomic_load_explicit(&t->slots[j], memory_order_relaxed))
                        j = (j + 1) & t->mask;
                atomic_store_explicit(&t->slots[j], e, memory_order_relaxed);
        }
        /* The release store publishes the table's slots with it. */
        atomic_store_explicit(&s->tab, t, memory_order_release);
        s->tombs = 0;
        kurz_qsbr_retire_node(c->qsbr, &old->qnode, table_free_node);
        s->retires++;
}

static void shard_maybe_rebuild(struct kurz_l1 *c, struct shard *s, uint64_t now_ms)
{
        struct table *t = atomic_load_explicit(&s->tab, memory_order_relaxed);

        /* Live entries fill at most 9/16 of the slots; tombstones another
         * eighth at most, so probe chains stay short. */
        if (s->tombs > (t->mask + 1) / 8)
                shard_rebuild(c, s, now_ms);
}

/* Inserts or replaces n (the shard is locked). Returns 0 or -ENOMEM. */
static int shard_insert(struct kurz_l1 *c, struct shard *s, struct entry *n, uint64_t now_ms)
{
        struct table *t = atomic_load_explicit(&s->tab, memory_order_relaxed);
        size_t i = n->hash & t->mask, free_i = SIZE_MAX;
        struct kurz_str code = {n->data, n->code_len};
        struct entry *e;
        size_t others;

        for (size_t k = 0; k <= t->mask; k++, i = (i + 1) & t->mask) {
                e = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
                if (!e) {
                        if (free_i == SIZE_MAX)
                                free_i = i;
                        break;
                }
                if (e == TOMB) {
                        if (free_i == SIZE_MAX)
                                free_i = i;
                        continue;
                }
                if (entry_is(e, n->hash, code)) {
                        /* Replace in place; a popular code keeps its rank. */
                        atomic_init(&n->freq, atomic_load_explicit(&e->freq, memory_order_relaxed));
                        atomic_store_explicit(&t->slots[i], n, memory_order_release);
                        atomic_fetch_add_explicit(&s->bytes, heap_bytes(entry_size(n)),
                                                  memory_order_relaxed);
                        shard_retire(c, s, e);
                        return 0;
                }
        }
        /* Reserve n's place in the total first: of two puts racing in two
         * shards for the last place, the second sees it taken and evicts.
         * Each eviction turns a live slot into TOMB (free_i stays free) and
         * gives a place back; a second one shrinks an overshoot left by a
         * put into an empty shard, which has nothing to evict. */
        others = atomic_fetch_add_explicit(&c->total, 1, memory_order_relaxed);
        for (int k = 0; k < 2; k++) {
                size_t count = atomic_load_explicit(&s->count, memory_order_relaxed);

                if (count == 0 || (count < s->cap && others < c->max_entries))
                        break;
                shard_evict(c, s, t, now_ms);
                others = atomic_load_explicit(&c->total, memory_order_relaxed) - 1;
        }
        if (free_i == SIZE_MAX) {
                atomic_fetch_sub_explicit(&c->total, 1, memory_order_relaxed);
                return -ENOMEM; /* no free slot: only if rebuilds kept failing */
        }
        if (atomic_load_explicit(&t->slots[free_i], memory_order_relaxed) == TOMB)
                s->tombs--;
        atomic_store_explicit(&t->slots[free_i], n, memory_order_release);
        atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->bytes, heap_bytes(entry_size(n)), memory_order_relaxed);
        shard_maybe_rebuild(c, s, now_ms);
        return 0;
}

/* Removes code if present (the shard is locked). */
static void shard_delete(struct kurz_l1 *c, struct shard *s, uint64_t h, struct kurz_str code,
                         uint64_t now_ms)
{
        struct table *t = atomic_load_explicit(&s->tab, memory_order_relaxed);
        size_t i = shard_find(t, h, code);

        if (i == SIZE_MAX)
                return;
        shard_remove_at(c, s, t, i);
        shard_maybe_rebuild(c, s, now_ms);
}

/* Takes the lock-side reclaim decision; call kurz_qsbr_reclaim after unlock. */
static bool shard_reclaim_due(struct shard *s)
{
        if (s->retires < RECLAIM_EVERY)
                return false;
        s->retires = 0;
        return true;
}

static uint64_t realtime_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int put_entry(struct kurz_l1 *c, struct kurz_str code, struct kurz_str url, bool negative,
                     int64_t expires_at, uint64_t seq, uint64_t now_ms, uint64_t expire_ms)
{
        struct shard *s;
        struct entry *n;
        bool reclaim;
        uint64_t h;
        int rc;

        if (code.len > L1_CODE_MAX || url.len > L1_URL_MAX)
                return -EINVAL;
        h = code_hash(c, code);
        s = shard_of(c, h);
        n = malloc(sizeof(*n) + code.len + url.len + 1);
        if (!n)
                return -ENOMEM;
        n->hash = h;
        n->expire_ms = expire_ms;
        n->expires_at = expires_at;
        n->url_len = (uint32_t)url.len;
        n->code_len = (uint16_t)code.len;
        n->negative = negative;
        atomic_init(&n->freq, 0);
        if (code.len)
                memcpy(n->data, code.p, code.len);
        if (url.len)
                memcpy(n->data + code.len, url.p, url.len);
        n->data[code.len + url.len] = '\0';

        pthread_mutex_lock(&s->lock);
        if (atomic_load_explicit(&s->seq, memory_order_relaxed) != seq) {
                /* Invalidated since the caller read seq: its value may be the
                 * deleted one. Never resurrect it. */
                pthread_mutex_unlock(&s->lock);
                free(n);
                return -ESTALE;
        }
        rc = shard_insert(c, s, n, now_ms);
        reclaim = shard_reclaim_due(s);
        pthread_mutex_unlock(&s->lock);
        if (rc < 0)
                free(n);
        if (reclaim)
                kurz_qsbr_reclaim(c->qsbr);
        return rc;
}

int kurz_l1_put(struct kurz_l1 *c, struct kurz_str code, struct kurz_str url, int64_t expires_at,
                uint64_t seq, uint64_t now_ms)
{
        uint64_t expire_ms = now_ms + c->ttl_ms;

        if (c->nshards == 0)
                return 0;
        if (expires_at > 0) {
                /* Convert the link's wall-clock expiry to the monotonic clock. */
                uint64_t at_ms = (uint64_t)expires_at * 1000, real = realtime_ms();

                if (at_ms <= real) {
                        /* Already expired: cache nothing, and drop an older
                         * copy that might still be served. */
                        struct shard *s;
                        uint64_t h;
                        bool reclaim;

                        if (code.len > L1_CODE_MAX)
                                return -EINVAL;
                        h = code_hash(c, code);
                        s = shard_of(c, h);
                        pthread_mutex_lock(&s->lock);
                        shard_delete(c, s, h, code, now_ms);
                        reclaim = shard_reclaim_due(s);
                        pthread_mutex_unlock(&s->lock);
                        if (reclaim)
                                kurz_qsbr_reclaim(c->qsbr);
                        return 0;
                }
                if (at_ms - real < c->ttl_ms)
                        expire_ms = now_ms + (at_ms - real);
        }
        return put_entry(c, code, url, false, expires_at, seq, now_ms, expire_ms);
}

int kurz_l1_put_negative(struct kurz_l1 *c, struct kurz_str code, uint64_t seq, uint64_t now_ms)
{
        if (c->nshards == 0 || c->negative_ttl_ms == 0)
                return 0;
        return put_entry(c, code, (struct kurz_str){"", 0}, true, 0, seq, now_ms,
                         now_ms + c->negative_ttl_ms);
}

void kurz_l1_invalidate(struct kurz_l1 *c, struct kurz_str code)
{
        struct shard *s;
        bool reclaim;
        uint64_t h;

        if (c->nshards == 0 || code.len > L1_CODE_MAX)
                return;
        h = code_hash(c, code);
        s = shard_of(c, h);
        pthread_mutex_lock(&s->lock);
        /* Bump first: a put holding the old seq is refused from now on. */
        atomic_fetch_add_explicit(&s->seq, 1, memory_order_release);
        /* We have no caller's clock here: 0 makes a rebuild keep every entry
         * (expired ones go at the next eviction or rebuild). */
        shard_delete(c, s, h, code, 0);
        reclaim = shard_reclaim_due(s);
        pthread_mutex_unlock(&s->lock);
        if (reclaim)
                kurz_qsbr_reclaim(c->qsbr);
}

void kurz_l1_invalidate_all(struct kurz_l1 *c)
{
        for (unsigned k = 0; k < c->nshards; k++) {
                struct shard *s = &c->shards[k];
                struct table *t;
                bool reclaim;

                pthread_mutex_lock(&s->lock);
                atomic_fetch_add_explicit(&s->seq, 1, memory_order_release);
                t = atomic_load_explicit(&s->tab, memory_order_relaxed);
                for (size_t i = 0; i <= t->mask; i++) {
                        struct entry *e = atomic_load_explicit(&t->slots[i], memory_order_relaxed);

                        if (e && e != TOMB)
                                shard_remove_at(c, s, t, i);
                }
                shard_maybe_rebuild(c, s, 0);
                reclaim = shard_reclaim_due(s);
                pthread_mutex_unlock(&s->lock);
                if (reclaim)
                        kurz_qsbr_reclaim(c->qsbr);
        }
}

void kurz_l1_stats(struct kurz_l1 *c, struct kurz_l1_stats *out)
{
        out->entries = 0;
        out->bytes = heap_bytes(sizeof(*c));
        out->evictions = 0;
        if (c->nshards)
                out->bytes += heap_bytes(sizeof(struct shard) * c->nshards);
        for (unsigned i = 0; i < c->nshards; i++) {
                struct shard *s = &c->shards[i];

                out->entries += atomic_load_explicit(&s->count, memory_order_relaxed);
                out->bytes += atomic_load_explicit(&s->bytes, memory_order_relaxed);
                out->evictions += atomic_load_explicit(&s->evictions, memory_order_relaxed);
        }
}
