/* store/sqlite.c - the embedded store: one SQLite file in WAL mode with
 * synchronous=FULL. The writer thread owns the one write connection (creates
 * are group-committed there); reads come from a small pool of query_only
 * connections. A flock on data_dir/kurz.lock keeps other servers out. */
#include "store/sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ids/base62.h"
#include "ids/perm.h"
#include "store/ifold.h"
#include "store/unfolded.h"
#include "util/buf.h"
#include "util/log.h"

#define DEFAULT_READERS 8
#define DEFAULT_BUSY_MS 5000
#define GEN_RETRIES     8            /* generated codes tried per item before giving up */
#define LIST_MAX        1000         /* rows one list call returns at most */
#define LEASE_MAX       (1ULL << 40) /* counter values one lease may reserve */
#define CLEANUP_MAX     (1u << 20)   /* links one cleanup call deletes at most */
#define KEY_NAME        "permutation_key"
#define PDAYS           8  /* distinct days one click flush sums in memory */
#define STATS_DAYS      30 /* days of timeline a link's statistics report */
/* Click folds (see store/unfolded.h): logged clicks reach clicks_daily at
 * least every fold_ms (--click-fold-interval, default FOLD_MS), and sooner
 * once FOLD_ROWS (code, day) rows wait. */
#define FOLD_MS   60000
#define FOLD_ROWS (1u << 19)
#define GONE_MAX  65536u /* deleted codes noted per GONE_MS; past it, flushes check all */
/* A deleted code is remembered for GONE_MS to 2 x GONE_MS: clicks of it that
 * a loop counted before the delete and flushes later (within one
 * --click-flush-interval) are checked against links and dropped. */
#define GONE_MS 600000
/* wal_autocheckpoint of the writer, as set at open */
#define WAL_AUTOCHECKPOINT 10000
/* Time the index fold may take on the flush timer's tick beyond its first
 * step (see store/ifold.h): short, as creates wait behind it; under load the
 * create batches, one step each, carry the fold. */
#define IFOLD_TICK_MS 10
#define LOG_REC_MAX   (1 + KURZ_CODE_MAX + 4 + 8 + 8) /* one click in a clicks_log batch */

/* Every statement a connection may run, prepared once when it opens. Write
 * statements are prepared on readers too (harmless: query_only makes them
 * fail), which keeps one table for both kinds. */
enum stmt_id {
        ST_BEGIN_IMMEDIATE,
        ST_BEGIN,
        ST_COMMIT,
        ST_ROLLBACK,
        ST_INSERT,
        ST_DEDUPE,
        ST_DUP_ID,
        ST_DELETE,
        ST_DELETE_DAILY,
        ST_CLICK_UPDATE,
        ST_CLICK_DAILY,
        ST_EXPIRED,
        ST_UNUSED,
        ST_LEASE,
        ST_LEASE_FLOOR,
        ST_KEY_ADD,
        ST_LOOKUP,
        ST_LOOKUP_TARGET,
        ST_KEY_CHECK,
        ST_LIST,
        ST_COUNT_TOTAL,
        ST_COUNT_EXPIRED,
        ST_PING,
        ST_TOTALS_ADD,
        ST_PDAILY_ADD,
        ST_STATS_LINK,
        ST_STATS_DAYS,
        ST_PLATFORM,
        ST_PLATFORM_DAY,
        ST_LOG_ADD,
        ST_LOG_NEXT,
        ST_LOG_CLEAR,
        ST_EXISTS,
        ST_COUNT
};

/* A link's click totals, from its rows of the daily rollup (schema 3):
 * all its clicks, its first click (the first_at of its earliest day) and its
 * latest (the last_at of its latest day; a day's clicks lie within it). l
 * names the links row. A link has at most one row per day it was clicked. */
#define CLICKS_OF(l)                                                                               \
        "(SELECT coalesce(sum(d.clicks), 0) FROM clicks_daily d WHERE d.code = " l ".code)"
#define FIRST_OF(l)                                                                                \
        "coalesce((SELECT d.first_at FROM clicks_daily d WHERE d.code = " l ".code"                \
        " ORDER BY d.day LIMIT 1), 0)"
#define LAST_OF(l)                                                                                 \
        "coalesce((SELECT d.last_at FROM clicks_daily d WHERE d.code = " l ".code"                 \
        " ORDER BY d.day DESC LIMIT 1), 0)"

/* The links row of code ?1 (schema 5): a code of the code generator is found
 * by its row id ?10 (see code_key), any other through link_codes. */
#define BY_CODE(l)                                                                                 \
        l ".id = coalesce(?10, (SELECT c.id FROM link_codes c WHERE c.code = ?1)) AND " l          \
          ".code = ?1"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
    [ST_BEGIN] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    /* A code without a key gets the next negative id (a trigger adds it to
     * link_codes, where a taken code fails the insert). */
    [ST_INSERT] = "INSERT INTO links(id, code, url, url_hash, created_at, expires_at, is_alias,"
                  " dedupe) VALUES(coalesce(?8, (SELECT min(coalesce(min(id), 0), 0) - 1 FROM"
                  " links)), ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    /* url = ?2 compares bytes (BINARY collation): a url_hash collision
     * never merges two different URLs. Expiry is checked in C: a bound
     * value compared with expires_at would make SQLite re-prepare the
     * statement on every bind (it might enable the partial index). */
    [ST_DEDUPE] = "SELECT l.code, l.created_at, l.expires_at FROM link_urls u JOIN links l"
                  " ON l.id = u.id WHERE u.url_hash = ?1 AND l.url = ?2 AND l.dedupe = 1"
                  " AND l.is_alias = 0",
    /* The same for one link not yet in link_urls (see store/ifold.h). */
    [ST_DUP_ID] = "SELECT code, created_at, expires_at FROM links WHERE id = ?3 AND"
                  " url_hash = ?1 AND url = ?2 AND dedupe = 1 AND is_alias = 0",
    [ST_DELETE] = "DELETE FROM links WHERE " BY_CODE("links"),
    [ST_DELETE_DAILY] = "DELETE FROM clicks_daily WHERE code = ?1",
    /* One row write per (code, day) of a flush, into the narrow rollup
     * only (make bench, section 1): the link's totals are derived from it.
     * Most flushes add to rows that exist (a link clicked earlier that
     * day): the UPDATE is one b-tree search, 3.7 us a row against 5.6 us
     * for the upsert below at 100,000 links. An existing row means the link
     * exists (a delete removes its rows in the same transaction). Otherwise
     * the INSERT writes the row unless the link was deleted since it was
     * clicked (a read of links decides; no row change then). */
    [ST_CLICK_UPDATE] = "UPDATE clicks_daily SET clicks = clicks + ?3,"
                        " first_at = min(first_at, ?4), last_at = max(last_at, ?5)"
                        " WHERE code = ?1 AND day = ?2",
    [ST_CLICK_DAILY] =
        "INSERT INTO clicks_daily(code, day, clicks, first_at, last_at)"
        " SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM links l WHERE " BY_CODE("l") ")",
    [ST_EXPIRED] = "SELECT code FROM links WHERE expires_at > 0 AND expires_at <= ?1"
                   " LIMIT ?2",
    [ST_UNUSED] = "SELECT code FROM links l WHERE created_at < ?1 AND " LAST_OF("l") " < ?1"
                                                                                     " LIMIT ?2",
    /* The first lease inserts the row (next = n) and returns 0. */
    [ST_LEASE] = "INSERT INTO counters(name, next) VALUES('codes', ?1) ON CONFLICT(name)"
                 " DO UPDATE SET next = next + ?1 RETURNING next - ?1",
    /* Raises the counter to at least ?1 (re-stores a lease whose
     * transaction was rolled back while its codes are still in use). */
    [ST_LEASE_FLOOR] = "INSERT INTO counters(name, next) VALUES('codes', ?1) ON CONFLICT(name)"
                       " DO UPDATE SET next = max(next, excluded.next)",
    [ST_KEY_ADD] = "INSERT INTO api_keys(hash, name, created_at) VALUES(?1, ?2, ?3)"
                   " ON CONFLICT(hash) DO UPDATE SET name = excluded.name",
    [ST_LOOKUP] = "SELECT url, created_at, expires_at, " CLICKS_OF("l") ", " LAST_OF(
        "l") " FROM links l WHERE " BY_CODE("l"),
    /* A cold redirect's read: no totals (two index reads of clicks_daily). */
    [ST_LOOKUP_TARGET] = "SELECT url, created_at, expires_at FROM links l WHERE " BY_CODE("l"),
    [ST_KEY_CHECK] = "SELECT 1 FROM api_keys WHERE hash = ?1",
    /* In code order: the first ?2 of link_codes, and the links not yet
     * indexed there (about IFOLD_ROWS, more while a fold runs). */
    [ST_LIST] = "SELECT code, url, created_at, expires_at, " CLICKS_OF("l") ", " LAST_OF(
        "l") " FROM links l WHERE l.id IN (SELECT id FROM (SELECT c.id FROM link_codes c"
             " WHERE c.code > ?1 ORDER BY c.code LIMIT ?2) UNION ALL SELECT id FROM"
             " links_unindexed) AND l.code > ?1 ORDER BY l.code LIMIT ?2",
    [ST_COUNT_TOTAL] = "SELECT count(*) FROM links",
    [ST_COUNT_EXPIRED] = "SELECT count(*) FROM links WHERE expires_at > 0 AND"
                         " expires_at <= ?1",
    [ST_PING] = "SELECT 1",
    /* Platform counters (schema 2), kept in the transactions that change
     * them so GET /api/v1/stats/platform never scans links. */
    [ST_TOTALS_ADD] = "INSERT INTO platform_totals(slot, links, clicks) VALUES(0, ?1, ?2)"
                      " ON CONFLICT(slot) DO UPDATE SET links = links + excluded.links,"
                      " clicks = clicks + excluded.clicks",
    [ST_PDAILY_ADD] = "INSERT INTO platform_daily(day, slot, clicks) VALUES(?1, 0, ?2)"
                      " ON CONFLICT(day, slot) DO UPDATE SET clicks = clicks + excluded.clicks",
    [ST_STATS_LINK] = "SELECT " CLICKS_OF("l") ", " FIRST_OF("l") ", " LAST_OF(
        "l") " FROM links l WHERE " BY_CODE("l"),
    [ST_STATS_DAYS] = "SELECT day, clicks FROM clicks_daily WHERE code = ?1 AND day > ?2"
                      " AND day <= ?3 ORDER BY day",
    [ST_PLATFORM] = "SELECT coalesce(sum(links), 0), coalesce(sum(clicks), 0)"
                    " FROM platform_totals",
    [ST_PLATFORM_DAY] = "SELECT coalesce(sum(clicks), 0) FROM platform_daily WHERE day = ?1",
    /* The click log (schema 4): one row per flush, folded and deleted. */
    [ST_LOG_ADD] = "INSERT INTO clicks_log(batch) VALUES(?1)",
    [ST_LOG_NEXT] = "SELECT seq, batch FROM clicks_log WHERE seq > ?1 ORDER BY seq LIMIT 1",
    [ST_LOG_CLEAR] = "DELETE FROM clicks_log WHERE seq <= ?1",
    [ST_EXISTS] = "SELECT 1 FROM links l WHERE " BY_CODE("l"),
};

/* Migrations: migrations[i] takes the schema from version i to i + 1. Each
 * runs in its own transaction together with the bump of schema_version.
 * Append only; never edit a released step. */
