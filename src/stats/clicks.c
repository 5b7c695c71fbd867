/* stats/clicks.c - per-thread click aggregation: one open-addressing table
 * of (code, day) -> count and last access per loop thread, touched only by
 * its thread, so counting a click costs a hash and an increment. Tables grow
 * by doubling at 70 % load; a flush detaches a thread's table whole and
 * leaves it a fresh one, so the loop never walks a full table. */
#include "stats/clicks.h"

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/hash.h"

#define CLICKS_MIN_SLOTS 16

struct slot {
        uint64_t hash;
        int64_t count; /* 0 = empty slot */
        int64_t last_access;
        int32_t day;
        uint8_t code_len;
        char code[KURZ_CODE_MAX];
};

struct table {
        alignas(64) struct slot *slots; /* padded: tables of different threads never share a line */
        size_t mask;
        size_t used;
};

struct kurz_clicks {
        unsigned threads;
        size_t initial_slots;
        uint8_t key[16];
        _Atomic uint64_t dropped;
        struct table *tables;
};

struct kurz_clicks *kurz_clicks_new(unsigned threads, size_t capacity)
{
        struct kurz_clicks *c;
        size_t nslots = CLICKS_MIN_SLOTS;
        unsigned i;

        /* Room for `capacity` keys below the 70 % growth threshold. */
        while (nslots * 7 / 10 < capacity && nslots < ((size_t)1 << 40))
                nslots *= 2;
        c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        c->threads = threads;
        c->initial_slots = nslots;
        atomic_init(&c->dropped, 0);
        kurz_hash_random_key(c->key);
        if (threads == 0)
                return c;
        c->tables = aligned_alloc(alignof(struct table), sizeof(struct table) * threads);
        if (!c->tables)
                goto out_free_c;
        for (i = 0; i < threads; i++) {
                c->tables[i].slots = calloc(nslots, sizeof(struct slot));
                if (!c->tables[i].slots)
                        goto out_free_tables;
                c->tables[i].mask = nslots - 1;
                c->tables[i].used = 0;
        }
        return c;

out_free_tables:
        while (i-- > 0)
                free(c->tables[i].slots);
        free(c->tables);
out_free_c:
        free(c);
        return NULL;
}

void kurz_clicks_free(struct kurz_clicks *c)
{
        if (!c)
                return;
        for (unsigned i = 0; i < c->threads; i++)
                free(c->tables[i].slots);
        free(c->tables);
        free(c);
}

/* Floor division: days before 1970 stay on the right day. */
static int32_t day_of(int64_t now_s)
{
        int64_t d = now_s / 86400;

        if (now_s % 86400 < 0)
                d--;
        return (int32_t)d;
}

static uint64_t key_hash(const struct kurz_clicks *c, struct kurz_str code, int32_t day)
{
        return kurz_siphash(c->key, code.p, code.len) ^
               ((uint64_t)(uint32_t)day * 0x9e3779b97f4a7c15ull);
}

static struct slot *probe(struct slot *slots, size_t mask, uint64_t h, struct kurz_str code,
                          int32_t day)
{
        size_t i = h & mask;

        for (;;) {
                struct slot *s = &slots[i];

                if (s->count == 0)
                        return s;
                if (s->hash == h && s->day == day && s->code_len == code.len &&
                    memcmp(s->code, code.p, code.len) == 0)
                        return s;
                i = (i + 1) & mask;
        }
}

static int grow(struct table *t)
{
        size_t n = (t->mask + 1) * 2;
        struct slot *slots = calloc(n, sizeof(*slots));

        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i <= t->mask; i++) {
                struct slot *s = &t->slots[i];

                if (s->count == 0)
                        continue;
                for (size_t j = s->hash & (n - 1);; j = (j + 1) & (n - 1)) {
                        if (slots[j].count == 0) {
                                slots[j] = *s;
                                break;
                        }
                }
        }
        free(t->slots);
        t->slots = slots;
        t->mask = n - 1;
        return 0;
}

int kurz_clicks_add(struct kurz_clicks *c, unsigned thread, struct kurz_str code, int64_t now_s)
{
        struct table *t;
        struct slot *s;
        int32_t day;
        uint64_t h;

        if (thread >= c->threads || code.len == 0 || code.len > KURZ_CODE_MAX)
                return -EINVAL;
        t = &c->tables[thread];
        day = day_of(now_s);
        h = key_hash(c, code, day);
        s = probe(t->slots, t->mask, h, code, day);
        if (s->count == 0) {
                /* A new key: keep the load at or below 70 %. */
                if ((t->used + 1) * 10 > (t->mask + 1) * 7) {
                        if (grow(t) < 0) {
                                atomic_fetch_add_explicit(&c->dropped, 1, memory_order_relaxed);
                                return -ENOMEM;
                        }
                        s = probe(t->slots, t->mask, h, code, day);
                }
                s->hash = h;
                s->day = day;
                s->code_len = (uint8_t)code.len;
                memcpy(s->code, code.p, code.len);
                s->last_access = now_s;
                t->used++;
        }
        s->count++;
        if (now_s > s->last_access)
                s->last_access = now_s;
        return 0;
}

struct kurz_clicks_taken {
        struct slot *slots;
        size_t mask;
        size_t used;
};

int kurz_clicks_detach(struct kurz_clicks *c, unsigned thread, struct kurz_clicks_taken **out)
{
        struct kurz_clicks_taken *k;
        struct slot *fresh;
        struct table *t;

        *out = NULL;
        if (thread >= c->threads)
                return -EINVAL;
        t = &c->tables[thread];
        if (t->used == 0)
                return 0;
        k = malloc(sizeof(*k));
        fresh = calloc(c->initial_slots, sizeof(*fresh));
        if (!k || !fresh) {
                free(k);
                free(fresh);
                return -ENOMEM; /* the counts stay for the next detach */
        }
        k->slots = t->slots;
        k->mask = t->mask;
        k->used = t->used;
        t->slots = fresh;
        t->mask = c->initial_slots - 1;
        t->used = 0;
        *out = k;
        return 0;
}

size_t kurz_clicks_taken_count(const struct kurz_clicks_taken *k)
{
        return k->used;
}

size_t kurz_clicks_next(const struct kurz_clicks_taken *k, size_t *pos, struct kurz_click *arr,
                        size_t cap)
{
        size_t n = 0;

        for (; *pos <= k->mask && n < cap; (*pos)++) {
                const struct slot *s = &k->slots[*pos];

                if (s->count == 0)
                        continue;
                memcpy(arr[n].code, s->code, s->code_len);
                arr[n].code[s->code_len] = '\0';
                arr[n].day = s->day;
                arr[n].count = s->count;
                arr[n].last_access = s->last_access;
                n++;
        }
        return n;
}

void kurz_clicks_taken_free(struct kurz_clicks_taken *k)
{
        if (!k)
                return;
        free(k->slots);
        free(k);
}

uint64_t kurz_clicks_dropped(struct kurz_clicks *c)
{
        return atomic_load_explicit(&c->dropped, memory_order_relaxed);
}
