/* store/urlmap.c - chained hash over an entry array. Each entry is pushed
 * at the head of its bucket, so the chains are in descending index order and
 * dropping the newest entries first restores the bucket heads exactly. */
#include "store/urlmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MIN_BUCKETS 1024u

struct entry {
        uint64_t hash;
        int64_t id;
        size_t next; /* index + 1 of the next entry of the bucket, 0 = end */
};

struct kurz_urlmap {
        struct entry *e;
        size_t n, cap;
        size_t *bucket; /* index + 1 of the newest entry, 0 = empty */
        size_t nb;      /* a power of two */
};

static size_t slot(const struct kurz_urlmap *m, uint64_t hash)
{
        /* URL hashes are SipHash outputs: their low bits are uniform. */
        return (size_t)(hash & (m->nb - 1));
}

struct kurz_urlmap *kurz_urlmap_new(void)
{
        struct kurz_urlmap *m = calloc(1, sizeof(*m));

        if (!m)
                return NULL;
        m->nb = MIN_BUCKETS;
        m->bucket = calloc(m->nb, sizeof(*m->bucket));
        if (!m->bucket) {
                free(m);
                return NULL;
        }
        return m;
}

void kurz_urlmap_free(struct kurz_urlmap *m)
{
        if (!m)
                return;
        free(m->e);
        free(m->bucket);
        free(m);
}

/* Chains every entry into the (empty) buckets in index order. */
static void rechain(struct kurz_urlmap *m)
{
        for (size_t i = 0; i < m->n; i++) {
                size_t k = slot(m, m->e[i].hash);

                m->e[i].next = m->bucket[k];
                m->bucket[k] = i + 1;
        }
}

/* Doubles the buckets. */
static int grow_buckets(struct kurz_urlmap *m)
{
        size_t nb = m->nb * 2, *b = calloc(nb, sizeof(*b));

        if (!b)
                return -ENOMEM;
        free(m->bucket);
        m->bucket = b;
        m->nb = nb;
        rechain(m);
        return 0;
}

int kurz_urlmap_add(struct kurz_urlmap *m, uint64_t hash, int64_t id)
{
        size_t k;

        if (m->n == m->cap) {
                size_t cap = m->cap ? m->cap * 2 : 1024;
                struct entry *e = realloc(m->e, cap * sizeof(*e));

                if (!e)
                        return -ENOMEM;
                m->e = e;
                m->cap = cap;
        }
        /* At most one entry per bucket on average; a failed growth only
         * lengthens the chains. */
        if (m->n >= m->nb)
                (void)grow_buckets(m);
        k = slot(m, hash);
        m->e[m->n] = (struct entry){.hash = hash, .id = id, .next = m->bucket[k]};
        m->bucket[k] = ++m->n;
        return 0;
}

size_t kurz_urlmap_size(const struct kurz_urlmap *m)
{
        return m->n;
}

void kurz_urlmap_truncate(struct kurz_urlmap *m, size_t n)
{
        while (m->n > n) {
                struct entry *e = &m->e[--m->n];

                m->bucket[slot(m, e->hash)] = e->next;
        }
}

void kurz_urlmap_clear(struct kurz_urlmap *m)
{
        memset(m->bucket, 0, m->nb * sizeof(*m->bucket));
        m->n = 0;
}

void kurz_urlmap_drop_oldest(struct kurz_urlmap *m, size_t n)
{
        if (n >= m->n) {
                kurz_urlmap_clear(m);
                return;
        }
        memmove(m->e, m->e + n, (m->n - n) * sizeof(*m->e));
        m->n -= n;
        memset(m->bucket, 0, m->nb * sizeof(*m->bucket));
        rechain(m);
}

int kurz_urlmap_next(const struct kurz_urlmap *m, uint64_t hash, size_t *cursor, int64_t *id)
{
        size_t i = *cursor ? m->e[*cursor - 1].next : m->bucket[slot(m, hash)];

        for (; i; i = m->e[i - 1].next) {
                if (m->e[i - 1].hash == hash) {
                        *cursor = i;
                        *id = m->e[i - 1].id;
                        return 1;
                }
        }
        *cursor = 0;
        return 0;
}