static const char *const migrations[] = {
    /* 1: the initial schema. links is WITHOUT ROWID so a lookup by code
     * is one b-tree search. dedupe marks links created with the default
     * expiry policy, the only ones a later create may be merged with. */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;"
    "CREATE TABLE counters(name TEXT PRIMARY KEY, next INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE links("
    " code TEXT PRIMARY KEY,"
    " url TEXT NOT NULL,"
    " url_hash INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL DEFAULT 0,"
    " clicks INTEGER NOT NULL DEFAULT 0,"
    " last_access INTEGER NOT NULL DEFAULT 0,"
    " is_alias INTEGER NOT NULL DEFAULT 0,"
    " dedupe INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE INDEX links_url_hash ON links(url_hash);"
    "CREATE INDEX links_expires_at ON links(expires_at) WHERE expires_at > 0;"
    "CREATE TABLE clicks_daily("
    " code TEXT NOT NULL,"
    " day INTEGER NOT NULL,"
    " clicks INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(code, day)"
    ") WITHOUT ROWID;"
    "CREATE TABLE api_keys(hash TEXT PRIMARY KEY, name TEXT, created_at INTEGER)"
    " WITHOUT ROWID;",
    /* 2: statistics. first_access of each link; platform totals and the
     * per-day platform click rollup, maintained by the writes that change
     * them (slot is 0 here; PostgreSQL spreads its writers over slots) and
     * initialised once from the existing data. */
    "ALTER TABLE links ADD COLUMN first_access INTEGER NOT NULL DEFAULT 0;"
    "UPDATE links SET first_access = max(created_at, coalesce((SELECT min(day) FROM"
    " clicks_daily d WHERE d.code = links.code) * 86400, last_access)) WHERE clicks > 0;"
    "CREATE TABLE platform_totals(slot INTEGER PRIMARY KEY, links INTEGER NOT NULL,"
    " clicks INTEGER NOT NULL);"
    "INSERT INTO platform_totals(slot, links, clicks)"
    " SELECT 0, count(*), coalesce(sum(clicks), 0) FROM links;"
    "CREATE TABLE platform_daily(day INTEGER NOT NULL, slot INTEGER NOT NULL,"
    " clicks INTEGER NOT NULL, PRIMARY KEY(day, slot)) WITHOUT ROWID;"
    "INSERT INTO platform_daily(day, slot, clicks)"
    " SELECT day, 0, sum(clicks) FROM clicks_daily GROUP BY day;",
    /* 3: a link's click totals live only in its rows of clicks_daily, which
     * gain the first and last click time of their day: a click flush then
     * writes one narrow row per (code, day) instead of also rewriting the
     * wide links row (about half the flush's cost, make bench section 1).
     * Rows of old data get their day's bounds, and the link's exact first
     * and last click on its earliest and latest day. */
    "ALTER TABLE clicks_daily ADD COLUMN first_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE clicks_daily ADD COLUMN last_at INTEGER NOT NULL DEFAULT 0;"
    "DELETE FROM clicks_daily WHERE code NOT IN (SELECT code FROM links);"
    "UPDATE clicks_daily SET first_at = day * 86400, last_at = day * 86400 + 86399;"
    "UPDATE clicks_daily SET first_at = (SELECT l.first_access FROM links l"
    " WHERE l.code = clicks_daily.code) WHERE day = (SELECT min(d.day) FROM clicks_daily d"
    " WHERE d.code = clicks_daily.code) AND (SELECT l.first_access FROM links l"
    " WHERE l.code = clicks_daily.code) > 0;"
    "UPDATE clicks_daily SET last_at = (SELECT l.last_access FROM links l"
    " WHERE l.code = clicks_daily.code) WHERE day = (SELECT max(d.day) FROM clicks_daily d"
    " WHERE d.code = clicks_daily.code) AND (SELECT l.last_access FROM links l"
    " WHERE l.code = clicks_daily.code) > 0;"
    "ALTER TABLE links DROP COLUMN clicks;"
    "ALTER TABLE links DROP COLUMN first_access;"
    "ALTER TABLE links DROP COLUMN last_access;",
    /* 4: the click log. A flush appends its clicks as one row instead of
     * writing a row of clicks_daily per (code, day); a fold adds the log
     * to clicks_daily once a minute and deletes it (make bench, section 1).
     * Until then reads add the logged clicks from memory. */
    "CREATE TABLE IF NOT EXISTS clicks_log(seq INTEGER PRIMARY KEY, batch BLOB NOT NULL);",
    /* 5: links keyed by an integer. A generated code's row id is the
     * counter (or snowflake id) it encodes (kurz_link_id, see code_key), so
     * a create appends to the table instead of writing a random leaf of it;
     * other codes (aliases) get negative ids. link_codes (code order, for
     * list and for codes without a key) and link_urls (dedupe) are written
     * for new links by a periodic fold, in key order; links_unindexed lists
     * the links a fold has yet to index, in the order they were created (a
     * deleted link's row stays until then: reads join it with links). See
     * store/ifold.h and make bench, section 3. */
    "CREATE TABLE links5("
    " id INTEGER PRIMARY KEY,"
    " code TEXT NOT NULL,"
    " url TEXT NOT NULL,"
    " url_hash INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL DEFAULT 0,"
    " is_alias INTEGER NOT NULL DEFAULT 0,"
    " dedupe INTEGER NOT NULL DEFAULT 0);"
    "INSERT INTO links5 SELECT kurz_link_id(code), code, url, url_hash, created_at, expires_at,"
    " is_alias, dedupe FROM links WHERE kurz_link_id(code) IS NOT NULL ORDER BY 1;"
    "INSERT INTO links5 SELECT -row_number() OVER (ORDER BY code), code, url, url_hash,"
    " created_at, expires_at, is_alias, dedupe FROM links WHERE kurz_link_id(code) IS NULL;"
    "DROP TABLE links;"
    "ALTER TABLE links5 RENAME TO links;"
    "CREATE INDEX links_expires_at ON links(expires_at) WHERE expires_at > 0;"
    "CREATE TABLE link_codes(code TEXT PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO link_codes(code, id) SELECT code, id FROM links ORDER BY code;"
    "CREATE TABLE link_urls(url_hash INTEGER NOT NULL, id INTEGER NOT NULL,"
    " PRIMARY KEY(url_hash, id)) WITHOUT ROWID;"
    "INSERT INTO link_urls(url_hash, id) SELECT url_hash, id FROM links"
    " WHERE dedupe = 1 AND is_alias = 0 ORDER BY url_hash, id;"
    "CREATE TABLE links_unindexed(seq INTEGER PRIMARY KEY, id INTEGER NOT NULL);"
    "CREATE TRIGGER links_added AFTER INSERT ON links BEGIN"
    " INSERT INTO links_unindexed(id) VALUES(new.id);"
    " INSERT INTO link_codes(code, id) SELECT new.code, new.id WHERE new.id < 0;"
    " END;"
    "CREATE TRIGGER links_removed AFTER DELETE ON links BEGIN"
    " DELETE FROM link_codes WHERE code = old.code;"
    " DELETE FROM link_urls WHERE url_hash = old.url_hash AND id = old.id;"
    " END;",
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == KURZ_SQLITE_SCHEMA_VERSION,
               "one migration step per schema version");

/* A connection and its prepared statements. Used by one thread at a time
 * (the connections are opened with SQLITE_OPEN_NOMUTEX). */
struct conn {
        sqlite3 *db;
        sqlite3_stmt *st[ST_COUNT];
        struct conn *next_free; /* reader free list, under kurz_sqlite.mu */
        struct conn *next_all;  /* every reader, under kurz_sqlite.mu */
};

struct kurz_sqlite {
        struct kurz_store store; /* first: a kurz_store * is a kurz_sqlite * */
        char *dir;
        char *db_path;
        int lock_fd;
        unsigned busy_ms;
        struct conn *w; /* the write connection: writer thread only */
        uint8_t key[16];
        struct kurz_perm perm; /* of key: code_key (immutable after open) */
        /* Writer thread only. A counter lease made inside a create batch is
         * undone when that transaction fails, but the code generator keeps
         * handing out the block: lease_end (the end of the highest lease) is
         * then stored again in the next create transaction, so no code can be
         * committed while the counter row is below it. */
        uint64_t lease_end;
        bool lease_in_tx;   /* a lease happened in the open transaction */
        bool lease_unsaved; /* the stored counter may be below lease_end */

        /* Logged clicks not yet in clicks_daily. The writer thread mutates
         * them under ulock (write); readers add them to what they read under
         * ulock (read), held across their read so that a fold (which commits
         * under the write lock) is seen either wholly in the file or wholly
         * here. The writer reads them without the lock. */
        pthread_rwlock_t ulock;
        struct kurz_unfolded *unf;
        int64_t log_seq;      /* the last clicks_log row written: writer thread */
        bool log_dirty;       /* clicks_log may hold rows: writer thread */
        int64_t last_fold_ms; /* monotonic: writer thread */
        int64_t fold_ms;
        _Atomic size_t unfolded_rows; /* for metrics, without the lock */
        _Atomic uint64_t folds;
        /* Codes deleted in the last GONE_MS or more, as rows of day 0 (two
         * generations, turned at most every GONE_MS). A click is counted
         * for a link that existed (a redirect found it); a flush checks
         * against links only the clicks of codes deleted since, or all of
         * them for two generations when too many were deleted to note.
         * Writer thread. */
        struct kurz_unfolded *gone[2];
        int64_t gone_turned_ms;
        unsigned check_all;
        bool shared;
        /* Links not yet in link_codes and link_urls (schema 5). Writer
         * thread. */
        struct kurz_ifold *ifold;

        pthread_mutex_t mu; /* guards the reader pool below */
        pthread_cond_t cv;  /* signalled when a reader is returned */
        struct conn *free_readers;
        struct conn *all_readers;
        unsigned n_readers;
        unsigned max_readers;
};

static struct kurz_sqlite *to_sqlite(struct kurz_store *s)
{
        return (struct kurz_sqlite *)s;
}

/* The row id of a code the code generator makes (schema 5): a 7-character
 * base62 code is the counter whose permutation it is (the permutation is
 * a bijection of [0, 62^7)); a longer canonical base62 code of a value of at
 * least 62^7 is a snowflake id. Distinct codes get distinct keys, and
 * consecutive creates ascending ones. -1 for any other code. */
static int64_t code_key(const struct kurz_perm *p, const char *code, size_t len)
{
        uint64_t v;

        if (kurz_base62_decode(code, len, &v) < 0)
                return -1;
        if (len == 7)
                return (int64_t)kurz_perm_invert(p, v);
        if (len > 7 && code[0] != '0' && v >= KURZ_PERM_DOMAIN && v <= (uint64_t)INT64_MAX)
                return (int64_t)v;
        return -1;
}

/* Binds code to ?1 and its key (or NULL) to ?10: see BY_CODE. */
static void bind_code(const struct kurz_sqlite *s, sqlite3_stmt *st, const char *code, size_t len)
{
        int64_t key = code_key(&s->perm, code, len);

        sqlite3_bind_text(st, 1, code, (int)len, SQLITE_STATIC);
        if (key >= 0)
                sqlite3_bind_int64(st, 10, key);
        else
                sqlite3_bind_null(st, 10);
}

/* kurz_link_id(code): code_key for the migration to schema 5, NULL for -1. */
static void link_id_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
        const unsigned char *code = sqlite3_value_text(argv[0]);
        int len = sqlite3_value_bytes(argv[0]);
        int64_t key;

        (void)argc;
        key = code && len > 0 ? code_key(sqlite3_user_data(ctx), (const char *)code, (size_t)len)
                              : -1;
        if (key >= 0)
                sqlite3_result_int64(ctx, key);
        else
                sqlite3_result_null(ctx);
}

/* Maps an SQLite result code to a kurz error. Failures of the storage itself
 * (disk full, I/O error, lock timeout, corruption) become KURZ_E_UNAVAILABLE,
 * which the API answers with 503. */
static int map_rc(int rc)
{
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return 0;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_RANGE:
        case SQLITE_MISMATCH:
        case SQLITE_MISUSE:
                return -EINVAL;
        default: /* FULL, IOERR, BUSY, LOCKED, CORRUPT, CANTOPEN, READONLY... */
                return KURZ_E_UNAVAILABLE;
        }
}

/* Logs the connection's last error and returns it mapped. */
static int db_err(sqlite3 *db, int rc, const char *what)
{
        kurz_error("sqlite: %s: %s (%d)", what, sqlite3_errmsg(db), rc);
        return map_rc(rc);
}

/* Errors that concern one statement only: the transaction stays usable. */
static bool rc_is_local(int rc)
{
        switch (rc & 0xff) {
        case SQLITE_CONSTRAINT:
        case SQLITE_TOOBIG:
        case SQLITE_RANGE:
        case SQLITE_MISMATCH:
                return true;
        default:
                return false;
        }
}

/* Runs a statement that returns no rows (or whose rows are ignored) to the
 * end and resets it. Returns SQLITE_OK or the SQLite error; the error message
 * stays available through sqlite3_errmsg(). */
