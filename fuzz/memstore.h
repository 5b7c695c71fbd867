/* fuzz/memstore.h - an in-memory struct kurz_store for the fuzz targets that
 * drive the whole service: a bounded hash map with the SQLite backend's
 * create semantics (aliases, dedupe of live default-expiry links), and a
 * switch that makes every call fail as a broken backend would. */
#ifndef KURZ_FUZZ_MEMSTORE_H
#define KURZ_FUZZ_MEMSTORE_H
#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"

#define KURZ_MEMSTORE_MAX 4096 /* links; creates beyond it fail as unavailable */

/* Returns a new empty store, or NULL when out of memory. Freed by its ops->close.
 * Every op is thread-safe (one internal mutex). */
struct kurz_store *kurz_memstore_new(void);
/* While failing is true every op returns KURZ_E_UNAVAILABLE (healthy() false).
 * Thread-safe. */
void kurz_memstore_set_failing(struct kurz_store *s, bool failing);
/* Links stored now. Thread-safe. */
size_t kurz_memstore_count(struct kurz_store *s);
#endif
