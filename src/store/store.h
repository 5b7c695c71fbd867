/* store/store.h - the durable store of links behind one interface (a struct of
 * function pointers), so the embedded SQLite backend and the PostgreSQL
 * backend are interchangeable. All calls block; callers keep them off the event
 * loops. Reads are thread-safe. Writes (create_batch, delete, add_clicks,
 * cleanup, lease_counter, api keys) are made by one writer thread at a time
 * (see store/writer.h), which is what lets creates be group-committed. */
#ifndef KURZ_STORE_STORE_H
#define KURZ_STORE_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KURZ_CODE_MAX 64   /* longest code or alias */
#define KURZ_URL_MAX  5000 /* longest target URL */

/* Error codes beyond negative errno values. */
#define KURZ_E_NOTFOUND    (-10001) /* no such link */
#define KURZ_E_UNAVAILABLE (-10002) /* backend down or failing: answer 503 */

struct kurz_store;
struct kurz_buf; /* util/buf.h */

/* A stored link. url is owned by whoever the call says. */
struct kurz_link {
        char code[KURZ_CODE_MAX + 1];
        char *url;
        size_t url_len;
        int64_t created_at;  /* unix seconds */
        int64_t expires_at;  /* unix seconds, 0 = never */
        int64_t clicks;      /* total clicks flushed so far */
        int64_t last_access; /* unix seconds, 0 = never clicked */
};

/* Generates the next code for a new link into out (NUL-terminated, at most
 * KURZ_CODE_MAX chars). Called by create_batch on the writer thread. Returns 0
 * or a negative error (the request then fails with that error). */
typedef int (*kurz_code_fn)(void *arg, char *out, size_t cap);

enum kurz_create_status {
        KURZ_CREATE_PENDING = 0,
        KURZ_CREATE_NEW,         /* stored under a new code */
        KURZ_CREATE_EXISTING,    /* the same URL was already stored (dedupe) */
        KURZ_CREATE_ALIAS_TAKEN, /* the alias exists */
        KURZ_CREATE_FAILED,      /* see err */
};

/* One create in a batch. Inputs are borrowed for the call; outputs are
 * written by the store. */
struct kurz_create {
        /* in */
        const char *url;
        size_t url_len;
        uint64_t url_hash;  /* kurz_hash of the URL bytes, for dedupe */
        const char *alias;  /* NUL-terminated, or NULL for a generated code */
        int64_t created_at; /* unix seconds */
        int64_t expires_at; /* unix seconds, 0 = never */
        bool dedupe;        /* return an existing live link of the same URL */
        /* out */
        enum kurz_create_status status;
        int err; /* negative error when FAILED */
        char code[KURZ_CODE_MAX + 1];
        int64_t out_created_at;
        int64_t out_expires_at;
};

/* One day of a link's clicks. */
struct kurz_day_clicks {
        int32_t day; /* days since 1970-01-01 (UTC) */
        int64_t clicks;
};

/* What GET /api/v1/stats/url/{code} reports. */
struct kurz_link_stats {
        int64_t total_clicks;
        int64_t clicks_today;
        int64_t clicks_week;              /* the last 7 days, today included */
        int64_t clicks_month;             /* the last 30 days, today included */
        int64_t first_click;              /* unix seconds, 0 = never */
        int64_t last_click;               /* unix seconds, 0 = never */
        struct kurz_day_clicks *timeline; /* oldest first, days with clicks only */
        size_t ndays;
};

/* What GET /api/v1/stats/platform reports. */
struct kurz_platform_stats {
        int64_t total_urls;
        int64_t total_clicks;
        int64_t clicks_today;
        int64_t active_urls; /* not expired */
};

/* One click aggregate to add. */
struct kurz_click {
        char code[KURZ_CODE_MAX + 1];
        int32_t day; /* days since 1970-01-01 (UTC) */
        int64_t count;
        int64_t last_access; /* unix seconds */
};