static int run(struct conn *c, enum stmt_id id)
{
        sqlite3_stmt *st = c->st[id];
        int rc;

        do
                rc = sqlite3_step(st);
        while (rc == SQLITE_ROW);
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Ends a failed write transaction; harmless when SQLite already rolled it
 * back on its own (I/O error, disk full). */
static void rollback(struct conn *c)
{
        if (!sqlite3_get_autocommit(c->db))
                run(c, ST_ROLLBACK);
}

/* Reads a single integer result; the statement must be bound already. */
static int query_int64(struct conn *c, enum stmt_id id, int64_t *out, const char *what)
{
        sqlite3_stmt *st = c->st[id];
        int rc;

        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                *out = sqlite3_column_int64(st, 0);
                rc = SQLITE_OK;
        }
        sqlite3_reset(st);
        return rc == SQLITE_OK ? 0 : db_err(c->db, rc, what);
}

/* Adds to the platform totals inside the open write transaction. */
static int totals_add(struct conn *c, int64_t links, int64_t clicks)
{
        if (links == 0 && clicks == 0)
                return SQLITE_OK;
        sqlite3_bind_int64(c->st[ST_TOTALS_ADD], 1, links);
        sqlite3_bind_int64(c->st[ST_TOTALS_ADD], 2, clicks);
        return run(c, ST_TOTALS_ADD);
}

/* Creates dir and its missing parents (mode 0700). */
static int make_dir(const char *dir)
{
        char path[PATH_MAX];
        size_t len = strlen(dir);
        struct stat sb;

        if (len == 0 || len >= sizeof(path))
                return -ENAMETOOLONG;
        memcpy(path, dir, len + 1);
        for (size_t i = 1; i <= len; i++) {
                if (path[i] != '/' && path[i] != '\0')
                        continue;
                path[i] = '\0';
                if (mkdir(path, 0700) < 0 && errno != EEXIST) {
                        int err = -errno;

                        kurz_error("sqlite: cannot create %s: %s", path, strerror(errno));
                        return err;
                }
                if (i < len)
                        path[i] = '/';
        }
        if (stat(dir, &sb) < 0)
                return -errno;
        if (!S_ISDIR(sb.st_mode)) {
                kurz_error("sqlite: data dir %s is not a directory", dir);
                return -ENOTDIR;
        }
        return 0;
}

/* Takes the exclusive flock on dir/kurz.lock; *fd keeps it. */
static int lock_dir(const char *dir, int *fd)
{
        char path[PATH_MAX];
        int lfd, err;

        if (snprintf(path, sizeof(path), "%s/kurz.lock", dir) >= (int)sizeof(path))
                return -ENAMETOOLONG;
        lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lfd < 0) {
                err = -errno;
                kurz_error("sqlite: cannot open %s: %s", path, strerror(errno));
                return err;
        }
        if (flock(lfd, LOCK_EX | LOCK_NB) < 0) {
                err = errno == EWOULDBLOCK ? -EBUSY : -errno;
                if (err == -EBUSY)
                        kurz_error("data dir %s is in use by another kurz process", dir);
                else
                        kurz_error("sqlite: cannot lock %s: %s", path, strerror(errno));
                close(lfd);
                return err;
        }
        *fd = lfd;
        return 0;
}

/* Reads the single text result of a PRAGMA into out. */
static int pragma_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
        sqlite3_stmt *st;
        int rc;

        out[0] = '\0';
        rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return db_err(db, rc, sql);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                const unsigned char *t = sqlite3_column_text(st, 0);

                snprintf(out, cap, "%s", t ? (const char *)t : "");
                rc = SQLITE_OK;
        }
        if (rc != SQLITE_OK)
                rc = db_err(db, rc, sql);
        sqlite3_finalize(st);
        return rc;
}

/* Opens one connection to path with the pragmas every connection needs.
 * Readers are query_only; the writer switches the file to WAL. */
static int db_open(const char *path, unsigned busy_ms, bool reader, sqlite3 **out)
{
        int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
        char mode[16];
        sqlite3 *db = NULL;
        int rc;

        *out = NULL;
        if (!reader)
                flags |= SQLITE_OPEN_CREATE;
        rc = sqlite3_open_v2(path, &db, flags, NULL);
        if (rc != SQLITE_OK) {
                kurz_error("sqlite: cannot open %s: %s", path,
                           db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
                rc = map_rc(rc);
                goto out_close_db;
        }
        sqlite3_extended_result_codes(db, 1);
        sqlite3_busy_timeout(db, (int)busy_ms);
        rc = sqlite3_exec(db,
                          reader ? "PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;"
                                   " PRAGMA query_only=1;"
                                 /* The writer checkpoints every 10,000 WAL pages
                                  * (40 MB) instead of SQLite's 1,000: each
                                  * checkpoint fsyncs the database file on the
                                  * writer thread. Durable creates/s, make bench
                                  * section 3 harness, 4 A/B pairs: 11.2-12.0k
                                  * -> 13.9-15.1k. A checkpointer thread of its
                                  * own gained less (11-13k) and was not kept. */
                                 : "PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;"
                                   " PRAGMA journal_size_limit=67108864;"
                                   " PRAGMA wal_autocheckpoint=10000; PRAGMA cache_size=-65536;",
                          NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
                rc = db_err(db, rc, "pragmas");
                goto out_close_db;
        }
        if (!reader) {
                rc = pragma_text(db, "PRAGMA journal_mode=WAL", mode, sizeof(mode));
                if (rc < 0)
                        goto out_close_db;
                if (strcmp(mode, "wal") != 0) {
                        kurz_error("sqlite: %s: cannot switch to WAL mode (got %s)", path, mode);
                        rc = KURZ_E_UNAVAILABLE;
                        goto out_close_db;
                }
        }
        *out = db;
        return 0;

out_close_db:
        sqlite3_close(db);
        return rc;
}

static int exec_sql(sqlite3 *db, const char *sql, const char *what)
{
        int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

        return rc == SQLITE_OK ? 0 : db_err(db, rc, what);
}

/* Reads the schema version inside the open transaction (0 for a new file). */
static int read_version(sqlite3 *db, int *version)
{
        sqlite3_stmt *st;
        int rc;

        rc = sqlite3_prepare_v2(db, "SELECT coalesce(max(version), 0) FROM schema_version", -1, &st,
                                NULL);
        if (rc != SQLITE_OK)
                return db_err(db, rc, "read schema version");
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                *version = sqlite3_column_int(st, 0);
                rc = SQLITE_OK;
        } else {
                rc = db_err(db, rc, "read schema version");
        }
        sqlite3_finalize(st);
        return rc;
}

static int load_key(sqlite3 *db, uint8_t key[16]);

/* Registers kurz_link_id on db with the file's permutation key (created
 * here when the file has none yet). */
static int add_link_id_fn(sqlite3 *db)
{
        struct kurz_perm *p = malloc(sizeof(*p));
        uint8_t key[16];
        int rc;

        if (!p)
                return -ENOMEM;
        rc = load_key(db, key);
        if (rc < 0) {
                free(p);
                return rc;
        }
        kurz_perm_init(p, key);
        rc = sqlite3_create_function_v2(db, "kurz_link_id", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                        p, link_id_fn, NULL, NULL, free);
        return rc == SQLITE_OK ? 0 : db_err(db, rc, "register kurz_link_id");
}

/* Applies the missing migrations, one transaction each, and stores the
 * resulting version in *version. Safe against a concurrent migrator: each
 * step re-reads the version under the write lock (BEGIN IMMEDIATE). With
 * fresh_only, only a new file is migrated; an older one is refused. */
static int migrate_db(sqlite3 *db, const char *path, bool fresh_only, int *version)
{
        char bump[96];
        int cur = 0, first = -1, rc;

        for (;;) {
                rc = exec_sql(db, "BEGIN IMMEDIATE", "begin migration");
                if (rc < 0)
                        return rc;
                rc = exec_sql(db,
                              "CREATE TABLE IF NOT EXISTS schema_version("
                              "version INTEGER NOT NULL)",
                              "create schema_version");
                if (rc < 0)
                        goto out_rollback;
                rc = read_version(db, &cur);
                if (rc < 0)
                        goto out_rollback;
                if (cur < 0) {
                        kurz_error("sqlite: %s has an invalid schema version %d", path, cur);
                        rc = -EPROTO;
                        goto out_rollback;
                }
                if (cur > KURZ_SQLITE_SCHEMA_VERSION) {
                        kurz_error("sqlite: %s has schema version %d, newer than version %d "
                                   "of this kurz build; upgrade kurz",
                                   path, cur, KURZ_SQLITE_SCHEMA_VERSION);
                        rc = -EPROTO;
                        goto out_rollback;
                }
                /* An admin command beside a running server must not change
                 * the schema under it (that server may be an older build). */
                if (first < 0)
                        first = cur;
                if (fresh_only && first > 0 && cur < KURZ_SQLITE_SCHEMA_VERSION) {
                        kurz_error("sqlite: %s has schema version %d, older than version %d of "
                                   "this kurz build; stop the server and run `kurz migrate` (or "
                                   "start the server of this build) first",
                                   path, cur, KURZ_SQLITE_SCHEMA_VERSION);
                        rc = -EPROTO;
                        goto out_rollback;
                }
                if (cur == KURZ_SQLITE_SCHEMA_VERSION) {
                        rc = exec_sql(db, "COMMIT", "commit migration");
                        if (rc < 0)
                                goto out_rollback;
                        *version = cur;
                        return 0;
                }
                if (cur == 4) {
                        rc = add_link_id_fn(db);
                        if (rc < 0)
                                goto out_rollback;
                }
                rc = exec_sql(db, migrations[cur], "migration");
                if (rc < 0)
                        goto out_rollback;
                snprintf(bump, sizeof(bump),
                         "DELETE FROM schema_version; INSERT INTO schema_version VALUES(%d)",
                         cur + 1);
                rc = exec_sql(db, bump, "bump schema version");
                if (rc < 0)
                        goto out_rollback;
                rc = exec_sql(db, "COMMIT", "commit migration");
                if (rc < 0)
                        goto out_rollback;
                kurz_info("sqlite: %s migrated to schema version %d", path, cur + 1);
        }

out_rollback:
        if (!sqlite3_get_autocommit(db))
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
}

static void conn_close(struct conn *c)
{
        if (!c)
                return;
        for (int i = 0; i < ST_COUNT; i++)
                sqlite3_finalize(c->st[i]);
        if (sqlite3_close(c->db) != SQLITE_OK)
                kurz_error("sqlite: close: %s", sqlite3_errmsg(c->db));
        free(c);
}

/* Wraps an open database in a conn and prepares every statement on it. On
 * failure db is closed. */
static int conn_prepare(sqlite3 *db, struct conn **out)
{
        struct conn *c;
        int rc;

        *out = NULL;
        c = calloc(1, sizeof(*c));
        if (!c) {
                sqlite3_close(db);
                return -ENOMEM;
        }
        c->db = db;
        for (int i = 0; i < ST_COUNT; i++) {
                rc = sqlite3_prepare_v3(db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &c->st[i],
                                        NULL);
                if (rc != SQLITE_OK) {
                        rc = db_err(db, rc, stmt_sql[i]);
                        conn_close(c);
                        return rc;
                }
        }
        *out = c;
        return 0;
}

/* Loads the permutation key, creating it on the first open of the file. The
 * INSERT OR IGNORE and re-read make a concurrent creator harmless. */
static int load_key(sqlite3 *db, uint8_t key[16])
{
        static const char sel[] = "SELECT value FROM meta WHERE key = '" KEY_NAME "'";
        static const char ins[] =
            "INSERT OR IGNORE INTO meta(key, value) VALUES('" KEY_NAME "', ?1)";
        uint8_t fresh[16];
        sqlite3_stmt *st;
        int rc, len = -1;

        for (int attempt = 0; attempt < 2; attempt++) {
                rc = sqlite3_prepare_v2(db, sel, -1, &st, NULL);
                if (rc != SQLITE_OK)
                        return db_err(db, rc, "read permutation key");
                rc = sqlite3_step(st);
                if (rc == SQLITE_ROW) {
                        len = sqlite3_column_bytes(st, 0);
                        if (len == 16)
                                memcpy(key, sqlite3_column_blob(st, 0), 16);
                        rc = SQLITE_OK;
                } else if (rc == SQLITE_DONE) {
                        rc = SQLITE_OK;
                }
                if (rc != SQLITE_OK)
                        rc = db_err(db, rc, "read permutation key");
                sqlite3_finalize(st);
                if (rc < 0)
                        return rc;
                if (len == 16)
                        return 0;
                if (len >= 0) {
                        kurz_error("sqlite: the stored permutation key has %d bytes, not 16", len);
                        return -EINVAL;
                }
                if (getrandom(fresh, sizeof(fresh), 0) != (ssize_t)sizeof(fresh)) {
                        kurz_error("sqlite: getrandom: %s", strerror(errno));
                        return -EIO;
                }
                rc = sqlite3_prepare_v2(db, ins, -1, &st, NULL);
                if (rc != SQLITE_OK)
                        return db_err(db, rc, "store permutation key");
                sqlite3_bind_blob(st, 1, fresh, sizeof(fresh), SQLITE_STATIC);
                rc = sqlite3_step(st);
                rc = rc == SQLITE_DONE ? 0 : db_err(db, rc, "store permutation key");
                sqlite3_finalize(st);
                if (rc < 0)
                        return rc;
        }
        return -EIO;
}

