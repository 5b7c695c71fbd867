/* store/shards.h - the shard map of the PostgreSQL backend: which shard owns
 * each of the 4096 slots (slot = kurz_hash(key) mod 4096), and each shard's
 * primary and replica URLs, parsed from the shards file (format in
 * docs/POSTGRES.md) or built from --database/--replicas as one shard.
 * Immutable after parsing: every read is thread-safe. */
#ifndef KURZ_STORE_SHARDS_H
#define KURZ_STORE_SHARDS_H
#include <stddef.h>
#include <stdint.h>

#define KURZ_SLOTS              4096       /* fixed: shards move by slots, never by rehashing */
#define KURZ_SHARDS_MAX         64         /* shards one file may list */
#define KURZ_SHARD_REPLICAS_MAX 16         /* replicas per shard */
#define KURZ_SHARDS_FILE_MAX    (1u << 20) /* largest shards file read */

struct kurz_shard_def {
        char name[64];
        char *primary;   /* connection URL (postgres://...), owned */
        char **replicas; /* n_replicas URLs, owned */
        size_t n_replicas;
};

struct kurz_shards {
        struct kurz_shard_def *shards; /* n entries, in file order: shard 0 first */
        size_t n;
        uint8_t slot_shard[KURZ_SLOTS]; /* slot -> index into shards */
};

/* Parses the text of a shards file (len bytes, need not be NUL-terminated).
 * Returns 0 and *out (free with kurz_shards_free), or -EINVAL with a message
 * naming the line and the problem in err (always NUL-terminated when
 * errcap > 0), or -ENOMEM. Every slot 0..4095 must be owned by exactly one
 * shard. */
int kurz_shards_parse(const char *text, size_t len, struct kurz_shards **out, char *err,
                      size_t errcap);
/* Reads and parses the file at path (at most KURZ_SHARDS_FILE_MAX bytes). */
int kurz_shards_load(const char *path, struct kurz_shards **out, char *err, size_t errcap);
/* One shard owning every slot: primary plus a comma-separated list of
 * replica URLs (NULL or "" for none). */
int kurz_shards_single(const char *primary, const char *replicas_csv, struct kurz_shards **out,
                       char *err, size_t errcap);
/* NULL is a no-op. */
void kurz_shards_free(struct kurz_shards *s);

/* The slot of a key (a code): kurz_hash(key) mod KURZ_SLOTS. */
unsigned kurz_shards_slot(const void *key, size_t len);
/* The index of the shard that owns a code. */
unsigned kurz_shards_route(const struct kurz_shards *s, const void *code, size_t len);
/* The index of the shard that owns a URL hash's dedupe entry (url_hash mod
 * KURZ_SLOTS routed through the same slot table). */
unsigned kurz_shards_route_hash(const struct kurz_shards *s, uint64_t url_hash);
#endif