struct kurz_store_ops {
        /* Reads code. On success fills *out (out->url malloc'ed: caller frees)
         * and returns 0; KURZ_E_NOTFOUND when absent (expired links are still
         * returned: the caller decides); KURZ_E_UNAVAILABLE or -errno on
         * failure. Thread-safe. */
        int (*lookup)(struct kurz_store *s, const char *code, size_t code_len,
                      struct kurz_link *out);
        /* As lookup, but only what a redirect needs: out->clicks and
         * out->last_access are left 0 (the totals cost index reads of the
         * click rollup). NULL when the store has no cheaper read: callers
         * use lookup. Thread-safe. */
        int (*lookup_target)(struct kurz_store *s, const char *code, size_t code_len,
                             struct kurz_link *out);
        /* Creates n links in ONE transaction and returns only after it is
         * durably committed. Each item gets its own status. A whole-batch
         * failure (commit failed, disk full) returns a negative error and marks
         * every item FAILED. gen makes codes for items without alias; a
         * generated code that collides is logged and replaced. Writer thread. */
        int (*create_batch)(struct kurz_store *s, struct kurz_create *items, size_t n,
                            kurz_code_fn gen, void *gen_arg);
        /* Deletes code. 0, KURZ_E_NOTFOUND, or an error. Writer thread. */
        int (*remove)(struct kurz_store *s, const char *code, size_t code_len);
        /* Adds click aggregates in one transaction (totals, last access and the
         * per-day rollup); 0 means they are durable and every read counts
         * them. A store may write them to the rollup later (SQLite logs them
         * and folds the log once a minute): n == 0 (clicks NULL) does such
         * deferred work when due. Writer thread. */
        int (*add_clicks)(struct kurz_store *s, const struct kurz_click *clicks, size_t n);
        /* Deletes up to batch links expired before now (and, when
         * unused_before > 0, links created and last accessed before it). Writes
         * the deleted codes (malloc'ed array of KURZ_CODE_MAX+1 char arrays,
         * caller frees) so caches can drop them. Returns the count or an error.
         * Writer thread. */
        int (*cleanup)(struct kurz_store *s, int64_t now, int64_t unused_before, size_t batch,
                       char (**codes)[KURZ_CODE_MAX + 1]);
        /* Atomically reserves n counter values; *start receives the first.
         * Never returns the same value twice, across restarts. Writer thread. */
        int (*lease_counter)(struct kurz_store *s, uint64_t n, uint64_t *start);
        /* The store-wide secret of the code permutation, created on first use
         * and kept in the store (16 bytes). Thread-safe. */
        int (*permutation_key)(struct kurz_store *s, uint8_t key[16]);
        /* API keys, stored only as SHA-256 hashes (hex, 64 chars). */
        int (*key_add)(struct kurz_store *s, const char *hash_hex, const char *name);
        /* 0 when the hash is a valid key, KURZ_E_NOTFOUND when not. Thread-safe. */
        int (*key_check)(struct kurz_store *s, const char *hash_hex);
        /* Lists up to limit links with code > after (ordered by code); returns
         * the count; *out is a malloc'ed array whose urls the caller frees with
         * kurz_store_links_free(). Thread-safe. */
        int (*list)(struct kurz_store *s, const char *after, size_t limit, struct kurz_link **out);
        /* Counts of links: total and not expired at now. Thread-safe. */
        int (*count)(struct kurz_store *s, int64_t now, int64_t *total, int64_t *active);
        /* True when the backend answers now (for /health). Thread-safe. */
        bool (*healthy)(struct kurz_store *s);
        /* Closes connections and frees s. */
        void (*close)(struct kurz_store *s);
        /* Optional (NULL allowed): appends the backend's own Prometheus text
         * (pools, replica health, read routing) to out. Thread-safe. */
        int (*metrics)(struct kurz_store *s, struct kurz_buf *out);
        /* Click statistics of one link from the daily rollup (never from raw
         * clicks): fills *out (out->timeline malloc'ed, caller frees with
         * free()); KURZ_E_NOTFOUND when the link does not exist. today is the
         * current UTC day number. Thread-safe. */
        int (*stats_link)(struct kurz_store *s, const char *code, size_t code_len, int32_t today,
                          struct kurz_link_stats *out);
        /* Platform totals, answered from maintained counters (no scan of all
         * links per call). Thread-safe. */
        int (*stats_platform)(struct kurz_store *s, int64_t now, int32_t today,
                              struct kurz_platform_stats *out);
};

/* Every backend's handle starts with this. */
struct kurz_store {
        const struct kurz_store_ops *ops;
        const char *name; /* "sqlite", "postgres" */
};

/* Frees a list returned by ops->list. */
void kurz_store_links_free(struct kurz_link *links, size_t n);

#endif
