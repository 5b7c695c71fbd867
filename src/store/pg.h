/* store/pg.h - the PostgreSQL backend: one or more shards (slot = hash(code)
 * mod 4096), each a primary that takes every write and streaming replicas
 * that serve reads, with a connection pool per node, circuit breakers, a
 * background health thread (replica liveness and replay lag) and schema
 * migrations. Semantics match store/sqlite.c; see docs/POSTGRES.md. */
#ifndef KURZ_STORE_PG_H
#define KURZ_STORE_PG_H
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

/* Schema version of each PostgreSQL shard this build expects. */
#define KURZ_PG_SCHEMA_VERSION 2

struct kurz_pg_config {
        const char *database;        /* primary URL of the single shard, or NULL */
        const char *replicas;        /* comma-separated replica URLs of it, or NULL */
        const char *shards_file;     /* shards file (wins over database), or NULL */
        unsigned pool_max;           /* connections per node, default 50 */
        unsigned pool_min_idle;      /* idle connections kept open per node, default 10 */
        uint64_t connect_timeout_ms; /* longest wait for a pooled connection, default 30 s
                                      * (every operation also has its own, shorter deadline) */
        uint64_t idle_timeout_ms;    /* idle connections beyond min_idle close, default 10 min */
        uint64_t max_lifetime_ms;    /* connections are replaced after this, default 30 min */
        uint64_t check_interval_ms;  /* replica health check period, default 1 s */
        uint64_t max_lag_bytes;      /* replay lag beyond which a replica is skipped, 10 MiB */
        bool background;             /* run the health/pool thread (serve); false for tools */
};

/* Connects to every shard's primary, applies missing migrations there, loads
 * (or creates) the permutation key and starts the health thread. Returns 0
 * or a negative error (KURZ_E_UNAVAILABLE when a primary cannot be reached,
 * -EINVAL for a bad configuration, logged with the reason); *out is freed
 * with (*out)->ops->close(*out). */
int kurz_pg_open(const struct kurz_pg_config *cfg, struct kurz_store **out);
/* Applies migrations on every shard's primary (under an advisory lock, so
 * concurrent migrators are safe) and returns the version now there. */
int kurz_pg_migrate(const struct kurz_pg_config *cfg, int *version);
#endif
