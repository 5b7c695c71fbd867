/* store/ifold.h - the SQLite store's index fold (schema 5). A create appends
 * its link to `links` (keyed by the integer its code encodes) and notes it in
 * `links_unindexed`; the fold writes the `link_codes` and `link_urls` entries
 * of all such links later, in key order, so that many entries share each
 * b-tree leaf written. It runs in steps of at most IFOLD_STEP rows: one inside
 * each create batch's transaction (committed with it, no fsync of its own),
 * more in transactions of their own on the flush timer's tick; creates never
 * wait for a whole fold. Until a link's fold is done, creates find its URL in memory
 * (the urlmap) and reads find it through links_unindexed.
 *
 * Writer thread only, except kurz_ifold_pending and kurz_ifold_folds (any
 * thread, for metrics). The fold borrows the writer's sqlite3 handle and owns
 * its own prepared statements on it. */
#ifndef KURZ_STORE_IFOLD_H
#define KURZ_STORE_IFOLD_H
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IFOLD_ROWS 65536u /* waiting links that start a fold before fold_ms */
#define IFOLD_STEP 2048u  /* index rows written or links done per step */

struct kurz_ifold; /* opaque */

/* Prepares the statements on db and, with load, loads the links a stop or
 * crash left unindexed (their dedupe entries into memory; an admin command
 * beside a running server leaves them to it). Reads only. Returns 0, -ENOMEM
 * or a store error. */
int kurz_ifold_open(sqlite3 *db, int64_t fold_ms, bool load, struct kurz_ifold **out);
void kurz_ifold_free(struct kurz_ifold *f);

/* Inside a create batch: a mark to go back to if the batch rolls back, the
 * dedupe entry of a link just inserted (0 or -ENOMEM), the rollback, and the
 * commit of `created` new links. The rollback and the commit also undo or
 * keep the batch's step of the fold. */
size_t kurz_ifold_mark(const struct kurz_ifold *f);
int kurz_ifold_added(struct kurz_ifold *f, uint64_t url_hash, int64_t id);
void kurz_ifold_rollback(struct kurz_ifold *f, size_t mark);
void kurz_ifold_committed(struct kurz_ifold *f, size_t created);

/* Iterates over the ids of unindexed deduplicable links with url_hash (see
 * kurz_urlmap_next). */
int kurz_ifold_next(const struct kurz_ifold *f, uint64_t url_hash, size_t *cursor, int64_t *id);

/* Inside a create batch's open transaction: starts a fold when one is due
 * and runs one step of it there, under a savepoint. A step that fails is
 * undone alone (the fold tries again no sooner than a second later) and 0 is
 * returned; an error is returned only when the failure ended the whole
 * transaction, which then fails the batch. */
int kurz_ifold_batch_step(struct kurz_ifold *f);

/* Outside any transaction: starts a fold when one is due (fold_ms since the
 * last, or IFOLD_ROWS links waiting) and runs steps of it, at least one and
 * more while less than budget_ms has passed. A failed step is rolled back and
 * retried no sooner than a second later. Returns 0 or the store error. */
int kurz_ifold_work(struct kurz_ifold *f, int64_t budget_ms);

size_t kurz_ifold_pending(const struct kurz_ifold *f);
uint64_t kurz_ifold_folds(const struct kurz_ifold *f);
#endif