/* Takes a free reader, opening one while fewer than max_readers exist, else
 * waits for one to be returned. */
static int reader_get(struct kurz_sqlite *s, struct conn **out)
{
        struct conn *c;
        sqlite3 *db;
        int rc;

        pthread_mutex_lock(&s->mu);
        while (!s->free_readers) {
                if (s->n_readers < s->max_readers) {
                        s->n_readers++;
                        pthread_mutex_unlock(&s->mu);
                        rc = db_open(s->db_path, s->busy_ms, true, &db);
                        if (rc == 0)
                                rc = conn_prepare(db, &c);
                        pthread_mutex_lock(&s->mu);
                        if (rc < 0) {
                                s->n_readers--;
                                pthread_cond_signal(&s->cv);
                                pthread_mutex_unlock(&s->mu);
                                return rc;
                        }
                        c->next_all = s->all_readers;
                        s->all_readers = c;
                        pthread_mutex_unlock(&s->mu);
                        *out = c;
                        return 0;
                }
                pthread_cond_wait(&s->cv, &s->mu);
        }
        c = s->free_readers;
        s->free_readers = c->next_free;
        pthread_mutex_unlock(&s->mu);
        *out = c;
        return 0;
}

static void reader_put(struct kurz_sqlite *s, struct conn *c)
{
        pthread_mutex_lock(&s->mu);
        c->next_free = s->free_readers;
        s->free_readers = c;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
}

/* Sets out's click totals from the rollup's (clicks, last) and the logged
 * clicks of code. Under ulock (read). */
static void add_unfolded(struct kurz_sqlite *s, const char *code, size_t len, int64_t clicks,
                         int64_t last, struct kurz_link *out)
{
        struct kurz_unfolded_sum u;

        kurz_unfolded_sum(s->unf, code, len, &u);
        out->clicks = clicks + u.total;
        out->last_access = u.total && u.last_at > last ? u.last_at : last;
}

/* Reads code with statement id: ST_LOOKUP (with the click totals) or
 * ST_LOOKUP_TARGET (without: they stay 0). */
static int lookup_with(struct kurz_store *store, enum stmt_id id, const char *code, size_t code_len,
                       struct kurz_link *out)
{
        struct kurz_sqlite *s = to_sqlite(store);
        struct conn *c;
        sqlite3_stmt *st;
        int rc;

        if (code_len == 0 || code_len > KURZ_CODE_MAX)
                return KURZ_E_NOTFOUND;
        rc = reader_get(s, &c);
        if (rc < 0)
                return rc;
        st = c->st[id];
        bind_code(s, st, code, code_len);
        if (id == ST_LOOKUP)
                pthread_rwlock_rdlock(&s->ulock);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                const unsigned char *url = sqlite3_column_text(st, 0);
                size_t len = (size_t)sqlite3_column_bytes(st, 0);

                out->url = malloc(len + 1);
                if (!out->url) {
                        rc = -ENOMEM;
                        goto out_reset;
                }
                if (len)
                        memcpy(out->url, url, len);
                out->url[len] = '\0';
                out->url_len = len;
                memcpy(out->code, code, code_len);
                out->code[code_len] = '\0';
                out->created_at = sqlite3_column_int64(st, 1);
                out->expires_at = sqlite3_column_int64(st, 2);
                out->clicks = 0;
                out->last_access = 0;
                if (id == ST_LOOKUP)
                        add_unfolded(s, code, code_len, sqlite3_column_int64(st, 3),
                                     sqlite3_column_int64(st, 4), out);
                rc = 0;
        } else if (rc == SQLITE_DONE) {
                rc = KURZ_E_NOTFOUND;
        } else {
                rc = db_err(c->db, rc, "lookup");
        }
out_reset:
        sqlite3_reset(st);
        if (id == ST_LOOKUP)
                pthread_rwlock_unlock(&s->ulock);
        reader_put(s, c);
        return rc;
}

static int sq_lookup(struct kurz_store *store, const char *code, size_t code_len,
                     struct kurz_link *out)
{
        return lookup_with(store, ST_LOOKUP, code, code_len, out);
}

static int sq_lookup_target(struct kurz_store *store, const char *code, size_t code_len,
                            struct kurz_link *out)
{
        return lookup_with(store, ST_LOOKUP_TARGET, code, code_len, out);
}

static void item_fail(struct kurz_create *it, int err)
{
        it->status = KURZ_CREATE_FAILED;
        it->err = err;
}

static void item_new(struct kurz_create *it)
{
        it->status = KURZ_CREATE_NEW;
        it->out_created_at = it->created_at;
        it->out_expires_at = it->expires_at;
}

/* Inserts it under it->code, and notes a deduplicable link for the fold.
 * Returns SQLITE_OK or the SQLite error. */
static int insert_link(struct kurz_sqlite *s, const struct kurz_create *it, bool alias)
{
        struct conn *c = s->w;
        sqlite3_stmt *st = c->st[ST_INSERT];
        size_t len = strlen(it->code);
        int64_t key = code_key(&s->perm, it->code, len);
        int rc;

        sqlite3_bind_text(st, 1, it->code, (int)len, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, it->url, (int)it->url_len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)it->url_hash);
        sqlite3_bind_int64(st, 4, it->created_at);
        sqlite3_bind_int64(st, 5, it->expires_at);
        sqlite3_bind_int(st, 6, alias);
        sqlite3_bind_int(st, 7, !alias && it->dedupe);
        if (key >= 0)
                sqlite3_bind_int64(st, 8, key);
        else
                sqlite3_bind_null(st, 8);
        rc = run(c, ST_INSERT);
        if (rc == SQLITE_OK && !alias && it->dedupe &&
            kurz_ifold_added(s->ifold, it->url_hash, sqlite3_last_insert_rowid(c->db)) < 0)
                rc = SQLITE_NOMEM;
        return rc;
}

/* Steps st (ST_DEDUPE or ST_DUP_ID, bound) to the first live link of it's
 * URL. Returns SQLITE_ROW and fills it (EXISTING) when found, SQLITE_DONE
 * when not, or the SQLite error. */
static int dup_step(sqlite3_stmt *st, struct kurz_create *it)
{
        int rc;

        sqlite3_bind_int64(st, 1, (sqlite3_int64)it->url_hash);
        sqlite3_bind_text(st, 2, it->url, (int)it->url_len, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                int64_t expires_at = sqlite3_column_int64(st, 2);
                int len = sqlite3_column_bytes(st, 0);

                if (expires_at != 0 && expires_at <= it->created_at)
                        continue; /* expired: cleanup will remove it */
                if (len <= 0 || len > KURZ_CODE_MAX)
                        continue; /* not a code we could have stored */
                memcpy(it->code, sqlite3_column_text(st, 0), (size_t)len);
                it->code[len] = '\0';
                it->out_created_at = sqlite3_column_int64(st, 1);
                it->out_expires_at = expires_at;
                it->status = KURZ_CREATE_EXISTING;
                break;
        }
        sqlite3_reset(st);
        return rc;
}

/* Looks for a live deduplicable link of the same URL: among the links not
 * yet indexed (the fold's memory), then in link_urls. */
static int find_dup(struct kurz_sqlite *s, struct kurz_create *it)
{
        struct conn *c = s->w;
        size_t cur = 0;
        int64_t id;
        int rc;

        while (kurz_ifold_next(s->ifold, it->url_hash, &cur, &id)) {
                sqlite3_bind_int64(c->st[ST_DUP_ID], 3, id);
                rc = dup_step(c->st[ST_DUP_ID], it);
                if (rc != SQLITE_DONE)
                        return rc;
        }
        return dup_step(c->st[ST_DEDUPE], it);
}

/* An insert or query of one item failed with rc: the item fails alone when
 * the error is local to the statement; otherwise returns the batch error. */
static int item_error(struct conn *c, struct kurz_create *it, int rc, const char *what)
{
        if (rc_is_local(rc)) {
                item_fail(it, map_rc(rc));
                return 0;
        }
        return db_err(c->db, rc, what);
}

/* Stores one item inside the open batch transaction. Returns 0 when the item
 * got its status (including a per-item FAILED), or a negative error that
 * fails the whole batch. */
static int create_one(struct kurz_sqlite *s, struct kurz_create *it, kurz_code_fn gen,
                      void *gen_arg)
{
        struct conn *c = s->w;
        size_t len;
        int rc;

        if (!it->url || it->url_len == 0 || it->url_len > KURZ_URL_MAX) {
                item_fail(it, -EINVAL);
                return 0;
        }
        if (it->alias) {
                len = strnlen(it->alias, KURZ_CODE_MAX + 1);
                if (len == 0 || len > KURZ_CODE_MAX) {
                        item_fail(it, -EINVAL);
                        return 0;
                }
                memcpy(it->code, it->alias, len + 1);
                rc = insert_link(s, it, true);
                if (rc == SQLITE_OK) {
                        item_new(it);
                        return 0;
                }
                if ((rc & 0xff) == SQLITE_CONSTRAINT) {
                        it->status = KURZ_CREATE_ALIAS_TAKEN;
                        return 0;
                }
                return item_error(c, it, rc, "insert alias");
        }
        if (it->dedupe) {
                rc = find_dup(s, it);
                if (rc == SQLITE_ROW)
                        return 0;
                if (rc != SQLITE_DONE)
                        return item_error(c, it, rc, "dedupe lookup");
        }
        if (!gen) {
                item_fail(it, -EINVAL);
                return 0;
        }
        for (int tries = 0; tries < GEN_RETRIES; tries++) {
                it->code[0] = '\0';
                rc = gen(gen_arg, it->code, sizeof(it->code));
                if (rc < 0) {
                        item_fail(it, rc);
                        return 0;
                }
                len = strnlen(it->code, sizeof(it->code));
                if (len == 0 || len > KURZ_CODE_MAX) {
                        kurz_error("sqlite: the code generator returned an invalid code");
                        item_fail(it, -EINVAL);
                        return 0;
                }
                rc = insert_link(s, it, false);
                if (rc == SQLITE_OK) {
                        item_new(it);
                        return 0;
                }
                if ((rc & 0xff) != SQLITE_CONSTRAINT)
                        return item_error(c, it, rc, "insert link");
                kurz_warn("sqlite: generated code %s already exists (a code generator bug?); "
                          "generating another",
                          it->code);
        }
        kurz_error("sqlite: %d generated codes in a row already existed; create failed",
                   GEN_RETRIES);
        it->code[0] = '\0';
        item_fail(it, -EEXIST);
        return 0;
}

