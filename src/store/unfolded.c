/* store/unfolded.c - rows in a dense array, found through an open-addressing
 * index of their positions (linear probing, at most half full). Codes may be
 * chosen by clients (aliases): the hash is keyed at random. */
#include "store/unfolded.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/hash.h"

struct kurz_unfolded {
        struct kurz_unfolded_row *rows;
        size_t n, cap;
        uint32_t *slots; /* row index + 1; 0 is empty */
        size_t mask;     /* slots - 1 */
        uint8_t key[16];
        int64_t total;
        size_t ndays;
        struct kurz_day_clicks days[KURZ_UNFOLDED_DAYS]; /* per-day sums, unordered */
};

/* len <= KURZ_CODE_MAX (callers check). */
static size_t slot_of(const struct kurz_unfolded *u, const char *code, size_t len, int32_t day)
{
        uint8_t buf[KURZ_CODE_MAX + sizeof(day)];

        memcpy(buf, code, len);
        memcpy(buf + len, &day, sizeof(day));
        return (size_t)kurz_siphash(u->key, buf, len + sizeof(day)) & u->mask;
}

/* code need not be NUL-terminated; a row's code is. */
static bool row_is(const struct kurz_unfolded_row *r, const char *code, size_t len, int32_t day)
{
        return r->day == day && r->code[len] == '\0' && memcmp(r->code, code, len) == 0;
}

/* The row of (code, day), or NULL; *slot receives where it is or would go. */
static struct kurz_unfolded_row *find(const struct kurz_unfolded *u, const char *code, size_t len,
                                      int32_t day, size_t *slot)
{
        size_t i;

        if (len == 0 || len > KURZ_CODE_MAX) {
                *slot = SIZE_MAX;
                return NULL;
        }
        for (i = slot_of(u, code, len, day); u->slots[i]; i = (i + 1) & u->mask) {
                struct kurz_unfolded_row *r = &u->rows[u->slots[i] - 1];

                if (row_is(r, code, len, day)) {
                        *slot = i;
                        return r;
                }
        }
        *slot = i;
        return NULL;
}

struct kurz_unfolded *kurz_unfolded_new(void)
{
        struct kurz_unfolded *u = calloc(1, sizeof(*u));

        if (!u)
                return NULL;
        u->cap = 1024;
        u->mask = 2 * u->cap - 1;
        u->rows = malloc(u->cap * sizeof(*u->rows));
        u->slots = calloc(u->mask + 1, sizeof(*u->slots));
        if (!u->rows || !u->slots) {
                kurz_unfolded_free(u);
                return NULL;
        }
        kurz_hash_random_key(u->key);
        return u;
}

void kurz_unfolded_free(struct kurz_unfolded *u)
{
        if (!u)
                return;
        free(u->rows);
        free(u->slots);
        free(u);
}

static bool has_day(const struct kurz_unfolded *u, int32_t day)
{
        for (size_t i = 0; i < u->ndays; i++)
                if (u->days[i].day == day)
                        return true;
        return false;
}

int kurz_unfolded_reserve(struct kurz_unfolded *u, const struct kurz_click *k, size_t n)
{
        int32_t fresh[KURZ_UNFOLDED_DAYS];
        size_t nfresh = 0, cap = u->cap;
        struct kurz_unfolded_row *rows;
        uint32_t *slots;

        for (size_t i = 0; i < n; i++) {
                bool seen = k[i].count <= 0 || has_day(u, k[i].day);

                for (size_t j = 0; !seen && j < nfresh; j++)
                        seen = fresh[j] == k[i].day;
                if (seen)
                        continue;
                if (u->ndays + nfresh == KURZ_UNFOLDED_DAYS)
                        return -E2BIG;
                fresh[nfresh++] = k[i].day;
        }
        if (n > UINT32_MAX / 4 - u->n)
                return -ENOMEM;
        while (cap < u->n + n)
                cap *= 2;
        if (cap == u->cap)
                return 0;
        rows = realloc(u->rows, cap * sizeof(*rows));
        if (!rows)
                return -ENOMEM;
        u->rows = rows;
        slots = calloc(2 * cap, sizeof(*slots));
        if (!slots)
                return -ENOMEM; /* the larger row array is kept: harmless */
        free(u->slots);
        u->slots = slots;
        u->cap = cap;
        u->mask = 2 * cap - 1;
        for (size_t i = 0; i < u->n; i++) {
                size_t s;
                const struct kurz_unfolded_row *r = &u->rows[i];

                find(u, r->code, strnlen(r->code, sizeof(r->code)), r->day, &s);
                u->slots[s] = (uint32_t)(i + 1);
        }
        return 0;
}

static void day_add(struct kurz_unfolded *u, int32_t day, int64_t count)
{
        for (size_t i = 0; i < u->ndays; i++) {
                if (u->days[i].day == day) {
                        u->days[i].clicks += count;
                        return;
                }
        }
        if (u->ndays < KURZ_UNFOLDED_DAYS) /* reserve saw to it */
                u->days[u->ndays++] = (struct kurz_day_clicks){day, count};
}

