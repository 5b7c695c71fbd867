/* store/urlmap.h - the SQLite store's dedupe entries (URL hash -> link row id)
 * of the links not yet in its URL index (see store/ifold.h): creates look
 * their URLs up here.
 *
 * Not thread-safe: the writer thread owns it. Entries added since a size
 * mark can be dropped again (a create batch that rolls back). */
#ifndef KURZ_STORE_URLMAP_H
#define KURZ_STORE_URLMAP_H
#include <stddef.h>
#include <stdint.h>

struct kurz_urlmap; /* opaque */

/* Returns NULL on ENOMEM. */
struct kurz_urlmap *kurz_urlmap_new(void);
void kurz_urlmap_free(struct kurz_urlmap *m);
/* Adds hash -> id. Returns 0 or -ENOMEM (the map is unchanged). */
int kurz_urlmap_add(struct kurz_urlmap *m, uint64_t hash, int64_t id);
/* Entries in the map; a mark for kurz_urlmap_truncate. */
size_t kurz_urlmap_size(const struct kurz_urlmap *m);
/* Drops the entries added after the map had n entries. */
void kurz_urlmap_truncate(struct kurz_urlmap *m, size_t n);
void kurz_urlmap_clear(struct kurz_urlmap *m);
/* Drops the n oldest entries (those of a finished fold); the others keep
 * their order. */
void kurz_urlmap_drop_oldest(struct kurz_urlmap *m, size_t n);
/* Iterates over the ids of hash, newest first: *cursor starts at 0. Returns
 * 1 and sets *id, or 0 when there are no more. */
int kurz_urlmap_next(const struct kurz_urlmap *m, uint64_t hash, size_t *cursor, int64_t *id);
#endif