static int sq_create_batch(struct kurz_store *store, struct kurz_create *items, size_t n,
                           kurz_code_fn gen, void *gen_arg)
{
        struct kurz_sqlite *s = to_sqlite(store);
        struct conn *c = s->w;
        size_t mark;
        int64_t created = 0;
        int rc;

        if (n == 0)
                return 0;
        for (size_t i = 0; i < n; i++) {
                items[i].status = KURZ_CREATE_PENDING;
                items[i].err = 0;
                items[i].code[0] = '\0';
        }
        s->lease_in_tx = false;
        mark = kurz_ifold_mark(s->ifold); /* what a rollback goes back to */
        rc = run(c, ST_BEGIN_IMMEDIATE);
        if (rc != SQLITE_OK) {
                db_err(c->db, rc, "begin create batch");
                goto out_fail_all;
        }
        if (s->lease_unsaved) {
                sqlite3_bind_int64(c->st[ST_LEASE_FLOOR], 1, (sqlite3_int64)s->lease_end);
                rc = run(c, ST_LEASE_FLOOR);
                if (rc != SQLITE_OK) {
                        db_err(c->db, rc, "store the counter lease again");
                        goto out_rollback;
                }
        }
        /* A step of the index fold rides on the batch's commit. */
        if (kurz_ifold_batch_step(s->ifold) < 0)
                goto out_rollback;
        for (size_t i = 0; i < n; i++) {
                rc = create_one(s, &items[i], gen, gen_arg);
                if (rc < 0)
                        goto out_rollback;
                /* SQLite rolls the transaction back by itself on some errors
                 * (I/O, disk full), possibly inside gen's lease_counter. */
                if (sqlite3_get_autocommit(c->db)) {
                        kurz_error("sqlite: create batch transaction was rolled back");
                        goto out_fail_all;
                }
                if (items[i].status == KURZ_CREATE_NEW)
                        created++;
        }
        rc = totals_add(c, created, 0);
        if (rc != SQLITE_OK) {
                db_err(c->db, rc, "count new links");
                goto out_rollback;
        }
        rc = run(c, ST_COMMIT);
        if (rc != SQLITE_OK) {
                db_err(c->db, rc, "commit create batch");
                goto out_rollback;
        }
        s->lease_unsaved = false; /* stored by this commit (floor or lease) */
        s->lease_in_tx = false;
        kurz_ifold_committed(s->ifold, (size_t)created);
        return 0;

out_rollback:
        rollback(c);
out_fail_all:
        kurz_ifold_rollback(s->ifold, mark);
        if (s->lease_in_tx)
                s->lease_unsaved = true;
        s->lease_in_tx = false;
        /* Nothing of the batch is committed: no item may report success. */
        for (size_t i = 0; i < n; i++)
                item_fail(&items[i], KURZ_E_UNAVAILABLE);
        return KURZ_E_UNAVAILABLE;
}

/* Sums a flush's clicks per day for the platform rollup (a flush spans one
 * or two days, rarely more): count > 0 adds to days[], writing the sums out
 * when it is full; count == 0 writes out whatever is held. */
static int pdaily_add(struct conn *c, struct kurz_day_clicks *days, size_t *ndays, int32_t d,
                      int64_t count)
{
        sqlite3_stmt *st = c->st[ST_PDAILY_ADD];
        int rc;

        for (size_t i = 0; count > 0 && i < *ndays; i++) {
                if (days[i].day == d) {
                        days[i].clicks += count;
                        return SQLITE_OK;
                }
        }
        if (count > 0 && *ndays < PDAYS) {
                days[(*ndays)++] = (struct kurz_day_clicks){d, count};
                return SQLITE_OK;
        }
        for (size_t i = 0; i < *ndays; i++) {
                sqlite3_bind_int(st, 1, days[i].day);
                sqlite3_bind_int64(st, 2, days[i].clicks);
                rc = run(c, ST_PDAILY_ADD);
                if (rc != SQLITE_OK)
                        return rc;
        }
        *ndays = 0;
        if (count > 0)
                days[(*ndays)++] = (struct kurz_day_clicks){d, count};
        return SQLITE_OK;
}

static int64_t mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int row_cmp(const void *a, const void *b)
{
        const struct kurz_unfolded_row *x = *(const struct kurz_unfolded_row *const *)a;
        const struct kurz_unfolded_row *y = *(const struct kurz_unfolded_row *const *)b;
        int c = strncmp(x->code, y->code, sizeof(x->code));

        return c ? c : (x->day > y->day) - (x->day < y->day);
}

/* Adds row r to its (code, day) row of clicks_daily with statement id
 * (ST_CLICK_UPDATE or ST_CLICK_DAILY). */
static int click_row(struct kurz_sqlite *s, enum stmt_id id, const struct kurz_unfolded_row *r)
{
        struct conn *c = s->w;
        sqlite3_stmt *st = c->st[id];

        if (id == ST_CLICK_DAILY)
                bind_code(s, st, r->code, strnlen(r->code, sizeof(r->code)));
        else
                sqlite3_bind_text(st, 1, r->code, (int)strnlen(r->code, sizeof(r->code)),
                                  SQLITE_STATIC);
        sqlite3_bind_int(st, 2, r->day);
        sqlite3_bind_int64(st, 3, r->count);
        sqlite3_bind_int64(st, 4, r->first_at);
        sqlite3_bind_int64(st, 5, r->last_at);
        return run(c, id);
}

/* The row of click k: its clicks fell within [last_access, last_access]
 * as far as a flush can tell (a flush keeps only the latest click time). */
static void row_of(const struct kurz_click *k, struct kurz_unfolded_row *r)
{
        memcpy(r->code, k->code, sizeof(r->code));
        r->code[KURZ_CODE_MAX] = '\0';
        r->day = k->day;
        r->count = k->count;
        r->first_at = r->last_at = k->last_access;
}

/* Adds rows (n, in order) to clicks_daily and their clicks to the platform
 * counters, inside the open transaction. */
static int apply_rows(struct kurz_sqlite *s, const struct kurz_unfolded_row *const *rows, size_t n)
{
        struct conn *c = s->w;
        struct kurz_day_clicks days[PDAYS];
        size_t ndays = 0;
        int64_t total = 0;
        int rc;

        for (size_t i = 0; i < n; i++) {
                rc = click_row(s, ST_CLICK_UPDATE, rows[i]);
                if (rc == SQLITE_OK && sqlite3_changes(c->db) == 0)
                        rc = click_row(s, ST_CLICK_DAILY, rows[i]);
                if (rc != SQLITE_OK)
                        return rc;
                if (sqlite3_changes(c->db) == 0)
                        continue; /* deleted since it was clicked */
                total += rows[i]->count;
                rc = pdaily_add(c, days, &ndays, rows[i]->day, rows[i]->count);
                if (rc != SQLITE_OK)
                        return rc;
        }
        rc = pdaily_add(c, days, &ndays, 0, 0); /* writes what is left */
        return rc == SQLITE_OK ? totals_add(c, 0, total) : rc;
}

/* Commits the writer's open transaction and, under the write lock with it,
 * lets after(s, arg) change what readers add from memory: a reader sees both
 * or neither. A WAL checkpoint the commit would trigger is left to a later
 * commit, outside the lock: only the commit's own fsync holds readers up. */
static int commit_locked(struct kurz_sqlite *s, void (*after)(struct kurz_sqlite *, void *),
                         void *arg)
{
        struct conn *c = s->w;
        int rc;

        sqlite3_wal_autocheckpoint(c->db, 0);
        pthread_rwlock_wrlock(&s->ulock);
        rc = run(c, ST_COMMIT);
        if (rc == SQLITE_OK)
                after(s, arg);
        atomic_store(&s->unfolded_rows, kurz_unfolded_rows(s->unf));
        pthread_rwlock_unlock(&s->ulock);
        sqlite3_wal_autocheckpoint(c->db, WAL_AUTOCHECKPOINT);
        return rc;
}

static void turn_gone(struct kurz_sqlite *s);

static void after_fold(struct kurz_sqlite *s, void *arg)
{
        (void)arg;
        kurz_unfolded_clear(s->unf);
        atomic_fetch_add(&s->folds, 1);
        s->log_dirty = false;
        turn_gone(s);
}

/* Writes every logged click into clicks_daily and deletes the log they came
 * from, in one transaction; then forgets them. Writer thread. In code order,
 * consecutive writes land on the same b-tree pages (clicks_daily and links
 * are both keyed by code): far fewer page reads and WAL frames. Unsorted if
 * out of memory. */
static int fold(struct kurz_sqlite *s)
{
        struct conn *c = s->w;
        const struct kurz_unfolded_row *rows = kurz_unfolded_data(s->unf);
        size_t n = kurz_unfolded_rows(s->unf);
        const struct kurz_unfolded_row **order;
        int rc;

        s->last_fold_ms = mono_ms();
        if (n == 0 && !s->log_dirty)
                return 0;
        order = malloc((n ? n : 1) * sizeof(*order));
        for (size_t i = 0; order && i < n; i++)
                order[i] = &rows[i];
        if (order)
                qsort(order, n, sizeof(*order), row_cmp);
        rc = run(c, ST_BEGIN_IMMEDIATE);
        if (rc != SQLITE_OK) {
                free(order);
                return db_err(c->db, rc, "begin click fold");
        }
        if (order) {
                rc = apply_rows(s, order, n);
        } else {
                for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
                        const struct kurz_unfolded_row *r = &rows[i];

                        rc = apply_rows(s, &r, 1);
                }
        }
        free(order);
        if (rc == SQLITE_OK) {
                sqlite3_bind_int64(c->st[ST_LOG_CLEAR], 1, s->log_seq);
                rc = run(c, ST_LOG_CLEAR);
        }
        if (rc == SQLITE_OK)
                rc = commit_locked(s, after_fold, NULL);
        if (rc != SQLITE_OK) {
                rc = db_err(c->db, rc, "click fold");
                rollback(c);
        }
        return rc;
}

/* Forgets the older generation of deleted codes, at most every GONE_MS. */
static void turn_gone(struct kurz_sqlite *s)
{
        struct kurz_unfolded *t = s->gone[1];
        int64_t now = mono_ms();

        if (now - s->gone_turned_ms < GONE_MS)
                return;
        s->gone_turned_ms = now;
        kurz_unfolded_clear(t);
        s->gone[1] = s->gone[0];
        s->gone[0] = t;
        if (s->check_all)
                s->check_all--;
}

/* Notes that code was deleted (after the commit that deleted it). */
static void note_gone(struct kurz_sqlite *s, const char *code, size_t len)
{
        struct kurz_click k = {.count = 1};
        struct kurz_unfolded_row r = {.count = 1};

        if (len == 0 || len > KURZ_CODE_MAX)
                return;
        memcpy(k.code, code, len);
        memcpy(r.code, code, len);
        if (kurz_unfolded_rows(s->gone[0]) >= GONE_MAX ||
            kurz_unfolded_reserve(s->gone[0], &k, 1) < 0) {
                s->check_all = 2;
                return;
        }
        kurz_unfolded_add(s->gone[0], &r);
}

static int fold_if_due(struct kurz_sqlite *s)
{
        size_t n = kurz_unfolded_rows(s->unf);

        if (n >= FOLD_ROWS || (n > 0 && mono_ms() - s->last_fold_ms >= s->fold_ms))
                return fold(s);
        return 0;
}

static uint8_t *put_le(uint8_t *p, uint64_t v, size_t bytes)
{
        for (size_t i = 0; i < bytes; i++)
                *p++ = (uint8_t)(v >> (8 * i));
        return p;
}

static uint64_t get_le(const uint8_t *p, size_t bytes)
{
        uint64_t v = 0;

        for (size_t i = 0; i < bytes; i++)
                v |= (uint64_t)p[i] << (8 * i);
        return v;
}

/* Decodes one clicks_log record at *p (end: the end of the batch) into *r;
 * false when what is left is not a whole record. */
static bool log_record(const uint8_t **p, const uint8_t *end, struct kurz_unfolded_row *r)
{
        size_t len;

        if (end - *p < 1)
                return false;
        len = **p;
        if (len == 0 || len > KURZ_CODE_MAX || (size_t)(end - *p) < 1 + len + 4 + 8 + 8)
                return false;
        memcpy(r->code, *p + 1, len);
        r->code[len] = '\0';
        r->day = (int32_t)(uint32_t)get_le(*p + 1 + len, 4);
        r->count = (int64_t)get_le(*p + 5 + len, 8);
        r->first_at = r->last_at = (int64_t)get_le(*p + 13 + len, 8);
        *p += 1 + len + 4 + 8 + 8;
        return true;
}

/* True when the link code of a click still exists. It did when the click
 * was counted; only a code deleted since (noted in gone) is looked up. A code
 * with logged clicks exists: a delete folds them first. */
