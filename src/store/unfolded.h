/* store/unfolded.h - the click counts the SQLite store has made durable in its
 * log (one clicks_log row per flush) but not yet folded into the daily rollup:
 * (code, day) -> clicks, first and last click. Reads add them to what the
 * rollup holds; a fold writes them all in one transaction and empties the
 * table. A link clicked in every flush then costs one row write per fold
 * instead of one per flush.
 *
 * Not thread-safe: the store guards it (one writer mutates, readers look up
 * under the same lock). Rows are copied in; nothing is borrowed. */
#ifndef KURZ_STORE_UNFOLDED_H
#define KURZ_STORE_UNFOLDED_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define KURZ_UNFOLDED_DAYS 8 /* distinct days the table holds at most */

struct kurz_unfolded_row {
        char code[KURZ_CODE_MAX + 1];
        int32_t day;
        int64_t count;
        int64_t first_at; /* unix seconds */
        int64_t last_at;
};

/* What one code has in the table. */
struct kurz_unfolded_sum {
        int64_t total;
        int64_t first_at; /* of its earliest day; 0 when total == 0 */
        int64_t last_at;  /* of its latest day */
        size_t ndays;
        struct kurz_day_clicks days[KURZ_UNFOLDED_DAYS]; /* ascending day */
};

struct kurz_unfolded; /* opaque */

/* Returns NULL on ENOMEM. */
struct kurz_unfolded *kurz_unfolded_new(void);
void kurz_unfolded_free(struct kurz_unfolded *u);

/* Makes room for the n clicks of k: after 0, kurz_unfolded_add of any of them
 * cannot fail. -ENOMEM, or -E2BIG when they would bring the table past
 * KURZ_UNFOLDED_DAYS distinct days (fold first); the table is unchanged then.
 * Clicks with count <= 0 are not added and need no room. */
int kurz_unfolded_reserve(struct kurz_unfolded *u, const struct kurz_click *k, size_t n);
/* Adds r: count to its (code, day) row, first_at and last_at widen the row's
 * bounds. Only after a kurz_unfolded_reserve that covered it; a row with
 * count <= 0 or a code of no or too many characters is ignored. */
void kurz_unfolded_add(struct kurz_unfolded *u, const struct kurz_unfolded_row *r);
/* Removes every row of code (its clicks leave the totals too). */
void kurz_unfolded_remove(struct kurz_unfolded *u, const char *code, size_t len);
/* True when code has a row (of any day). */
bool kurz_unfolded_has(const struct kurz_unfolded *u, const char *code, size_t len);
/* Fills *out with what code has. */
void kurz_unfolded_sum(const struct kurz_unfolded *u, const char *code, size_t len,
                       struct kurz_unfolded_sum *out);
/* All clicks held, and those of day. */
int64_t kurz_unfolded_total(const struct kurz_unfolded *u);
int64_t kurz_unfolded_day_total(const struct kurz_unfolded *u, int32_t day);
/* Rows held (distinct (code, day)). */
size_t kurz_unfolded_rows(const struct kurz_unfolded *u);
/* The rows, in no particular order; valid until the next add or clear. */
const struct kurz_unfolded_row *kurz_unfolded_data(const struct kurz_unfolded *u);
/* Forgets every row; keeps the memory for reuse unless the table was filled
 * to less than a quarter. */
void kurz_unfolded_clear(struct kurz_unfolded *u);
#endif
