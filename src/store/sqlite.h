/* store/sqlite.h - the embedded backend: SQLite in WAL mode with
 * synchronous=FULL, one write connection (used only by the writer thread) and
 * a pool of read connections. The data directory is locked (flock) so two
 * processes never share it. */
#ifndef KURZ_STORE_SQLITE_H
#define KURZ_STORE_SQLITE_H
#include <stdbool.h>

#include "store/store.h"

/* Schema version of the SQLite file this build expects. */
#define KURZ_SQLITE_SCHEMA_VERSION 5

struct kurz_sqlite_config {
        const char *data_dir;     /* created if missing; holds kurz.db */
        unsigned readers;         /* maximum pooled read connections, default 8 */
        unsigned busy_timeout_ms; /* default 5000 */
        bool shared;      /* skip the data-dir lock, migrate only a new file: for admin commands
                           * beside a running server */
        uint64_t fold_ms; /* click log folded at least this often, default 60000 */
};

/* Opens (creating and migrating as needed) the store. Returns 0 or a negative
 * error; *out is freed with (*out)->ops->close(*out). */
int kurz_sqlite_open(const struct kurz_sqlite_config *cfg, struct kurz_store **out);
/* Applies migrations up to KURZ_SQLITE_SCHEMA_VERSION and returns the version now in
 * the file (for `kurz migrate`). */
int kurz_sqlite_migrate(const char *data_dir, int *version);
#endif