static int link_exists(struct kurz_sqlite *s, const char *code, size_t len, bool *yes)
{
        struct conn *c = s->w;
        sqlite3_stmt *st = c->st[ST_EXISTS];
        int rc;

        if (kurz_unfolded_has(s->unf, code, len) ||
            (!s->check_all && !kurz_unfolded_has(s->gone[0], code, len) &&
             !kurz_unfolded_has(s->gone[1], code, len))) {
                *yes = true;
                return SQLITE_OK;
        }
        bind_code(s, st, code, len);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        *yes = rc == SQLITE_ROW;
        return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Appends a clicks_log record of code at p: a click sum, or (count 0) a
 * tombstone that tells a replay to forget the code's earlier records. */
static uint8_t *put_record(uint8_t *p, const char *code, size_t len, int32_t day, int64_t count,
                           int64_t at)
{
        *p++ = (uint8_t)len;
        memcpy(p, code, len);
        p = put_le(p + len, (uint32_t)day, 4);
        p = put_le(p, (uint64_t)count, 8);
        return put_le(p, (uint64_t)at, 8);
}

/* Appends the log row batch[0, len) inside the open transaction. */
static int log_append(struct kurz_sqlite *s, const uint8_t *batch, size_t len)
{
        struct conn *c = s->w;
        int rc;

        sqlite3_bind_blob(c->st[ST_LOG_ADD], 1, batch, (int)len, SQLITE_STATIC);
        rc = run(c, ST_LOG_ADD);
        sqlite3_clear_bindings(c->st[ST_LOG_ADD]);
        if (rc == SQLITE_OK) {
                s->log_seq = sqlite3_last_insert_rowid(c->db);
                s->log_dirty = true;
        }
        return rc;
}

/* Inside the open transaction that deletes the n codes: their logged clicks
 * count for the platform (its history), as a fold would have counted them,
 * and a tombstone per code in the log keeps a replay from adding them again.
 * *any: whether one had logged clicks; the caller then forgets them
 * (forget_codes) under the commit's lock. */
static int drop_logged(struct kurz_sqlite *s, char (*codes)[KURZ_CODE_MAX + 1], size_t n, bool *any)
{
        struct conn *c = s->w;
        struct kurz_day_clicks days[PDAYS];
        size_t ndays = 0, k = 0;
        int64_t total = 0;
        uint8_t *batch = NULL, *p = NULL;
        int rc = SQLITE_OK;

        *any = false;
        for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
                size_t len = strnlen(codes[i], sizeof(codes[i]));
                struct kurz_unfolded_sum u;

                if (!kurz_unfolded_has(s->unf, codes[i], len))
                        continue;
                if (!batch) {
                        batch = malloc((n - i) * LOG_REC_MAX);
                        if (!batch)
                                return SQLITE_NOMEM;
                        p = batch;
                }
                kurz_unfolded_sum(s->unf, codes[i], len, &u);
                for (size_t d = 0; rc == SQLITE_OK && d < u.ndays; d++)
                        rc = pdaily_add(c, days, &ndays, u.days[d].day, u.days[d].clicks);
                total += u.total;
                p = put_record(p, codes[i], len, 0, 0, 0);
                k++;
        }
        if (rc == SQLITE_OK && k) {
                rc = pdaily_add(c, days, &ndays, 0, 0);
                if (rc == SQLITE_OK)
                        rc = totals_add(c, 0, total);
                if (rc == SQLITE_OK)
                        rc = log_append(s, batch, (size_t)(p - batch));
        }
        free(batch);
        *any = k > 0;
        return rc;
}

struct codes_arg {
        char (*codes)[KURZ_CODE_MAX + 1];
        size_t n;
};

static void forget_codes(struct kurz_sqlite *s, void *arg)
{
        struct codes_arg *a = arg;

        for (size_t i = 0; i < a->n; i++)
                kurz_unfolded_remove(s->unf, a->codes[i],
                                     strnlen(a->codes[i], sizeof(a->codes[i])));
}

/* A batch the table cannot take (more than KURZ_UNFOLDED_DAYS days at once):
 * written to clicks_daily directly, as before the log existed. */
static int add_clicks_direct(struct kurz_sqlite *s, const struct kurz_click *clicks, size_t n)
{
        struct conn *c = s->w;
        struct kurz_unfolded_row r;
        const struct kurz_unfolded_row *rp = &r;
        int rc = run(c, ST_BEGIN_IMMEDIATE);

        for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
                size_t len = strnlen(clicks[i].code, sizeof(clicks[i].code));

                if (len == 0 || len > KURZ_CODE_MAX || clicks[i].count <= 0)
                        continue;
                row_of(&clicks[i], &r);
                rc = apply_rows(s, &rp, 1);
        }
        if (rc == SQLITE_OK)
                rc = run(c, ST_COMMIT);
        if (rc != SQLITE_OK) {
                rc = db_err(c->db, rc, "add clicks");
                rollback(c);
        }
        return rc;
}

/* A flush: the clicks of links that exist are appended to clicks_log as one
 * row (durable when this returns 0) and added to the unfolded table; a fold
 * follows when one is due. n == 0 only folds when due (the service calls it
 * every flush interval). */
static int sq_add_clicks(struct kurz_store *store, const struct kurz_click *clicks, size_t n)
{
        struct kurz_sqlite *s = to_sqlite(store);
        struct conn *c = s->w;
        uint8_t *batch, *p;
        bool *keep;
        int rc;

        if (n == 0) {
                int irc = kurz_ifold_work(s->ifold, IFOLD_TICK_MS);

                rc = fold_if_due(s);
                return rc < 0 ? rc : irc;
        }
        pthread_rwlock_wrlock(&s->ulock);
        rc = kurz_unfolded_reserve(s->unf, clicks, n);
        pthread_rwlock_unlock(&s->ulock);
        if (rc == -E2BIG) { /* past KURZ_UNFOLDED_DAYS days: fold them first */
                rc = fold(s);
                if (rc < 0)
                        return rc;
                pthread_rwlock_wrlock(&s->ulock);
                rc = kurz_unfolded_reserve(s->unf, clicks, n);
                pthread_rwlock_unlock(&s->ulock);
                if (rc == -E2BIG) /* the batch alone spans more days */
                        return add_clicks_direct(s, clicks, n);
        }
        if (rc < 0)
                return rc;
        if (n > SIZE_MAX / LOG_REC_MAX)
                return -ENOMEM;
        batch = malloc(n * LOG_REC_MAX);
        keep = calloc(n, sizeof(*keep));
        if (!batch || !keep) {
                free(batch);
                free(keep);
                return -ENOMEM;
        }
        p = batch;
        rc = run(c, ST_BEGIN_IMMEDIATE);
        if (rc != SQLITE_OK) {
                free(batch);
                free(keep);
                return db_err(c->db, rc, "begin add clicks");
        }
        for (size_t i = 0; i < n; i++) {
                const struct kurz_click *k = &clicks[i];
                size_t len = strnlen(k->code, sizeof(k->code));

                if (len == 0 || len > KURZ_CODE_MAX || k->count <= 0)
                        continue;
                rc = link_exists(s, k->code, len, &keep[i]);
                if (rc != SQLITE_OK)
                        goto out_rollback;
                if (!keep[i])
                        continue; /* deleted since it was clicked */
                p = put_record(p, k->code, len, k->day, k->count, k->last_access);
        }
        if (p == batch) { /* nothing to log */
                rollback(c);
                free(batch);
                free(keep);
                return fold_if_due(s);
        }
        rc = log_append(s, batch, (size_t)(p - batch));
        if (rc == SQLITE_OK)
                rc = run(c, ST_COMMIT);
        if (rc != SQLITE_OK)
                goto out_rollback;
        pthread_rwlock_wrlock(&s->ulock);
        for (size_t i = 0; i < n; i++) {
                struct kurz_unfolded_row r;

                if (keep[i]) {
                        row_of(&clicks[i], &r);
                        kurz_unfolded_add(s->unf, &r);
                }
        }
        atomic_store(&s->unfolded_rows, kurz_unfolded_rows(s->unf));
        pthread_rwlock_unlock(&s->ulock);
        free(batch);
        free(keep);
        return fold_if_due(s);

out_rollback:
        free(batch);
        free(keep);
        rc = db_err(c->db, rc, "add clicks");
        rollback(c);
        return rc;
}

/* Decodes a clicks_log batch into a malloc'ed array (*out, *n). Records with
 * a negative count, and a malformed tail, are skipped with a warning: kurz
 * writes none, so the file was damaged. */
static int log_decode(const uint8_t *p, size_t bytes, struct kurz_click **out, size_t *n)
{
        const uint8_t *end = p + bytes;
        struct kurz_click *k = malloc((bytes / (1 + 1 + 4 + 8 + 8) + 1) * sizeof(*k));
        struct kurz_unfolded_row r;
        size_t bad = 0;

        *n = 0;
        *out = k;
        if (!k)
                return -ENOMEM;
        while (p && log_record(&p, end, &r)) {
                if (r.count < 0) {
                        bad++;
                        continue;
                }
                memcpy(k[*n].code, r.code, sizeof(r.code));
                k[*n].day = r.day;
                k[*n].count = r.count;
                k[*n].last_access = r.last_at;
                (*n)++;
        }
        if (bad || (p && p != end))
                kurz_warn("sqlite: clicks_log: skipped %zu invalid records%s", bad,
                          p && p != end ? " and a malformed tail" : "");
        return 0;
}

/* Reads what a crash left in clicks_log into the unfolded table, a batch at
 * a time, then folds it all. Writer connection, at open. */
static int replay_log(struct kurz_sqlite *s)
{
        struct conn *c = s->w;
        sqlite3_stmt *st = c->st[ST_LOG_NEXT];
        int rc;

        for (;;) {
                struct kurz_click *k;
                size_t n;
                int64_t seq;

                sqlite3_bind_int64(st, 1, s->log_seq);
                rc = sqlite3_step(st);
                if (rc != SQLITE_ROW)
                        break;
                seq = sqlite3_column_int64(st, 0);
                rc = log_decode(sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1), &k,
                                &n);
                sqlite3_reset(st);
                if (rc == 0)
                        rc = kurz_unfolded_reserve(s->unf, k, n);
                if (rc == -E2BIG) { /* fold the batches before this one */
                        rc = fold(s);
                        if (rc == 0)
                                rc = kurz_unfolded_reserve(s->unf, k, n);
                }
                for (size_t i = 0; rc == 0 && i < n; i++) {
                        struct kurz_unfolded_row r;

                        if (k[i].count == 0) { /* a tombstone: the link was deleted */
                                kurz_unfolded_remove(s->unf, k[i].code,
                                                     strnlen(k[i].code, sizeof(k[i].code)));
                                continue;
                        }
                        row_of(&k[i], &r);
                        kurz_unfolded_add(s->unf, &r);
                }
                free(k);
                if (rc < 0)
                        return rc;
                s->log_seq = seq;
                s->log_dirty = true;
                if (kurz_unfolded_rows(s->unf) >= FOLD_ROWS) {
                        rc = fold(s);
                        if (rc < 0)
                                return rc;
                }
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return db_err(c->db, rc, "read click log");
        return fold(s);
}

static int sq_remove(struct kurz_store *store, const char *code, size_t code_len)
{
        struct kurz_sqlite *s = to_sqlite(store);
        struct conn *c = s->w;
        char one[1][KURZ_CODE_MAX + 1] = {{0}};
        struct codes_arg arg = {one, 1};
        bool logged;
        int rc, changed;

        if (code_len == 0 || code_len > KURZ_CODE_MAX)
                return KURZ_E_NOTFOUND;
        memcpy(one[0], code, code_len);
        rc = run(c, ST_BEGIN_IMMEDIATE);
        if (rc != SQLITE_OK)
                return db_err(c->db, rc, "begin remove");
        bind_code(s, c->st[ST_DELETE], code, code_len);
        rc = run(c, ST_DELETE);
        if (rc != SQLITE_OK)
                goto out_rollback;
        changed = sqlite3_changes(c->db);
        sqlite3_bind_text(c->st[ST_DELETE_DAILY], 1, code, (int)code_len, SQLITE_STATIC);
        rc = run(c, ST_DELETE_DAILY);
        if (rc != SQLITE_OK)
                goto out_rollback;
        /* Its logged clicks go with it: none may outlive it, nor count for a
         * link of the same code created later. */
        rc = drop_logged(s, one, 1, &logged);
        if (rc != SQLITE_OK)
                goto out_rollback;
        rc = totals_add(c, -(int64_t)(changed > 0), 0);
        if (rc != SQLITE_OK)
                goto out_rollback;
        rc = logged ? commit_locked(s, forget_codes, &arg) : run(c, ST_COMMIT);
        if (rc != SQLITE_OK)
                goto out_rollback;
        if (changed)
                note_gone(s, code, code_len);
        return changed ? 0 : KURZ_E_NOTFOUND;

out_rollback:
        rc = db_err(c->db, rc, "remove");
        rollback(c);
        return rc;
}

/* Appends the codes a SELECT of cleanup returns (at most limit) to *arr,
 * growing it. Returns SQLITE_OK, or the SQLite error, or -ENOMEM. */