void kurz_unfolded_add(struct kurz_unfolded *u, const struct kurz_unfolded_row *r)
{
        size_t len = strnlen(r->code, sizeof(r->code)), slot;
        struct kurz_unfolded_row *have = find(u, r->code, len, r->day, &slot);

        if (slot == SIZE_MAX || r->count <= 0)
                return; /* no such code */
        if (have) {
                have->count += r->count;
                if (r->first_at < have->first_at)
                        have->first_at = r->first_at;
                if (r->last_at > have->last_at)
                        have->last_at = r->last_at;
        } else {
                if (u->n == u->cap)
                        return; /* not reserved: a caller's bug, refused */
                u->rows[u->n] = *r;
                u->slots[slot] = (uint32_t)(++u->n);
        }
        u->total += r->count;
        day_add(u, r->day, r->count);
}

/* Empties slot i of the index, moving later entries of its probe run back
 * (linear probing without tombstones). */
static void slot_delete(struct kurz_unfolded *u, size_t i)
{
        for (size_t j = (i + 1) & u->mask; u->slots[j]; j = (j + 1) & u->mask) {
                const struct kurz_unfolded_row *r = &u->rows[u->slots[j] - 1];
                size_t home = slot_of(u, r->code, strnlen(r->code, sizeof(r->code)), r->day);

                /* the entry at j may fill i unless its home lies in (i, j] */
                if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
                        u->slots[i] = u->slots[j];
                        i = j;
                }
        }
        u->slots[i] = 0;
}

void kurz_unfolded_remove(struct kurz_unfolded *u, const char *code, size_t len)
{
        struct kurz_day_clicks days[KURZ_UNFOLDED_DAYS];
        size_t ndays = u->ndays;

        memcpy(days, u->days, sizeof(days));
        for (size_t d = 0; d < ndays; d++) {
                size_t slot, idx, last = u->n - 1, s2;
                struct kurz_unfolded_row *r = find(u, code, len, days[d].day, &slot);

                if (!r)
                        continue;
                idx = u->slots[slot] - 1;
                u->total -= r->count;
                for (size_t i = 0; i < u->ndays; i++) {
                        if (u->days[i].day == r->day && (u->days[i].clicks -= r->count) <= 0) {
                                u->days[i] = u->days[--u->ndays]; /* no row of it left */
                                break;
                        }
                }
                slot_delete(u, slot);
                if (idx != last) { /* the last row fills the hole */
                        const struct kurz_unfolded_row *l = &u->rows[last];

                        find(u, l->code, strnlen(l->code, sizeof(l->code)), l->day, &s2);
                        u->rows[idx] = *l;
                        u->slots[s2] = (uint32_t)(idx + 1);
                }
                u->n--;
        }
}

bool kurz_unfolded_has(const struct kurz_unfolded *u, const char *code, size_t len)
{
        size_t slot;

        for (size_t i = 0; i < u->ndays; i++)
                if (find(u, code, len, u->days[i].day, &slot))
                        return true;
        return false;
}

void kurz_unfolded_sum(const struct kurz_unfolded *u, const char *code, size_t len,
                       struct kurz_unfolded_sum *out)
{
        memset(out, 0, sizeof(*out));
        for (size_t i = 0; i < u->ndays; i++) {
                size_t slot, j;
                const struct kurz_unfolded_row *r = find(u, code, len, u->days[i].day, &slot);

                if (!r || r->count <= 0)
                        continue;
                /* insertion in day order: a handful of days at most */
                for (j = out->ndays; j > 0 && out->days[j - 1].day > r->day; j--)
                        out->days[j] = out->days[j - 1];
                out->days[j] = (struct kurz_day_clicks){r->day, r->count};
                out->ndays++;
                out->total += r->count;
                if (j == 0)
                        out->first_at = r->first_at;
                if (j == out->ndays - 1)
                        out->last_at = r->last_at;
        }
}

int64_t kurz_unfolded_total(const struct kurz_unfolded *u)
{
        return u->total;
}

int64_t kurz_unfolded_day_total(const struct kurz_unfolded *u, int32_t day)
{
        for (size_t i = 0; i < u->ndays; i++)
                if (u->days[i].day == day)
                        return u->days[i].clicks;
        return 0;
}

size_t kurz_unfolded_rows(const struct kurz_unfolded *u)
{
        return u->n;
}

const struct kurz_unfolded_row *kurz_unfolded_data(const struct kurz_unfolded *u)
{
        return u->rows;
}

void kurz_unfolded_clear(struct kurz_unfolded *u)
{
        size_t cap = u->cap;

        /* A table much larger than its last fill gives memory back. */
        while (cap > 1024 && u->n < cap / 4)
                cap /= 2;
        if (cap < u->cap) {
                struct kurz_unfolded_row *rows = realloc(u->rows, cap * sizeof(*rows));
                uint32_t *slots = malloc(2 * cap * sizeof(*slots));

                if (rows)
                        u->rows = rows;
                if (rows && slots) {
                        free(u->slots);
                        u->slots = slots;
                        u->cap = cap;
                        u->mask = 2 * cap - 1;
                } else {
                        free(slots); /* keep the larger table: still correct */
                }
        }
        memset(u->slots, 0, (u->mask + 1) * sizeof(*u->slots));
        u->n = 0;
        u->total = 0;
        u->ndays = 0;
}