static int collect_codes(struct conn *c, enum stmt_id id, int64_t t, size_t limit,
                         char (**arr)[KURZ_CODE_MAX + 1], size_t *n, size_t *cap)
{
        sqlite3_stmt *st = c->st[id];
        int rc;

        sqlite3_bind_int64(st, 1, t);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                int len = sqlite3_column_bytes(st, 0);

                if (len <= 0 || len > KURZ_CODE_MAX)
                        continue;
                if (*n == *cap) {
                        size_t ncap = *cap ? *cap * 2 : 64;
                        char(*p)[KURZ_CODE_MAX + 1] = realloc(*arr, ncap * sizeof(**arr));

                        if (!p) {
                                sqlite3_reset(st);
                                return -ENOMEM;
                        }
                        *arr = p;
                        *cap = ncap;
                }
                memcpy((*arr)[*n], sqlite3_column_text(st, 0), (size_t)len);
                (*arr)[*n][len] = '\0';
                (*n)++;
        }
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Deletes codes[from..to) and their daily click rows. */
static int delete_codes(struct kurz_sqlite *s, char (*codes)[KURZ_CODE_MAX + 1], size_t from,
                        size_t to)
{
        struct conn *c = s->w;
        int rc;

        for (size_t i = from; i < to; i++) {
                bind_code(s, c->st[ST_DELETE], codes[i], strlen(codes[i]));
                rc = run(c, ST_DELETE);
                if (rc != SQLITE_OK)
                        return rc;
                sqlite3_bind_text(c->st[ST_DELETE_DAILY], 1, codes[i], -1, SQLITE_STATIC);
                rc = run(c, ST_DELETE_DAILY);
                if (rc != SQLITE_OK)
                        return rc;
        }
        return SQLITE_OK;
}

static int sq_cleanup(struct kurz_store *store, int64_t now, int64_t unused_before, size_t batch,
                      char (**codes)[KURZ_CODE_MAX + 1])
{
        struct kurz_sqlite *s = to_sqlite(store);
        struct conn *c = s->w;
        char(*arr)[KURZ_CODE_MAX + 1] = NULL;
        size_t n = 0, cap = 0, expired;
        struct codes_arg arg;
        bool logged = false;
        int rc;

        *codes = NULL;
        if (batch == 0)
                return 0;
        if (batch > CLEANUP_MAX)
                batch = CLEANUP_MAX;
        /* Unused links are judged by their last click: the log goes into
         * clicks_daily first. */
        if (unused_before > 0) {
                rc = fold(s);
                if (rc < 0)
                        return rc;
        }
        rc = run(c, ST_BEGIN_IMMEDIATE);
        if (rc != SQLITE_OK)
                return db_err(c->db, rc, "begin cleanup");
        rc = collect_codes(c, ST_EXPIRED, now, batch, &arr, &n, &cap);
        if (rc != SQLITE_OK)
                goto out_rollback;
        rc = delete_codes(s, arr, 0, n);
        if (rc != SQLITE_OK)
                goto out_rollback;
        expired = n;
        if (unused_before > 0 && n < batch) {
                rc = collect_codes(c, ST_UNUSED, unused_before, batch - n, &arr, &n, &cap);
                if (rc != SQLITE_OK)
                        goto out_rollback;
                rc = delete_codes(s, arr, expired, n);
                if (rc != SQLITE_OK)
                        goto out_rollback;
        }
        rc = totals_add(c, -(int64_t)n, 0);
        if (rc == SQLITE_OK)
                rc = drop_logged(s, arr, n, &logged);
        if (rc != SQLITE_OK)
                goto out_rollback;
        arg = (struct codes_arg){arr, n};
        rc = logged ? commit_locked(s, forget_codes, &arg) : run(c, ST_COMMIT);
        if (rc != SQLITE_OK)
                goto out_rollback;
        for (size_t i = 0; i < n; i++)
                note_gone(s, arr[i], strlen(arr[i]));
        if (n == 0) {
                free(arr);
                arr = NULL;
        }
        *codes = arr;
        return (int)n;

out_rollback:
        rc = rc == -ENOMEM ? rc : db_err(c->db, rc, "cleanup");
        rollback(c);
        free(arr);
        return rc;
}

/* Works inside the open create_batch transaction (gen calls it there) and
 * on its own, where the single statement is its own durable transaction. */
static int sq_lease_counter(struct kurz_store *store, uint64_t n, uint64_t *start)
{
        struct kurz_sqlite *s = to_sqlite(store);
        struct conn *c = s->w;
        sqlite3_stmt *st = c->st[ST_LEASE];
        int64_t first = -1;
        int rc;

        if (n == 0 || n > LEASE_MAX)
                return -EINVAL;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)n);
        /* Step to SQLITE_DONE: in autocommit mode the commit happens there. */
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (sqlite3_column_type(st, 0) == SQLITE_INTEGER)
                        first = sqlite3_column_int64(st, 0);
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return db_err(c->db, rc, "lease counter");
        if (first < 0 || (uint64_t)first > (uint64_t)INT64_MAX - n) {
                kurz_error("sqlite: the code counter is out of range");
                return -ERANGE;
        }
        *start = (uint64_t)first;
        if ((uint64_t)first + n > s->lease_end)
                s->lease_end = (uint64_t)first + n;
        if (!sqlite3_get_autocommit(c->db))
                s->lease_in_tx = true; /* undone if the transaction fails */
        return 0;
}

static int sq_permutation_key(struct kurz_store *store, uint8_t key[16])
{
        /* Loaded (or created) by open; immutable afterwards. */
        memcpy(key, to_sqlite(store)->key, 16);
        return 0;
}

static int sq_key_add(struct kurz_store *store, const char *hash_hex, const char *name)
{
        struct kurz_sqlite *s = to_sqlite(store);
        struct conn *c = s->w;
        sqlite3_stmt *st = c->st[ST_KEY_ADD];
        int rc;

        if (!hash_hex || strlen(hash_hex) != 64)
                return -EINVAL;
        sqlite3_bind_text(st, 1, hash_hex, 64, SQLITE_STATIC);
        if (name)
                sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        else
                sqlite3_bind_null(st, 2);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
        rc = run(c, ST_KEY_ADD);
        return rc == SQLITE_OK ? 0 : db_err(c->db, rc, "add api key");
}

static int sq_key_check(struct kurz_store *store, const char *hash_hex)
{
        struct kurz_sqlite *s = to_sqlite(store);
        struct conn *c;
        sqlite3_stmt *st;
        size_t len;
        int rc;

        len = hash_hex ? strnlen(hash_hex, 65) : 0;
        if (len != 64)
                return KURZ_E_NOTFOUND;
        rc = reader_get(s, &c);
        if (rc < 0)
                return rc;
        st = c->st[ST_KEY_CHECK];
        sqlite3_bind_text(st, 1, hash_hex, 64, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                rc = 0;
        else if (rc == SQLITE_DONE)
                rc = KURZ_E_NOTFOUND;
        else
                rc = db_err(c->db, rc, "check api key");
        sqlite3_reset(st);
        reader_put(s, c);
        return rc;
}

static int sq_list(struct kurz_store *store, const char *after, size_t limit,
                   struct kurz_link **out)
{
        struct kurz_sqlite *s = to_sqlite(store);
        struct kurz_link *links;
        struct conn *c;
        sqlite3_stmt *st;
        size_t n = 0;
        int rc;

        *out = NULL;
        if (limit == 0)
                return 0;
        if (limit > LIST_MAX)
                limit = LIST_MAX;
        links = calloc(limit, sizeof(*links));
        if (!links)
                return -ENOMEM;
        rc = reader_get(s, &c);
        if (rc < 0)
                goto out_free_links;
        st = c->st[ST_LIST];
        sqlite3_bind_text(st, 1, after ? after : "", -1, SQLITE_STATIC);
        pthread_rwlock_rdlock(&s->ulock);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
        while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct kurz_link *l = &links[n];
                int clen = sqlite3_column_bytes(st, 0);
                size_t ulen;

                if (clen <= 0 || clen > KURZ_CODE_MAX)
                        continue;
                memcpy(l->code, sqlite3_column_text(st, 0), (size_t)clen);
                l->code[clen] = '\0';
                ulen = (size_t)sqlite3_column_bytes(st, 1);
                l->url = malloc(ulen + 1);
                if (!l->url) {
                        rc = -ENOMEM;
                        break;
                }
                if (ulen)
                        memcpy(l->url, sqlite3_column_text(st, 1), ulen);
                l->url[ulen] = '\0';
                l->url_len = ulen;
                l->created_at = sqlite3_column_int64(st, 2);
                l->expires_at = sqlite3_column_int64(st, 3);
                add_unfolded(s, l->code, (size_t)clen, sqlite3_column_int64(st, 4),
                             sqlite3_column_int64(st, 5), l);
                n++;
        }
        pthread_rwlock_unlock(&s->ulock);
        if (rc == SQLITE_DONE || rc == SQLITE_ROW)
                rc = 0;
        else if (rc != -ENOMEM)
                rc = db_err(c->db, rc, "list");
        sqlite3_reset(st);
        reader_put(s, c);
        if (rc < 0)
                goto out_free_links;
        if (n == 0) {
                free(links);
                return 0;
        }
        *out = links;
        return (int)n;

out_free_links:
        kurz_store_links_free(links, n);
        return rc;
}

static int sq_count(struct kurz_store *store, int64_t now, int64_t *total, int64_t *active)
{
        struct kurz_sqlite *s = to_sqlite(store);
        struct conn *c;
        int64_t all = 0, expired = 0;
        int rc;

        rc = reader_get(s, &c);
        if (rc < 0)
                return rc;
        /* One read transaction: both counts see the same snapshot. Each is
         * answered from an index (url_hash, and the partial expires_at). */
        rc = run(c, ST_BEGIN);
        if (rc != SQLITE_OK) {
                rc = db_err(c->db, rc, "count");
                goto out_put;
        }
        rc = query_int64(c, ST_COUNT_TOTAL, &all, "count links");
        if (rc == 0) {
                sqlite3_bind_int64(c->st[ST_COUNT_EXPIRED], 1, now);
                rc = query_int64(c, ST_COUNT_EXPIRED, &expired, "count expired links");
        }
        run(c, ST_COMMIT);
        if (rc == 0) {
                *total = all;
                *active = all - expired;
        }
out_put:
        reader_put(s, c);
        return rc;
}

/* Reads the link's totals and its last STATS_DAYS days of rollup inside the
 * open read transaction of c. */
static int link_stats_read(struct kurz_sqlite *s, struct conn *c, const char *code, size_t code_len,
                           int32_t today, struct kurz_link_stats *out)
{
        sqlite3_stmt *st = c->st[ST_STATS_LINK];
        int rc;

        bind_code(s, st, code, code_len);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                out->total_clicks = sqlite3_column_int64(st, 0);
                out->first_click = sqlite3_column_int64(st, 1);
                out->last_click = sqlite3_column_int64(st, 2);
                rc = 0;
        } else {
                rc = rc == SQLITE_DONE ? KURZ_E_NOTFOUND : db_err(c->db, rc, "link stats");
        }
        sqlite3_reset(st);
        if (rc < 0)
                return rc;
        out->timeline = calloc(STATS_DAYS, sizeof(*out->timeline));
        if (!out->timeline)
                return -ENOMEM;
        st = c->st[ST_STATS_DAYS];
        sqlite3_bind_text(st, 1, code, (int)code_len, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, today - STATS_DAYS);
        sqlite3_bind_int(st, 3, today);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && out->ndays < STATS_DAYS) {
                int32_t d = sqlite3_column_int(st, 0);
                int64_t n = sqlite3_column_int64(st, 1);

                if (n <= 0)
                        continue;
                out->timeline[out->ndays++] = (struct kurz_day_clicks){d, n};
                out->clicks_month += n;
                if (d > today - 7)
                        out->clicks_week += n;
                if (d == today)
                        out->clicks_today += n;
        }
        rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_err(c->db, rc, "link timeline");
        sqlite3_reset(st);
        return rc;
}

/* Adds the logged clicks of code to what link_stats_read found (timeline:
 * STATS_DAYS entries, oldest first). Under ulock (read). */
static void link_stats_unfolded(struct kurz_sqlite *s, const char *code, size_t len, int32_t today,
                                struct kurz_link_stats *out)
{
        struct kurz_unfolded_sum u;

        kurz_unfolded_sum(s->unf, code, len, &u);
        if (u.total == 0)
                return;
        if (out->total_clicks == 0 || u.first_at < out->first_click)
                out->first_click = u.first_at;
        if (u.last_at > out->last_click)
                out->last_click = u.last_at;
        out->total_clicks += u.total;
        for (size_t i = 0; i < u.ndays; i++) {
                int32_t d = u.days[i].day;
                int64_t n = u.days[i].clicks;
                size_t j = 0;

                if (d <= today - STATS_DAYS || d > today)
                        continue;
                out->clicks_month += n;
                if (d > today - 7)
                        out->clicks_week += n;
                if (d == today)
                        out->clicks_today += n;
                while (j < out->ndays && out->timeline[j].day < d)
                        j++;
                if (j < out->ndays && out->timeline[j].day == d) {
                        out->timeline[j].clicks += n;
                } else if (out->ndays < STATS_DAYS) {
                        memmove(&out->timeline[j + 1], &out->timeline[j],
                                (out->ndays - j) * sizeof(*out->timeline));
                        out->timeline[j] = (struct kurz_day_clicks){d, n};
                        out->ndays++;
                }
        }
}

static int sq_stats_link(struct kurz_store *store, const char *code, size_t code_len, int32_t today,
                         struct kurz_link_stats *out)
{
        struct kurz_sqlite *s = to_sqlite(store);
        struct conn *c;
        int rc;

        memset(out, 0, sizeof(*out));
        if (code_len == 0 || code_len > KURZ_CODE_MAX)
                return KURZ_E_NOTFOUND;
        rc = reader_get(s, &c);
        if (rc < 0)
                return rc;
        /* One snapshot: the totals and the rollup agree, and with the
         * logged clicks (a fold commits under the write lock). */
        pthread_rwlock_rdlock(&s->ulock);
        rc = run(c, ST_BEGIN);
        if (rc != SQLITE_OK) {
                pthread_rwlock_unlock(&s->ulock);
                rc = db_err(c->db, rc, "link stats");
                goto out_put;
        }
        rc = link_stats_read(s, c, code, code_len, today, out);
        if (rc == 0)
                link_stats_unfolded(s, code, code_len, today, out);
        run(c, ST_COMMIT);
        pthread_rwlock_unlock(&s->ulock);
out_put:
        reader_put(s, c);
        if (rc < 0) {
                free(out->timeline);
                memset(out, 0, sizeof(*out));
        }
        return rc;
}

/* Totals from platform_totals and today's row of platform_daily; the
 * expired links still waiting for cleanup are counted through the partial
 * expires_at index, so the cost is bounded by what one cleanup interval
 * lets accumulate, not by the number of links. */
static int sq_stats_platform(struct kurz_store *store, int64_t now, int32_t today,
                             struct kurz_platform_stats *out)
{
        struct kurz_sqlite *s = to_sqlite(store);
        sqlite3_stmt *st;
        struct conn *c;
        int64_t expired = 0;
        int rc;

        memset(out, 0, sizeof(*out));
        rc = reader_get(s, &c);
        if (rc < 0)
                return rc;
        pthread_rwlock_rdlock(&s->ulock);
        rc = run(c, ST_BEGIN);
        if (rc != SQLITE_OK) {
                pthread_rwlock_unlock(&s->ulock);
                rc = db_err(c->db, rc, "platform stats");
                goto out_put;
        }
        st = c->st[ST_PLATFORM];
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                out->total_urls = sqlite3_column_int64(st, 0);
                out->total_clicks = sqlite3_column_int64(st, 1);
                rc = 0;
        } else {
                rc = db_err(c->db, rc, "platform totals");
        }
        sqlite3_reset(st);
        if (rc == 0) {
                sqlite3_bind_int(c->st[ST_PLATFORM_DAY], 1, today);
                rc = query_int64(c, ST_PLATFORM_DAY, &out->clicks_today, "platform today");
        }
        if (rc == 0) {
                sqlite3_bind_int64(c->st[ST_COUNT_EXPIRED], 1, now);
                rc = query_int64(c, ST_COUNT_EXPIRED, &expired, "count expired links");
        }
        run(c, ST_COMMIT);
        out->total_clicks += kurz_unfolded_total(s->unf);
        out->clicks_today += kurz_unfolded_day_total(s->unf, today);
        pthread_rwlock_unlock(&s->ulock);
        out->active_urls = out->total_urls - expired;
        if (out->active_urls < 0)
                out->active_urls = 0;
out_put:
        reader_put(s, c);
        return rc;
}

static bool sq_healthy(struct kurz_store *store)
{
        struct kurz_sqlite *s = to_sqlite(store);
        struct conn *c;
        int rc;

        if (reader_get(s, &c) < 0)
                return false;
        rc = run(c, ST_PING);
        reader_put(s, c);
        return rc == SQLITE_OK;
}

/* Every reader must have been returned (no call in flight). */
static void sq_close(struct kurz_store *store)
{
        struct kurz_sqlite *s = to_sqlite(store);
        struct conn *c, *next;

        if (!store)
                return;
        if (fold(s) < 0) /* a clean stop leaves no log; else the next open folds it */
                kurz_warn("sqlite: logged clicks stay in clicks_log until the next start");
        kurz_unfolded_free(s->unf);
        kurz_unfolded_free(s->gone[0]);
        kurz_unfolded_free(s->gone[1]);
        kurz_ifold_free(s->ifold);
        pthread_rwlock_destroy(&s->ulock);
        for (c = s->all_readers; c; c = next) {
                next = c->next_all;
                conn_close(c);
        }
        conn_close(s->w);
        if (s->lock_fd >= 0)
                close(s->lock_fd); /* releases the flock */
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s->db_path);
        free(s->dir);
        free(s);
}

static int sq_metrics(struct kurz_store *store, struct kurz_buf *b)
{
        struct kurz_sqlite *s = to_sqlite(store);
        size_t rows = atomic_load(&s->unfolded_rows);
        uint64_t folds = atomic_load(&s->folds);
        size_t unindexed = kurz_ifold_pending(s->ifold);
        uint64_t index_folds = kurz_ifold_folds(s->ifold);
        int rc;

        /* No lock: the HTTP loop thread serves /metrics. */
        rc = kurz_buf_printf(b,
                             "# HELP kurz_sqlite_clicks_unfolded (link, day) click counts logged"
                             " but not yet folded into the daily rollup.\n"
                             "# TYPE kurz_sqlite_clicks_unfolded gauge\n"
                             "kurz_sqlite_clicks_unfolded %zu\n"
                             "# HELP kurz_sqlite_click_folds_total Folds of the click log into"
                             " the daily rollup.\n"
                             "# TYPE kurz_sqlite_click_folds_total counter\n"
                             "kurz_sqlite_click_folds_total %llu\n"
                             "# HELP kurz_sqlite_links_unindexed Links created since the last"
                             " index fold (not yet in link_codes and link_urls).\n"
                             "# TYPE kurz_sqlite_links_unindexed gauge\n"
                             "kurz_sqlite_links_unindexed %zu\n"
                             "# HELP kurz_sqlite_index_folds_total Folds of new links into the"
                             " code and URL indexes.\n"
                             "# TYPE kurz_sqlite_index_folds_total counter\n"
                             "kurz_sqlite_index_folds_total %llu\n",
                             rows, (unsigned long long)folds, unindexed,
                             (unsigned long long)index_folds);
        return rc ? -ENOMEM : 0;
}

static const struct kurz_store_ops sqlite_ops = {
    .lookup = sq_lookup,
    .lookup_target = sq_lookup_target,
    .create_batch = sq_create_batch,
    .remove = sq_remove,
    .add_clicks = sq_add_clicks,
    .cleanup = sq_cleanup,
    .lease_counter = sq_lease_counter,
    .permutation_key = sq_permutation_key,
    .key_add = sq_key_add,
    .key_check = sq_key_check,
    .list = sq_list,
    .count = sq_count,
    .healthy = sq_healthy,
    .close = sq_close,
    .stats_link = sq_stats_link,
    .stats_platform = sq_stats_platform,
    .metrics = sq_metrics,
};

static char *db_path_of(const char *data_dir)
{
        char *p;

        if (asprintf(&p, "%s/kurz.db", data_dir) < 0)
                return NULL;
        return p;
}

int kurz_sqlite_migrate(const char *data_dir, int *version)
{
        sqlite3 *db;
        char *path;
        int rc;

        if (!data_dir || !version)
                return -EINVAL;
        rc = make_dir(data_dir);
        if (rc < 0)
                return rc;
        path = db_path_of(data_dir);
        if (!path)
                return -ENOMEM;
        rc = db_open(path, DEFAULT_BUSY_MS, false, &db);
        if (rc < 0)
                goto out_free_path;
        rc = migrate_db(db, path, false, version);
        sqlite3_close(db);
out_free_path:
        free(path);
        return rc;
}

/* Process-wide settings, before SQLite's first use. Memory statistics off:
 * with them every allocation of every connection takes one global mutex (a
 * click flush's UPDATE 3.5 -> 3.1 us a row, and readers on the pool threads
 * stop contending on it). SQLITE_MISUSE when SQLite was initialised already
 * (then they stay as they were: harmless). */
static void sqlite_setup(void)
{
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int kurz_sqlite_open(const struct kurz_sqlite_config *cfg, struct kurz_store **out)
{
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        struct kurz_sqlite *s;
        sqlite3 *db;
        int version, rc;

        *out = NULL;
        if (!cfg || !cfg->data_dir)
                return -EINVAL;
        if (!sqlite3_threadsafe()) {
                kurz_error("sqlite: this libsqlite3 is built without thread support");
                return -ENOTSUP;
        }
        pthread_once(&once, sqlite_setup);
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->lock_fd = -1;
        s->max_readers = cfg->readers ? cfg->readers : DEFAULT_READERS;
        s->busy_ms = cfg->busy_timeout_ms ? cfg->busy_timeout_ms : DEFAULT_BUSY_MS;
        s->dir = strdup(cfg->data_dir);
        s->db_path = db_path_of(cfg->data_dir);
        if (!s->dir || !s->db_path) {
                rc = -ENOMEM;
                goto out_free_s;
        }
        rc = make_dir(s->dir);
        if (rc < 0)
                goto out_free_s;
        if (!cfg->shared) {
                rc = lock_dir(s->dir, &s->lock_fd);
                if (rc < 0)
                        goto out_free_s;
        }
        /* open = lock + migrate + prepare (the statements need the tables). */
        rc = db_open(s->db_path, s->busy_ms, false, &db);
        if (rc < 0)
                goto out_unlock;
        rc = migrate_db(db, s->db_path, cfg->shared, &version);
        if (rc == 0)
                rc = load_key(db, s->key);
        if (rc < 0) {
                sqlite3_close(db);
                goto out_unlock;
        }
        rc = conn_prepare(db, &s->w);
        if (rc < 0)
                goto out_unlock;
        s->shared = cfg->shared;
        s->fold_ms = cfg->fold_ms ? (int64_t)cfg->fold_ms : FOLD_MS;
        kurz_perm_init(&s->perm, s->key);
        s->unf = kurz_unfolded_new();
        s->gone[0] = kurz_unfolded_new();
        s->gone[1] = kurz_unfolded_new();
        if (!s->unf || !s->gone[0] || !s->gone[1]) {
                rc = -ENOMEM;
                goto out_free_unf;
        }
        s->gone_turned_ms = mono_ms();
        {
                pthread_rwlockattr_t a;

                /* A flush or fold must not starve behind a stream of stats
                 * reads. */
                pthread_rwlockattr_init(&a);
                pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
                pthread_rwlock_init(&s->ulock, &a);
                pthread_rwlockattr_destroy(&a);
        }
        /* A server folds what a crash left in the log; an admin command
         * beside a running server leaves it to that server. */
        rc = s->shared ? 0 : replay_log(s);
        if (rc < 0)
                kurz_error("sqlite: cannot fold the click log: %d", rc);
        else
                rc = kurz_ifold_open(s->w->db, s->fold_ms, !s->shared, &s->ifold);
        if (rc < 0) {
                pthread_rwlock_destroy(&s->ulock);
                goto out_free_unf;
        }
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv, NULL);
        s->store.ops = &sqlite_ops;
        s->store.name = "sqlite";
        *out = &s->store; /* ownership passes to the caller */
        return 0;

out_free_unf:
        kurz_ifold_free(s->ifold);
        kurz_unfolded_free(s->unf);
        kurz_unfolded_free(s->gone[0]);
        kurz_unfolded_free(s->gone[1]);
        conn_close(s->w);
out_unlock:
        if (s->lock_fd >= 0)
                close(s->lock_fd);
out_free_s:
        free(s->db_path);
        free(s->dir);
        free(s);
        return rc;
}
