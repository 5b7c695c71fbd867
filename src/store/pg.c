/* store/pg.c - the PostgreSQL store. Every shard is a primary (all writes)
 * plus streaming replicas (reads, round-robin over the healthy ones, with a
 * fallback to the primary on a miss for read-after-write). libpq is used
 * non-blocking with a deadline on every wait, so a dead or frozen node costs
 * a bounded time and then trips that node's circuit breaker. */
#include "store/pg.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "store/shards.h"
#include "util/buf.h"
#include "util/hash.h"
#include "util/log.h"

#define GEN_RETRIES     8            /* generated codes tried per item */
#define LIST_MAX        1000         /* rows one list call returns at most */
#define LEASE_MAX       (1ULL << 40) /* counter values one lease may reserve */
#define CLEANUP_MAX     100000       /* links one cleanup call deletes at most */
#define BREAKER_MS      1000         /* a failed node is not retried for this long */
#define READ_ATTEMPT_MS 1000         /* one read on one node */
#define WRITE_MS        1500         /* a create batch, a lease: 503 well within 2 s */
#define ADMIN_MS        5000         /* deletes, key and list operations */
#define BULK_MS         15000        /* click flushes, cleanup batches */
#define MIGRATE_MS      120000       /* migrations (may wait for a concurrent migrator) */
#define CHECK_MS        1000         /* one health probe */
#define TOMBSTONE_MS    30000        /* reads of a code deleted this recently go to the primary */
#define TOMBSTONES      4096         /* direct-mapped table of recent deletes */
#define MIGRATE_LOCK    "7022344151823930746" /* pg_advisory_lock key: "kurz-migrate" */
#define KEY_NAME        "permutation_key"
#define PARTITIONS      16

/* Every statement; prepared once per connection on first use. Each
 * parameter carries a cast so its type is fixed at prepare time. */
enum stmt_id {
        S_LOOKUP,
        S_KEY_CHECK,
        S_INSERT,
        S_DEDUPE,
        S_VERIFY,
        S_INDEX_ADD,
        S_INDEX_DEL,
        S_REMOVE,
        S_CLICKS,
        S_EXPIRED,
        S_UNUSED,
        S_LEASE,
        S_KEY_ADD,
        S_LIST,
        S_COUNT,
        S_PING,
        S_PRIMARY_LSN,
        S_REPLAY_LSN,
        S_STATS_LINK,
        S_PLATFORM,
        S_COUNT_IDS
};

/* The platform counters (schema 2) are spread over 64 rows per shard,
 * chosen by the server process of the connection, so writers of different
 * kurz processes rarely wait for one another's row lock; readers sum them. */
#define SLOT_SQL      "(pg_backend_pid() % 64)"
#define TOTALS_UPSERT "INSERT INTO platform_totals AS p(slot, links, clicks) "
#define TOTALS_CONFLICT                                                                            \
        " ON CONFLICT (slot) DO UPDATE SET links = p.links + EXCLUDED.links,"                      \
        " clicks = p.clicks + EXCLUDED.clicks"
#define STATS_DAYS 30 /* days of timeline a link's statistics report */

static const char *const stmt_sql[S_COUNT_IDS] = {
    [S_LOOKUP] = "SELECT url, created_at, expires_at, clicks, last_access FROM links"
                 " WHERE code = $1::text",
    [S_KEY_CHECK] = "SELECT 1 FROM api_keys WHERE hash = $1::text",
    /* One statement per shard and batch: the links, and in the same
     * transaction the dedupe entries whose URL hash this shard owns.
     * ON CONFLICT DO NOTHING RETURNING tells which rows went in, so a taken
     * alias does not abort the others. */
    [S_INSERT] =
        "WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[],"
        " $5::int8[], $6::bool[], $7::bool[], $8::bool[]) AS t(code, url, url_hash, created_at,"
        " expires_at, is_alias, dedupe, idx)),"
        " ins AS (INSERT INTO links(code, url, url_hash, created_at, expires_at, is_alias, dedupe)"
        " SELECT code, url, url_hash, created_at, expires_at, is_alias, dedupe FROM v"
        " ON CONFLICT (code) DO NOTHING RETURNING code),"
        " ix AS (INSERT INTO url_index(url_hash, code, url, created_at, expires_at)"
        " SELECT v.url_hash, v.code, v.url, v.created_at, v.expires_at FROM v"
        " JOIN ins ON ins.code = v.code WHERE v.idx ON CONFLICT DO NOTHING),"
        " tot AS (" TOTALS_UPSERT "SELECT " SLOT_SQL ", count(*), 0 FROM ins"
        " HAVING count(*) > 0" TOTALS_CONFLICT ")"
        " SELECT code FROM ins",
    /* here: the link the entry names exists on this shard. */
    [S_DEDUPE] = "SELECT i.url_hash, i.url, i.code, i.created_at, i.expires_at,"
                 " l.code IS NOT NULL FROM url_index i LEFT JOIN links l ON l.code = i.code"
                 " WHERE i.url_hash = ANY($1::int8[])",
    [S_VERIFY] = "SELECT code FROM links WHERE code = ANY($1::text[])",
    [S_INDEX_ADD] = "INSERT INTO url_index(url_hash, code, url, created_at, expires_at)"
                    " SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[],"
                    " $5::int8[]) ON CONFLICT DO NOTHING",
    [S_INDEX_DEL] = "DELETE FROM url_index u USING unnest($1::int8[], $2::text[]) AS t(h, c)"
                    " WHERE u.url_hash = t.h AND u.code = t.c",
    [S_REMOVE] = "WITH d AS (DELETE FROM links WHERE code = $1::text"
                 " RETURNING code, url_hash, dedupe),"
                 " c AS (DELETE FROM clicks_daily WHERE code IN (SELECT code FROM d)),"
                 " i AS (DELETE FROM url_index u USING d"
                 " WHERE u.url_hash = d.url_hash AND u.code = d.code),"
                 " tot AS (" TOTALS_UPSERT "SELECT " SLOT_SQL ", -count(*), 0 FROM d"
                 " HAVING count(*) > 0" TOTALS_CONFLICT ")"
                 " SELECT url_hash, dedupe FROM d",
    /* One statement per flush and shard: totals and last access of every
     * link, then the daily rollup upsert for the links that still exist. */
    [S_CLICKS] =
        "WITH v AS (SELECT * FROM unnest($1::text[], $2::int4[], $3::int8[], $4::int8[])"
        " AS t(code, day, n, last)),"
        " agg AS (SELECT code, sum(n)::int8 AS n, max(last) AS last, min(last) AS first"
        " FROM v GROUP BY code),"
        " up AS (UPDATE links l SET clicks = l.clicks + agg.n,"
        " last_access = greatest(l.last_access, agg.last),"
        " first_access = CASE WHEN l.first_access = 0 THEN agg.first"
        " ELSE least(l.first_access, agg.first) END FROM agg WHERE l.code = agg.code"
        " RETURNING l.code, agg.n),"
        " tot AS (" TOTALS_UPSERT "SELECT " SLOT_SQL ", 0, sum(up.n)::int8 FROM up"
        " HAVING count(*) > 0" TOTALS_CONFLICT "),"
        " pd AS (INSERT INTO platform_daily AS p(day, slot, clicks)"
        " SELECT v.day, " SLOT_SQL ", sum(v.n)::int8 FROM v JOIN up ON up.code = v.code"
        " GROUP BY v.day ON CONFLICT (day, slot) DO UPDATE SET clicks = p.clicks +"
        " EXCLUDED.clicks)"
        " INSERT INTO clicks_daily(code, day, clicks)"
        " SELECT v.code, v.day, sum(v.n)::int8 FROM v JOIN up ON up.code = v.code"
        " GROUP BY v.code, v.day"
        " ON CONFLICT (code, day) DO UPDATE SET clicks = clicks_daily.clicks + EXCLUDED.clicks",
    /* Batched deletes through the partial expiry index. */
    [S_EXPIRED] = "WITH d AS (DELETE FROM links WHERE code IN (SELECT code FROM links"
                  " WHERE expires_at > 0 AND expires_at <= $1::int8 LIMIT $2::int8)"
                  " RETURNING code, url_hash, dedupe),"
                  " c AS (DELETE FROM clicks_daily WHERE code IN (SELECT code FROM d)),"
                  " i AS (DELETE FROM url_index u USING d"
                  " WHERE u.url_hash = d.url_hash AND u.code = d.code),"
                  " tot AS (" TOTALS_UPSERT "SELECT " SLOT_SQL ", -count(*), 0 FROM d"
                  " HAVING count(*) > 0" TOTALS_CONFLICT ")"
                  " SELECT code, url_hash, dedupe FROM d",
    [S_UNUSED] = "WITH d AS (DELETE FROM links WHERE code IN (SELECT code FROM links"
                 " WHERE created_at < $1::int8 AND last_access < $1::int8 LIMIT $2::int8)"
                 " RETURNING code, url_hash, dedupe),"
                 " c AS (DELETE FROM clicks_daily WHERE code IN (SELECT code FROM d)),"
                 " i AS (DELETE FROM url_index u USING d"
                 " WHERE u.url_hash = d.url_hash AND u.code = d.code),"
                 " tot AS (" TOTALS_UPSERT "SELECT " SLOT_SQL ", -count(*), 0 FROM d"
                 " HAVING count(*) > 0" TOTALS_CONFLICT ")"
                 " SELECT code, url_hash, dedupe FROM d",
    /* The row lock serialises concurrent leases of every process; the
     * first lease inserts the row and returns 0. */
    [S_LEASE] = "INSERT INTO counters(name, next) VALUES('codes', $1::int8)"
                " ON CONFLICT (name) DO UPDATE SET next = counters.next + EXCLUDED.next"
                " RETURNING next - $1::int8",
    [S_KEY_ADD] = "INSERT INTO api_keys(hash, name, created_at) VALUES($1::text, $2::text,"
                  " $3::int8) ON CONFLICT (hash) DO UPDATE SET name = EXCLUDED.name",
    [S_LIST] = "SELECT code, url, created_at, expires_at, clicks, last_access FROM links"
               " WHERE code > $1::text ORDER BY code LIMIT $2::int8",
    [S_COUNT] = "SELECT count(*), count(*) FILTER (WHERE expires_at > 0 AND"
                " expires_at <= $1::int8) FROM links",
    [S_PING] = "SELECT 1",
    [S_PRIMARY_LSN] = "SELECT pg_current_wal_lsn()::text",
    [S_REPLAY_LSN] = "SELECT coalesce(pg_last_wal_replay_lsn(), '0/0'::pg_lsn)::text,"
                     " pg_is_in_recovery()",
    /* A link's totals and its rollup rows of days ($2, $3]; no row when
     * the link does not exist (a replica miss then asks the primary). */
    [S_STATS_LINK] = "SELECT l.clicks, l.first_access, l.last_access, d.day, d.clicks"
                     " FROM links l LEFT JOIN clicks_daily d ON d.code = l.code"
                     " AND d.day > $2::int4 AND d.day <= $3::int4"
                     " WHERE l.code = $1::text ORDER BY d.day",
    /* The expired links still waiting for cleanup come from the partial
     * expiry index: bounded by one cleanup interval's expiries. */
    [S_PLATFORM] = "SELECT (SELECT coalesce(sum(links), 0) FROM platform_totals),"
                   " (SELECT coalesce(sum(clicks), 0) FROM platform_totals),"
                   " (SELECT coalesce(sum(clicks), 0) FROM platform_daily WHERE day = $1::int4),"
                   " (SELECT count(*) FROM links WHERE expires_at > 0 AND"
                   " expires_at <= $2::int8)",
};

/* Migrations: migrations[i] takes a shard from version i to i + 1, in one
 * transaction with the bump of schema_version. Append only. */
static const char *const migrations[] = {
    /* 1: the initial schema. links is hash-partitioned on the code: the
     * primary key stays enforceable (it contains the partition key) and a
     * lookup by code touches one partition. Times are unix seconds. code
     * uses the "C" collation so ORDER BY code and code > $1 compare bytes,
     * like the SQLite store. */
    "CREATE TABLE meta(key text PRIMARY KEY, value bytea NOT NULL);"
    "CREATE TABLE counters(name text PRIMARY KEY, next bigint NOT NULL);"
    "CREATE TABLE links("
    " code text COLLATE \"C\" NOT NULL,"
    " url text NOT NULL,"
    " url_hash bigint NOT NULL,"
    " created_at bigint NOT NULL,"
    " expires_at bigint NOT NULL DEFAULT 0,"
    " clicks bigint NOT NULL DEFAULT 0,"
    " last_access bigint NOT NULL DEFAULT 0,"
    " is_alias boolean NOT NULL DEFAULT false,"
    " dedupe boolean NOT NULL DEFAULT false,"
    " PRIMARY KEY (code)"
    ") PARTITION BY HASH (code);"
    "DO $$ BEGIN FOR i IN 0..15 LOOP EXECUTE format("
    "'CREATE TABLE links_p%s PARTITION OF links FOR VALUES WITH (MODULUS 16, REMAINDER %s)',"
    " i, i); END LOOP; END $$;"
    "CREATE INDEX links_expires_at ON links(expires_at) WHERE expires_at > 0;"
    "CREATE TABLE url_index("
    " url_hash bigint NOT NULL,"
    " code text COLLATE \"C\" NOT NULL,"
    " url text NOT NULL,"
    " created_at bigint NOT NULL,"
    " expires_at bigint NOT NULL,"
    " PRIMARY KEY (url_hash, code));"
    "CREATE TABLE clicks_daily("
    " code text COLLATE \"C\" NOT NULL,"
    " day integer NOT NULL,"
    " clicks bigint NOT NULL DEFAULT 0,"
    " PRIMARY KEY (code, day));"
    "CREATE TABLE api_keys(hash text PRIMARY KEY, name text, created_at bigint);",
    /* 2: statistics. first_access of each link (a fast default: no table
     * rewrite); platform totals and the per-day platform click rollup,
     * spread over slots (SLOT_SQL), maintained by the statements that
     * change them and initialised once from the existing data. */
    "ALTER TABLE links ADD COLUMN first_access bigint NOT NULL DEFAULT 0;"
    "UPDATE links l SET first_access = greatest(l.created_at, d.m * 86400::int8)"
    " FROM (SELECT code, min(day) AS m FROM clicks_daily GROUP BY code) d"
    " WHERE d.code = l.code;"
    "CREATE TABLE platform_totals(slot integer PRIMARY KEY, links bigint NOT NULL,"
    " clicks bigint NOT NULL);"
    "INSERT INTO platform_totals(slot, links, clicks)"
    " SELECT 0, count(*), coalesce(sum(clicks), 0) FROM links;"
    "CREATE TABLE platform_daily(day integer NOT NULL, slot integer NOT NULL,"
    " clicks bigint NOT NULL, PRIMARY KEY (day, slot));"
    "INSERT INTO platform_daily(day, slot, clicks)"
    " SELECT day, 0, sum(clicks) FROM clicks_daily GROUP BY day;",
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == KURZ_PG_SCHEMA_VERSION,
               "one migration step per schema version");

enum read_class { RC_REPLICA_HIT, RC_PRIMARY_FALLBACK, RC_PRIMARY_DIRECT, RC_UNAVAILABLE, RC_N };
static const char *const read_class_name[RC_N] = {"replica_hit", "primary_fallback",
                                                  "primary_direct", "unavailable"};

struct node;

/* One connection. Used by one thread at a time (a borrower or the health
 * thread). */
struct pconn {
        PGconn *pc;
        struct node *node;
        uint32_t prepared; /* bit per stmt_id */
        unsigned gen;      /* node->gen when opened: older ones are dropped */
        bool bad;          /* broken or timed out: never reuse */
        int64_t born_ms, used_ms;
        struct pconn *next;
};

struct kurz_pg;

/* A database server: a shard's primary or one of its replicas. */
struct node {
        struct kurz_pg *pg;
        char *url; /* borrowed from the shard map */
        char shard[64];
        char role[24]; /* "primary", "replica1", ... */
        bool is_primary;

        pthread_mutex_t mu; /* guards the pool and the breaker */
        pthread_cond_t cv;  /* a connection was returned */
        struct pconn *idle;
        unsigned n_idle, n_total, n_in_use, n_waiting;
        unsigned gen;
        int64_t down_until_ms; /* circuit breaker: fail fast before this */

        atomic_bool up;         /* replica: in rotation; primary: last seen up */
        atomic_llong lag_bytes; /* replica replay lag, -1 unknown */
        atomic_ullong waits, wait_timeouts, connects, connect_failures, failures, reads;
        struct pconn *hc; /* the health thread's own connection */
};

struct shard {
        struct node primary;
        struct node *replicas;
        size_t n_replicas;
        atomic_uint rr;
};

struct tombstone {
        char code[KURZ_CODE_MAX + 1];
        int64_t at_ms;
};

struct kurz_pg {
        struct kurz_store store; /* first: a kurz_store * is a kurz_pg * */
        struct kurz_shards *map;
        struct shard *shards;
        size_t n_shards;
        unsigned pool_max, min_idle;
        int64_t connect_timeout_ms, idle_timeout_ms, max_lifetime_ms, check_ms;
        int64_t max_lag;
        uint8_t key[16];
        atomic_ullong read_class[RC_N];
        atomic_ullong dedupe_skipped;

        pthread_mutex_t tomb_mu;
        atomic_llong last_delete_ms;
        struct tombstone *tombs; /* TOMBSTONES entries */

        bool background;
        pthread_t thread;
        pthread_mutex_t stop_mu;
        pthread_cond_t stop_cv;
        bool stopping;
};

static struct kurz_pg *to_pg(struct kurz_store *s)
{
        return (struct kurz_pg *)s;
}

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t min64(int64_t a, int64_t b)
{
        return a < b ? a : b;
}

/* --- one connection, non-blocking with deadlines --- */

/* Waits for fd to become ready for events until deadline. Returns 0, or
 * -ETIMEDOUT, or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
        struct pollfd p = {.fd = fd, .events = events};
        int64_t left;
        int rc;

        for (;;) {
                left = deadline - now_ms();
                if (left <= 0)
                        return -ETIMEDOUT;
                rc = poll(&p, 1, (int)min64(left, 60000));
                if (rc > 0)
                        return 0;
                if (rc < 0 && errno != EINTR)
                        return -errno;
        }
}

/* NOTICEs ("relation already exists, skipping") are not for the log. */
static void ignore_notice(void *arg, const char *msg)
{
        (void)arg;
        (void)msg;
}

/* The session settings kurz adds to the URL's own "options".
 * - enable_seqscan off: every kurz statement is an index lookup by design,
 *   but a batch's "url_hash = ANY(256 hashes)" on a table without column
 *   statistics (a growing table before autovacuum's next ANALYZE) is
 *   estimated at 256 x 0.5 % = every row, and planned as a sequential scan
 *   of the whole table per batch (measured: creates/s falling from 8,800 to
 *   3,200 as url_index grew to 180,000 rows).
 * - jit off: kurz's statements are short, and a JIT compilation (triggered
 *   by the cost estimate of a batch on a large table) costs tens of
 *   milliseconds each time (measured: LLVM code generation in every batch).
 * Returns them followed by the URL's own options (which win where they
 * overlap), malloc'ed, or NULL when out of memory. */
static char *session_options(const char *url)
{
        static const char ours[] = "-c enable_seqscan=off -c jit=off";
        PQconninfoOption *opts = PQconninfoParse(url, NULL);
        const char *mine = "";
        char *out;
        size_t n;

        for (PQconninfoOption *o = opts; o && o->keyword; o++)
                if (strcmp(o->keyword, "options") == 0 && o->val)
                        mine = o->val;
        n = sizeof(ours) + 1 + strlen(mine);
        out = malloc(n);
        if (out)
                snprintf(out, n, "%s%s%s", ours, *mine ? " " : "", mine);
        PQconninfoFree(opts);
        return out;
}

/* Opens a connection to url, giving up at deadline. The URL's own settings
 * are kept; connect_timeout, application_name and session_options are set
 * on top. */
static PGconn *pq_connect(const char *url, int64_t deadline, char *why, size_t whycap)
{
        static const char *const kw[] = {"dbname", "connect_timeout", "application_name", "options",
                                         NULL};
        char *options = session_options(url);
        const char *const vals[] = {url, "2", "kurz", options, NULL};
        PostgresPollingStatusType st = PGRES_POLLING_WRITING;
        PGconn *c;

        why[0] = '\0';
        if (!options) {
                snprintf(why, whycap, "out of memory");
                return NULL;
        }
        c = PQconnectStartParams(kw, vals, 1); /* copies the values */
        free(options);
        if (!c) {
                snprintf(why, whycap, "out of memory");
                return NULL;
        }
        if (PQstatus(c) == CONNECTION_BAD)
                goto out_fail;
        for (;;) {
                if (st == PGRES_POLLING_OK)
                        break;
                if (st == PGRES_POLLING_FAILED)
                        goto out_fail;
                if (PQsocket(c) < 0 ||
                    wait_fd(PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline) <
                        0) {
                        snprintf(why, whycap, "connection timed out");
                        PQfinish(c);
                        return NULL;
                }
                st = PQconnectPoll(c);
        }
        if (PQsetnonblocking(c, 1) != 0)
                goto out_fail;
        PQsetNoticeProcessor(c, ignore_notice, NULL);
        return c;

out_fail:
        if (!why[0])
                snprintf(why, whycap, "%s", PQerrorMessage(c));
        /* libpq messages end with a newline. */
        for (size_t n = strlen(why); n && (why[n - 1] == '\n' || why[n - 1] == '\r'); n--)
                why[n - 1] = '\0';
        PQfinish(c);
        return NULL;
}

/* SQLSTATEs after which the connection or the server is unusable. */
static bool sqlstate_fatal(const char *st)
{
        if (!st)
                return true;
        return strncmp(st, "08", 2) == 0 || strncmp(st, "57", 2) == 0 ||
               strcmp(st, "25006") == 0 /* read-only: a "primary" in recovery */;
}

/* Flushes the send buffer and waits for the results of one query until
 * deadline. Returns 0 and *out (caller PQclears) for a successful result;
 * -EAGAIN for a deadlock or serialisation failure; KURZ_E_UNAVAILABLE for
 * anything else (c->bad set when the connection may not be reused). */
static int conn_wait(struct pconn *c, int64_t deadline, PGresult **out, const char *what)
{
        PGresult *res = NULL, *r;
        int rc, f;

        *out = NULL;
        while ((f = PQflush(c->pc)) == 1) {
                rc = wait_fd(PQsocket(c->pc), POLLOUT | POLLIN, deadline);
                if (rc < 0)
                        goto out_timeout;
                if (!PQconsumeInput(c->pc))
                        goto out_broken;
        }
        if (f < 0)
                goto out_broken;
        for (;;) {
                while (PQisBusy(c->pc)) {
                        rc = wait_fd(PQsocket(c->pc), POLLIN, deadline);
                        if (rc < 0)
                                goto out_timeout;
                        if (!PQconsumeInput(c->pc))
                                goto out_broken;
                }
                r = PQgetResult(c->pc);
                if (!r)
                        break;
                /* Keep the first error, else the last result. */
                if (res && PQresultStatus(res) != PGRES_TUPLES_OK &&
                    PQresultStatus(res) != PGRES_COMMAND_OK) {
                        PQclear(r);
                        continue;
                }
                PQclear(res);
                res = r;
        }
        if (PQstatus(c->pc) == CONNECTION_BAD)
                goto out_broken;
        if (!res) {
                kurz_error("pg %s/%s: %s: no result", c->node->shard, c->node->role, what);
                c->bad = true;
                return KURZ_E_UNAVAILABLE;
        }
        if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK) {
                *out = res;
                return 0;
        }
        {
                const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
                char msg[256];

                snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
                for (size_t n = strlen(msg); n && msg[n - 1] == '\n'; n--)
                        msg[n - 1] = '\0';
                if (st && (strcmp(st, "40P01") == 0 || strcmp(st, "40001") == 0)) {
                        kurz_warn("pg %s/%s: %s: %s (will retry)", c->node->shard, c->node->role,
                                  what, msg);
                        PQclear(res);
                        return -EAGAIN;
                }
                kurz_error("pg %s/%s: %s: %s (SQLSTATE %s)", c->node->shard, c->node->role, what,
                           msg, st ? st : "?");
                if (sqlstate_fatal(st))
                        c->bad = true;
                PQclear(res);
                return KURZ_E_UNAVAILABLE;
        }

out_timeout:
        kurz_error("pg %s/%s: %s: no answer in time", c->node->shard, c->node->role, what);
        PQclear(res);
        c->bad = true;
        return KURZ_E_UNAVAILABLE;
out_broken : {
        char msg[256];

        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c->pc));
        for (size_t n = strlen(msg); n && msg[n - 1] == '\n'; n--)
                msg[n - 1] = '\0';
        kurz_error("pg %s/%s: %s: %s", c->node->shard, c->node->role, what, msg);
}
        PQclear(res);
        c->bad = true;
        return KURZ_E_UNAVAILABLE;
}

/* Prepares statement id on c unless done before. */
static int conn_prepare(struct pconn *c, enum stmt_id id, int64_t deadline)
{
        char name[16];
        PGresult *res;
        int rc;

        if (c->prepared & (1u << id))
                return 0;
        snprintf(name, sizeof(name), "k%d", (int)id);
        if (!PQsendPrepare(c->pc, name, stmt_sql[id], 0, NULL)) {
                c->bad = true;
                kurz_error("pg %s/%s: prepare: %s", c->node->shard, c->node->role,
                           PQerrorMessage(c->pc));
                return KURZ_E_UNAVAILABLE;
        }
        rc = conn_wait(c, deadline, &res, "prepare");
        if (rc < 0)
                return rc;
        PQclear(res);
        c->prepared |= 1u << id;
        return 0;
}

/* The batch statements, planned on every execution (an unnamed statement)
 * rather than prepared once: a prepared statement switches to a generic plan
 * after five runs, and one chosen while the tables were small is a
 * sequential scan that stays when they have grown (measured: url_index
 * scanned with "= ANY" per create batch, PostgreSQL's CPU growing with the
 * table). Planning with the actual arrays costs far less than one batch. */
#define CUSTOM_PLAN                                                                                \
        ((1u << S_INSERT) | (1u << S_DEDUPE) | (1u << S_VERIFY) | (1u << S_INDEX_ADD) |            \
         (1u << S_INDEX_DEL) | (1u << S_CLICKS))

/* Sends statement id with text parameters (no result is read yet). */
static int conn_send(struct pconn *c, enum stmt_id id, int np, const char *const *vals,
                     int64_t deadline)
{
        char name[16];
        int rc;

        if (CUSTOM_PLAN & (1u << id)) {
                if (PQsendQueryParams(c->pc, stmt_sql[id], np, NULL, vals, NULL, NULL, 0))
                        return 0;
                c->bad = true;
                kurz_error("pg %s/%s: send: %s", c->node->shard, c->node->role,
                           PQerrorMessage(c->pc));
                return KURZ_E_UNAVAILABLE;
        }
        rc = conn_prepare(c, id, deadline);
        if (rc < 0)
                return rc;
        snprintf(name, sizeof(name), "k%d", (int)id);
        if (!PQsendQueryPrepared(c->pc, name, np, vals, NULL, NULL, 0)) {
                c->bad = true;
                kurz_error("pg %s/%s: send: %s", c->node->shard, c->node->role,
                           PQerrorMessage(c->pc));
                return KURZ_E_UNAVAILABLE;
        }
        return 0;
}

static int conn_exec(struct pconn *c, enum stmt_id id, int np, const char *const *vals,
                     int64_t deadline, PGresult **out)
{
        int rc = conn_send(c, id, np, vals, deadline);

        if (rc < 0)
                return rc;
        return conn_wait(c, deadline, out, stmt_sql[id]);
}

static void conn_close(struct pconn *c)
{
        if (!c)
                return;
        PQfinish(c->pc);
        free(c);
}

/* --- pools and breakers --- */

static bool node_tripped(struct node *n)
{
        bool down;

        pthread_mutex_lock(&n->mu);
        down = now_ms() < n->down_until_ms;
        pthread_mutex_unlock(&n->mu);
        return down;
}

/* The node failed (connection refused, broken or timed out): fail fast for
 * BREAKER_MS, drop its idle connections (probably broken too) and, for a
 * replica, take it out of rotation until the health thread sees it well. */
static void node_fail(struct node *n)
{
        struct pconn *idle, *next;

        pthread_mutex_lock(&n->mu);
        n->down_until_ms = now_ms() + BREAKER_MS;
        n->gen++;
        idle = n->idle;
        n->idle = NULL;
        n->n_total -= n->n_idle;
        n->n_idle = 0;
        pthread_cond_broadcast(&n->cv);
        pthread_mutex_unlock(&n->mu);
        atomic_fetch_add(&n->failures, 1);
        if (atomic_exchange(&n->up, false))
                kurz_warn("pg %s/%s: marked down", n->shard, n->role);
        for (; idle; idle = next) {
                next = idle->next;
                conn_close(idle);
        }
}

static void node_recovered(struct node *n)
{
        pthread_mutex_lock(&n->mu);
        n->down_until_ms = 0;
        pthread_mutex_unlock(&n->mu);
}

static int node_connect(struct node *n, int64_t deadline, struct pconn **out)
{
        struct kurz_pg *pg = n->pg;
        char why[256];
        struct pconn *c;
        PGconn *pc;

        *out = NULL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        atomic_fetch_add(&n->connects, 1);
        pc = pq_connect(n->url, min64(deadline, now_ms() + pg->connect_timeout_ms), why,
                        sizeof(why));
        if (!pc) {
                atomic_fetch_add(&n->connect_failures, 1);
                kurz_warn("pg %s/%s: cannot connect: %s", n->shard, n->role, why);
                free(c);
                return KURZ_E_UNAVAILABLE;
        }
        c->pc = pc;
        c->node = n;
        c->born_ms = c->used_ms = now_ms();
        *out = c;
        return 0;
}

/* Borrows a connection of n: an idle one, a new one while fewer than
 * pool_max exist, or the next one returned before deadline. Fails at once
 * while the node's breaker is open. */
static int pool_get(struct node *n, int64_t deadline, struct pconn **out)
{
        struct kurz_pg *pg = n->pg;
        struct pconn *c, *stale = NULL;
        unsigned gen;
        int rc;

        *out = NULL;
        deadline = min64(deadline, now_ms() + pg->connect_timeout_ms);
        pthread_mutex_lock(&n->mu);
        for (;;) {
                int64_t t = now_ms();

                if (t < n->down_until_ms) {
                        pthread_mutex_unlock(&n->mu);
                        rc = KURZ_E_UNAVAILABLE;
                        goto out_close_stale;
                }
                c = n->idle;
                if (c) {
                        n->idle = c->next;
                        n->n_idle--;
                        if (c->gen != n->gen || t - c->born_ms > pg->max_lifetime_ms) {
                                n->n_total--;
                                c->next = stale;
                                stale = c;
                                continue;
                        }
                        n->n_in_use++;
                        pthread_mutex_unlock(&n->mu);
                        *out = c;
                        rc = 0;
                        goto out_close_stale;
                }
                if (n->n_total < pg->pool_max) {
                        n->n_total++;
                        n->n_in_use++;
                        gen = n->gen;
                        pthread_mutex_unlock(&n->mu);
                        rc = node_connect(n, deadline, &c);
                        if (rc < 0) {
                                pthread_mutex_lock(&n->mu);
                                n->n_total--;
                                n->n_in_use--;
                                pthread_cond_signal(&n->cv);
                                pthread_mutex_unlock(&n->mu);
                                if (rc == KURZ_E_UNAVAILABLE)
                                        node_fail(n);
                                goto out_close_stale;
                        }
                        c->gen = gen;
                        *out = c;
                        goto out_close_stale;
                }
                if (t >= deadline) {
                        pthread_mutex_unlock(&n->mu);
                        atomic_fetch_add(&n->wait_timeouts, 1);
                        kurz_warn("pg %s/%s: no pooled connection free in time (max %u)", n->shard,
                                  n->role, pg->pool_max);
                        rc = KURZ_E_UNAVAILABLE;
                        goto out_close_stale;
                }
                {
                        struct timespec ts;
                        int64_t d = deadline;

                        atomic_fetch_add(&n->waits, 1);
                        ts.tv_sec = (time_t)(d / 1000);
                        ts.tv_nsec = (long)(d % 1000) * 1000000;
                        n->n_waiting++;
                        pthread_cond_timedwait(&n->cv, &n->mu, &ts);
                        n->n_waiting--;
                }
        }

out_close_stale:
        while (stale) {
                c = stale->next;
                conn_close(stale);
                stale = c;
        }
        return rc;
}

/* Returns c to n's pool; a bad or outdated connection is closed (and a bad
 * one trips the node's breaker). */
static void pool_put(struct node *n, struct pconn *c)
{
        bool drop, bad = c->bad || PQstatus(c->pc) != CONNECTION_OK ||
                         PQtransactionStatus(c->pc) != PQTRANS_IDLE;

        pthread_mutex_lock(&n->mu);
        n->n_in_use--;
        drop = bad || c->gen != n->gen;
        if (drop) {
                n->n_total--;
        } else {
                c->used_ms = now_ms();
                c->next = n->idle;
                n->idle = c;
                n->n_idle++;
        }
        pthread_cond_signal(&n->cv);
        pthread_mutex_unlock(&n->mu);
        if (drop)
                conn_close(c);
        if (bad)
                node_fail(n);
}

/* Runs one statement on node n with a deadline. */
static int node_exec(struct node *n, enum stmt_id id, int np, const char *const *vals,
                     int64_t deadline, PGresult **out)
{
        struct pconn *c;
        int rc;

        *out = NULL;
        rc = pool_get(n, deadline, &c);
        if (rc < 0)
                return rc;
        rc = conn_exec(c, id, np, vals, deadline, out);
        pool_put(n, c);
        return rc;
}

/* --- small helpers --- */

/* A PostgreSQL array literal built element by element. */
struct arr {
        struct kurz_buf b;
        size_t n;
        int err;
};

static void arr_sep(struct arr *a)
{
        a->err |= kurz_buf_puts(&a->b, a->n++ ? "," : "{");
}

static void arr_text(struct arr *a, const char *s, size_t len)
{
        arr_sep(a);
        a->err |= kurz_buf_reserve(&a->b, 2 * len + 2);
        if (a->err)
                return;
        a->b.p[a->b.len++] = '"';
        for (size_t i = 0; i < len; i++) {
                if (s[i] == '"' || s[i] == '\\')
                        a->b.p[a->b.len++] = '\\';
                a->b.p[a->b.len++] = s[i];
        }
        a->b.p[a->b.len++] = '"';
        a->b.p[a->b.len] = '\0';
}

static void arr_i64(struct arr *a, int64_t v)
{
        arr_sep(a);
        a->err |= kurz_buf_printf(&a->b, "%" PRId64, v);
}

static void arr_bool(struct arr *a, bool v)
{
        arr_sep(a);
        a->err |= kurz_buf_puts(&a->b, v ? "t" : "f");
}

/* Closes the literal; NULL when out of memory. */
static const char *arr_done(struct arr *a)
{
        a->err |= kurz_buf_puts(&a->b, a->n ? "}" : "{}");
        return a->err ? NULL : a->b.p;
}

static void arr_free(struct arr *a)
{
        kurz_buf_free(&a->b);
        memset(a, 0, sizeof(*a));
}

static int64_t col_i64(const PGresult *r, int row, int col)
{
        return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static bool col_bool(const PGresult *r, int row, int col)
{
        return PQgetvalue(r, row, col)[0] == 't';
}

/* Copies a code column into out; false when it cannot be a code. */
static bool col_code(const PGresult *r, int row, int col, char out[KURZ_CODE_MAX + 1])
{
        int len = PQgetlength(r, row, col);

        if (len <= 0 || len > KURZ_CODE_MAX)
                return false;
        memcpy(out, PQgetvalue(r, row, col), (size_t)len);
        out[len] = '\0';
        return true;
}

static struct node *primary_of(struct kurz_pg *pg, unsigned shard)
{
        return &pg->shards[shard].primary;
}

static unsigned shard_of_code(struct kurz_pg *pg, const char *code, size_t len)
{
        return kurz_shards_route(pg->map, code, len);
}

/* --- recent deletes (read-after-delete on lagging replicas) --- */

static size_t tomb_slot(const char *code, size_t len)
{
        return (size_t)(kurz_hash(code, len) % TOMBSTONES);
}

static void tomb_add(struct kurz_pg *pg, const char *code, size_t len)
{
        struct tombstone *t = &pg->tombs[tomb_slot(code, len)];
        int64_t t_ms = now_ms();

        pthread_mutex_lock(&pg->tomb_mu);
        memcpy(t->code, code, len);
        t->code[len] = '\0';
        t->at_ms = t_ms;
        pthread_mutex_unlock(&pg->tomb_mu);
        atomic_store(&pg->last_delete_ms, t_ms);
}

static bool tomb_recent(struct kurz_pg *pg, const char *code, size_t len)
{
        int64_t t_ms = now_ms();
        struct tombstone *t;
        bool hit;

        if (t_ms - atomic_load(&pg->last_delete_ms) > TOMBSTONE_MS)
                return false;
        t = &pg->tombs[tomb_slot(code, len)];
        pthread_mutex_lock(&pg->tomb_mu);
        hit = t->at_ms && t_ms - t->at_ms <= TOMBSTONE_MS && strlen(t->code) == len &&
              memcmp(t->code, code, len) == 0;
        pthread_mutex_unlock(&pg->tomb_mu);
        return hit;
}

/* --- reads --- */

/* Reads from shard sh: round-robin over healthy replicas; an empty answer
 * or an error there goes on to the primary, so rows committed on the
 * primary are always seen. Returns 0 with *out (may have 0 rows), or
 * KURZ_E_UNAVAILABLE. primary_only skips the replicas. */
static int shard_read(struct kurz_pg *pg, unsigned sh, enum stmt_id id, int np,
                      const char *const *vals, bool primary_only, PGresult **out)
{
        struct shard *s = &pg->shards[sh];
        bool tried_replica = false;
        PGresult *res;
        int rc;

        *out = NULL;
        if (!primary_only && s->n_replicas) {
                unsigned start = atomic_fetch_add(&s->rr, 1);

                for (size_t i = 0; i < s->n_replicas; i++) {
                        struct node *r = &s->replicas[(start + i) % s->n_replicas];

                        if (!atomic_load(&r->up))
                                continue;
                        tried_replica = true;
                        rc = node_exec(r, id, np, vals, now_ms() + READ_ATTEMPT_MS, &res);
                        if (rc < 0)
                                continue; /* the next replica, then the primary */
                        atomic_fetch_add(&r->reads, 1);
                        if (PQntuples(res) > 0) {
                                atomic_fetch_add(&pg->read_class[RC_REPLICA_HIT], 1);
                                *out = res;
                                return 0;
                        }
                        PQclear(res);
                        break; /* a miss: ask the primary (read-after-write) */
                }
        }
        rc = node_exec(&s->primary, id, np, vals, now_ms() + READ_ATTEMPT_MS, &res);
        if (rc < 0) {
                /* Never answer "absent" from a replica alone: the link may
                 * be committed and not yet replayed. */
                atomic_fetch_add(&pg->read_class[RC_UNAVAILABLE], 1);
                return KURZ_E_UNAVAILABLE;
        }
        atomic_fetch_add(&s->primary.reads, 1);
        atomic_fetch_add(&pg->read_class[tried_replica ? RC_PRIMARY_FALLBACK : RC_PRIMARY_DIRECT],
                         1);
        *out = res;
        return 0;
}

static int pg_lookup(struct kurz_store *store, const char *code, size_t code_len,
                     struct kurz_link *out)
{
        struct kurz_pg *pg = to_pg(store);
        char c[KURZ_CODE_MAX + 1];
        const char *vals[1] = {c};
        PGresult *res;
        size_t len;
        int rc;

        if (code_len == 0 || code_len > KURZ_CODE_MAX || memchr(code, '\0', code_len))
                return KURZ_E_NOTFOUND;
        memcpy(c, code, code_len);
        c[code_len] = '\0';
        rc = shard_read(pg, shard_of_code(pg, code, code_len), S_LOOKUP, 1, vals,
                        tomb_recent(pg, code, code_len), &res);
        if (rc < 0)
                return rc;
        if (PQntuples(res) == 0) {
                PQclear(res);
                return KURZ_E_NOTFOUND;
        }
        len = (size_t)PQgetlength(res, 0, 0);
        out->url = malloc(len + 1);
        if (!out->url) {
                PQclear(res);
                return -ENOMEM;
        }
        memcpy(out->url, PQgetvalue(res, 0, 0), len);
        out->url[len] = '\0';
        out->url_len = len;
        memcpy(out->code, code, code_len);
        out->code[code_len] = '\0';
        out->created_at = col_i64(res, 0, 1);
        out->expires_at = col_i64(res, 0, 2);
        out->clicks = col_i64(res, 0, 3);
        out->last_access = col_i64(res, 0, 4);
        PQclear(res);
        return 0;
}

static int pg_key_check(struct kurz_store *store, const char *hash_hex)
{
        struct kurz_pg *pg = to_pg(store);
        const char *vals[1] = {hash_hex};
        PGresult *res;
        int rc;

        if (!hash_hex || strnlen(hash_hex, 65) != 64)
                return KURZ_E_NOTFOUND;
        rc = shard_read(pg, 0, S_KEY_CHECK, 1, vals, false, &res);
        if (rc < 0)
                return rc;
        rc = PQntuples(res) > 0 ? 0 : KURZ_E_NOTFOUND;
        PQclear(res);
        return rc;
}

/* --- creates --- */

/* Working state of one item of a create batch. */
struct work {
        unsigned shard;  /* owner of the code */
        unsigned ushard; /* owner of the URL hash (dedupe entry) */
        int leader;      /* earlier item with the same URL whose result this one shares */
        bool dedupe;     /* looks for / records a dedupe entry */
        bool no_index;   /* the URL shard could not be read: no entry written */
        bool verify;     /* code holds a candidate on another shard to verify */
        bool unavail;    /* its code's shard failed: redrawn elsewhere, or 503 */
        int64_t cand_created, cand_expires;
};

static void item_fail(struct kurz_create *it, int err)
{
        it->status = KURZ_CREATE_FAILED;
        it->err = err;
}

static bool same_url(const struct kurz_create *a, const struct kurz_create *b)
{
        return a->url_hash == b->url_hash && a->url_len == b->url_len &&
               memcmp(a->url, b->url, a->url_len) == 0;
}

/* Finds live dedupe entries for the leaders among items: one query per URL
 * shard, then one existence check per code shard for entries naming a link
 * on another shard. An unreachable URL shard only disables dedupe for its
 * items. */
static void find_dups(struct kurz_pg *pg, struct kurz_create *items, struct work *w, size_t n,
                      int64_t deadline)
{
        for (size_t us = 0; us < pg->n_shards; us++) {
                struct arr hashes = {0};
                const char *vals[1];
                PGresult *res;
                bool any = false;
                int rc;

                for (size_t i = 0; i < n; i++) {
                        if (w[i].dedupe && w[i].leader < 0 && w[i].ushard == us &&
                            items[i].status == KURZ_CREATE_PENDING) {
                                arr_i64(&hashes, (int64_t)items[i].url_hash);
                                any = true;
                        }
                }
                if (!any) {
                        arr_free(&hashes);
                        continue;
                }
                vals[0] = arr_done(&hashes);
                rc = vals[0] ? node_exec(primary_of(pg, (unsigned)us), S_DEDUPE, 1, vals, deadline,
                                         &res)
                             : -ENOMEM;
                arr_free(&hashes);
                if (rc < 0) {
                        for (size_t i = 0; i < n; i++)
                                if (w[i].dedupe && w[i].ushard == us)
                                        w[i].no_index = true;
                        atomic_fetch_add(&pg->dedupe_skipped, 1);
                        continue;
                }
                for (int row = 0; row < PQntuples(res); row++) {
                        uint64_t h = (uint64_t)col_i64(res, row, 0);
                        size_t ulen = (size_t)PQgetlength(res, row, 1);
                        const char *url = PQgetvalue(res, row, 1);
                        char code[KURZ_CODE_MAX + 1];
                        int64_t created = col_i64(res, row, 3), expires = col_i64(res, row, 4);
                        bool here = col_bool(res, row, 5);
                        unsigned cs;

                        if (!col_code(res, row, 2, code))
                                continue;
                        cs = shard_of_code(pg, code, strlen(code));
                        if (cs == us && !here)
                                continue; /* the link is gone */
                        for (size_t i = 0; i < n; i++) {
                                struct kurz_create *it = &items[i];

                                if (!w[i].dedupe || w[i].leader >= 0 || w[i].verify ||
                                    it->status != KURZ_CREATE_PENDING || it->url_hash != h ||
                                    it->url_len != ulen || memcmp(it->url, url, ulen) != 0)
                                        continue;
                                if (expires != 0 && expires <= it->created_at)
                                        continue; /* expired: cleanup removes it */
                                memcpy(it->code, code, strlen(code) + 1);
                                it->out_created_at = created;
                                it->out_expires_at = expires;
                                if (cs == us)
                                        it->status = KURZ_CREATE_EXISTING;
                                else
                                        w[i].verify = true;
                        }
                }
                PQclear(res);
        }
        /* Entries that name a link on another shard: does it still exist? */
        for (size_t cs = 0; cs < pg->n_shards; cs++) {
                struct arr codes = {0};
                const char *vals[1];
                PGresult *res;
                bool any = false;
                int rc;

                for (size_t i = 0; i < n; i++) {
                        if (w[i].verify &&
                            shard_of_code(pg, items[i].code, strlen(items[i].code)) == cs) {
                                arr_text(&codes, items[i].code, strlen(items[i].code));
                                any = true;
                        }
                }
                if (!any) {
                        arr_free(&codes);
                        continue;
                }
                vals[0] = arr_done(&codes);
                rc = vals[0] ? node_exec(primary_of(pg, (unsigned)cs), S_VERIFY, 1, vals, deadline,
                                         &res)
                             : -ENOMEM;
                arr_free(&codes);
                for (size_t i = 0; i < n; i++) {
                        bool found = false;

                        if (!w[i].verify ||
                            shard_of_code(pg, items[i].code, strlen(items[i].code)) != cs)
                                continue;
                        for (int row = 0; rc == 0 && row < PQntuples(res); row++)
                                if (strcmp(PQgetvalue(res, row, 0), items[i].code) == 0)
                                        found = true;
                        w[i].verify = false;
                        if (found) {
                                items[i].status = KURZ_CREATE_EXISTING;
                        } else {
                                items[i].code[0] = '\0';
                                items[i].out_created_at = items[i].out_expires_at = 0;
                        }
                }
                if (rc == 0)
                        PQclear(res);
        }
}

/* Gives every pending item without a code one: its alias, or a generated
 * code, preferring codes whose shard's primary is not known to be down (a
 * generated code may live on any shard). */
static void assign_codes(struct kurz_pg *pg, struct kurz_create *items, struct work *w, size_t n,
                         kurz_code_fn gen, void *gen_arg)
{
        for (size_t i = 0; i < n; i++) {
                struct kurz_create *it = &items[i];
                size_t len;
                int rc;

                if (it->status != KURZ_CREATE_PENDING || w[i].leader >= 0 || it->code[0])
                        continue;
                if (it->alias) {
                        len = strlen(it->alias);
                        memcpy(it->code, it->alias, len + 1);
                        w[i].shard = shard_of_code(pg, it->code, len);
                        continue;
                }
                if (!gen) {
                        item_fail(it, -EINVAL);
                        continue;
                }
                for (int tries = 0; tries < GEN_RETRIES; tries++) {
                        it->code[0] = '\0';
                        rc = gen(gen_arg, it->code, sizeof(it->code));
                        if (rc < 0) {
                                it->code[0] = '\0';
                                item_fail(it, rc);
                                break;
                        }
                        len = strnlen(it->code, sizeof(it->code));
                        if (len == 0 || len > KURZ_CODE_MAX) {
                                kurz_error("pg: the code generator returned an invalid code");
                                it->code[0] = '\0';
                                item_fail(it, -EINVAL);
                                break;
                        }
                        w[i].shard = shard_of_code(pg, it->code, len);
                        if (pg->n_shards == 1 || !node_tripped(primary_of(pg, w[i].shard)))
                                break;
                }
        }
}

/* Per shard of a round: the connection and its statement in flight. */
struct round {
        struct pconn *c;
        int rc;
        struct arr a[8];
        bool sent;
};

/* One insert round: sends one INSERT per shard (all shards in flight at
 * once), then reads every answer by the common deadline. Items whose
 * generated code collided are left PENDING without a code for the next
 * round. */
static void insert_round(struct kurz_pg *pg, struct kurz_create *items, struct work *w, size_t n,
                         int64_t deadline, bool *again)
{
        struct round *r = calloc(pg->n_shards, sizeof(*r));

        *again = false;
        if (!r) {
                for (size_t i = 0; i < n; i++)
                        if (items[i].status == KURZ_CREATE_PENDING && w[i].leader < 0)
                                item_fail(&items[i], -ENOMEM);
                return;
        }
        for (size_t sh = 0; sh < pg->n_shards; sh++) {
                const char *vals[8];
                bool any = false;

                for (size_t i = 0; i < n; i++) {
                        struct kurz_create *it = &items[i];
                        bool dup = false;

                        if (it->status != KURZ_CREATE_PENDING || w[i].leader >= 0 || !it->code[0] ||
                            w[i].shard != sh)
                                continue;
                        /* The same code twice in one statement: only the
                         * first goes in; the other is a conflict. */
                        for (size_t j = 0; j < i && !dup; j++)
                                dup = items[j].status == KURZ_CREATE_PENDING && w[j].leader < 0 &&
                                      w[j].shard == sh && strcmp(items[j].code, it->code) == 0;
                        if (dup)
                                continue;
                        arr_text(&r[sh].a[0], it->code, strlen(it->code));
                        arr_text(&r[sh].a[1], it->url, it->url_len);
                        arr_i64(&r[sh].a[2], (int64_t)it->url_hash);
                        arr_i64(&r[sh].a[3], it->created_at);
                        arr_i64(&r[sh].a[4], it->expires_at);
                        arr_bool(&r[sh].a[5], it->alias != NULL);
                        arr_bool(&r[sh].a[6], !it->alias && it->dedupe);
                        arr_bool(&r[sh].a[7],
                                 !it->alias && w[i].dedupe && !w[i].no_index && w[i].ushard == sh);
                        any = true;
                }
                if (!any)
                        continue;
                r[sh].rc = 0;
                for (int k = 0; k < 8; k++) {
                        vals[k] = arr_done(&r[sh].a[k]);
                        if (!vals[k])
                                r[sh].rc = -ENOMEM;
                }
                if (r[sh].rc == 0)
                        r[sh].rc = pool_get(primary_of(pg, (unsigned)sh), deadline, &r[sh].c);
                if (r[sh].rc == 0)
                        r[sh].rc = conn_send(r[sh].c, S_INSERT, 8, vals, deadline);
                r[sh].sent = true;
        }
        for (size_t sh = 0; sh < pg->n_shards; sh++) {
                PGresult *res = NULL;
                int rc;

                if (!r[sh].sent)
                        continue;
                rc = r[sh].rc;
                if (rc == 0)
                        rc = conn_wait(r[sh].c, deadline, &res, "insert links");
                if (r[sh].c)
                        pool_put(primary_of(pg, (unsigned)sh), r[sh].c);
                for (int k = 0; k < 8; k++)
                        arr_free(&r[sh].a[k]);
                for (size_t i = 0; i < n; i++) {
                        struct kurz_create *it = &items[i];
                        bool in = false;

                        if (it->status != KURZ_CREATE_PENDING || w[i].leader >= 0 || !it->code[0] ||
                            w[i].shard != sh)
                                continue;
                        if (rc < 0) {
                                /* Not known to be committed: never a success.
                                 * A generated code was never acknowledged, so
                                 * with other shards alive it is redrawn: the
                                 * failure tripped this shard's breaker, and
                                 * assign_codes avoids tripped shards. */
                                if (!it->alias && pg->n_shards > 1 && rc != -ENOMEM &&
                                    now_ms() < deadline) {
                                        it->code[0] = '\0';
                                        w[i].unavail = true;
                                        *again = true;
                                        continue;
                                }
                                item_fail(it, rc == -ENOMEM ? -ENOMEM : KURZ_E_UNAVAILABLE);
                                continue;
                        }
                        for (int row = 0; row < PQntuples(res) && !in; row++)
                                if (strcmp(PQgetvalue(res, row, 0), it->code) == 0)
                                        in = true;
                        /* A code returned once belongs to its first item. */
                        for (size_t j = 0; j < i && in; j++)
                                if (items[j].status == KURZ_CREATE_NEW && w[j].shard == sh &&
                                    strcmp(items[j].code, it->code) == 0)
                                        in = false;
                        if (in) {
                                it->status = KURZ_CREATE_NEW;
                                it->out_created_at = it->created_at;
                                it->out_expires_at = it->expires_at;
                        } else if (it->alias) {
                                it->status = KURZ_CREATE_ALIAS_TAKEN;
                        } else {
                                kurz_warn("pg: generated code %s already exists (a code "
                                          "generator bug?); generating another",
                                          it->code);
                                it->code[0] = '\0';
                                *again = true;
                        }
                }
                PQclear(res);
        }
        free(r);
}

/* Writes the dedupe entries of new links whose URL hash another shard owns
 * (best effort: a missing entry only means a later duplicate link). */
static void index_remote(struct kurz_pg *pg, struct kurz_create *items, struct work *w, size_t n,
                         int64_t deadline)
{
        for (size_t us = 0; us < pg->n_shards; us++) {
                struct arr a[5] = {0};
                const char *vals[5];
                PGresult *res;
                bool any = false, ok = true;

                for (size_t i = 0; i < n; i++) {
                        struct kurz_create *it = &items[i];

                        if (it->status != KURZ_CREATE_NEW || w[i].leader >= 0 || !w[i].dedupe ||
                            w[i].no_index || w[i].ushard != us || w[i].shard == us)
                                continue;
                        arr_i64(&a[0], (int64_t)it->url_hash);
                        arr_text(&a[1], it->code, strlen(it->code));
                        arr_text(&a[2], it->url, it->url_len);
                        arr_i64(&a[3], it->created_at);
                        arr_i64(&a[4], it->expires_at);
                        any = true;
                }
                for (int k = 0; k < 5; k++)
                        if (!(vals[k] = arr_done(&a[k])))
                                ok = false;
                if (any && ok &&
                    node_exec(primary_of(pg, (unsigned)us), S_INDEX_ADD, 5, vals, deadline, &res) ==
                        0)
                        PQclear(res);
                else if (any)
                        kurz_warn("pg: dedupe entries on shard %s not written",
                                  pg->shards[us].primary.shard);
                for (int k = 0; k < 5; k++)
                        arr_free(&a[k]);
        }
}

static int pg_create_batch(struct kurz_store *store, struct kurz_create *items, size_t n,
                           kurz_code_fn gen, void *gen_arg)
{
        struct kurz_pg *pg = to_pg(store);
        int64_t deadline = now_ms() + WRITE_MS;
        struct work *w;
        bool again = true;

        if (n == 0)
                return 0;
        w = calloc(n, sizeof(*w));
        if (!w) {
                for (size_t i = 0; i < n; i++)
                        item_fail(&items[i], -ENOMEM);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                struct kurz_create *it = &items[i];

                it->status = KURZ_CREATE_PENDING;
                it->err = 0;
                it->code[0] = '\0';
                w[i].leader = -1;
                if (!it->url || it->url_len == 0 || it->url_len > KURZ_URL_MAX ||
                    memchr(it->url, '\0', it->url_len)) {
                        item_fail(it, -EINVAL);
                        continue;
                }
                if (it->alias) {
                        size_t len = strnlen(it->alias, KURZ_CODE_MAX + 1);

                        if (len == 0 || len > KURZ_CODE_MAX) {
                                item_fail(it, -EINVAL);
                                continue;
                        }
                }
                w[i].ushard = kurz_shards_route_hash(pg->map, it->url_hash);
                w[i].dedupe = !it->alias && it->dedupe;
                /* Within the batch, the first item of a URL speaks for all. */
                for (size_t j = 0; j < i && w[i].dedupe; j++) {
                        if (w[j].dedupe && w[j].leader < 0 &&
                            items[j].status == KURZ_CREATE_PENDING && same_url(&items[j], it)) {
                                w[i].leader = (int)j;
                                break;
                        }
                }
        }
        find_dups(pg, items, w, n, deadline);
        for (int round = 0; again && round < GEN_RETRIES; round++) {
                assign_codes(pg, items, w, n, gen, gen_arg);
                insert_round(pg, items, w, n, deadline, &again);
        }
        for (size_t i = 0; i < n; i++) {
                struct kurz_create *it = &items[i];

                if (it->status == KURZ_CREATE_PENDING && w[i].leader < 0) {
                        if (!w[i].unavail)
                                kurz_error("pg: %d generated codes in a row already existed; "
                                           "create failed",
                                           GEN_RETRIES);
                        it->code[0] = '\0';
                        item_fail(it, w[i].unavail ? KURZ_E_UNAVAILABLE : -EEXIST);
                }
        }
        for (size_t i = 0; i < n; i++) {
                struct kurz_create *it = &items[i], *l;

                if (w[i].leader < 0 || it->status != KURZ_CREATE_PENDING)
                        continue;
                l = &items[w[i].leader];
                if (l->status == KURZ_CREATE_NEW || l->status == KURZ_CREATE_EXISTING) {
                        memcpy(it->code, l->code, sizeof(it->code));
                        it->out_created_at = l->out_created_at;
                        it->out_expires_at = l->out_expires_at;
                        it->status = KURZ_CREATE_EXISTING;
                } else {
                        item_fail(it, l->status == KURZ_CREATE_FAILED ? l->err : -EIO);
                }
        }
        if (pg->n_shards > 1)
                index_remote(pg, items, w, n, now_ms() + WRITE_MS / 2);
        free(w);
        return 0;
}

/* --- other writes --- */

/* Deletes the dedupe entries (hash, code) on the URL shards that are not
 * the code's own (whose entries the deleting statement removed). */
static void unindex_remote(struct kurz_pg *pg, const uint64_t *hashes,
                           char (*codes)[KURZ_CODE_MAX + 1], const bool *dedupe, size_t n)
{
        if (pg->n_shards == 1)
                return;
        for (size_t us = 0; us < pg->n_shards; us++) {
                struct arr a[2] = {0};
                const char *vals[2];
                PGresult *res;
                bool any = false;

                for (size_t i = 0; i < n; i++) {
                        if (!dedupe[i] || kurz_shards_route_hash(pg->map, hashes[i]) != us ||
                            shard_of_code(pg, codes[i], strlen(codes[i])) == us)
                                continue;
                        arr_i64(&a[0], (int64_t)hashes[i]);
                        arr_text(&a[1], codes[i], strlen(codes[i]));
                        any = true;
                }
                vals[0] = arr_done(&a[0]);
                vals[1] = arr_done(&a[1]);
                if (any && vals[0] && vals[1] &&
                    node_exec(primary_of(pg, (unsigned)us), S_INDEX_DEL, 2, vals,
                              now_ms() + ADMIN_MS, &res) == 0)
                        PQclear(res);
                arr_free(&a[0]);
                arr_free(&a[1]);
        }
}

static int pg_remove(struct kurz_store *store, const char *code, size_t code_len)
{
        struct kurz_pg *pg = to_pg(store);
        char c[1][KURZ_CODE_MAX + 1];
        const char *vals[1] = {c[0]};
        PGresult *res;
        uint64_t h;
        bool dd;
        int rc;

        if (code_len == 0 || code_len > KURZ_CODE_MAX || memchr(code, '\0', code_len))
                return KURZ_E_NOTFOUND;
        memcpy(c[0], code, code_len);
        c[0][code_len] = '\0';
        rc = node_exec(primary_of(pg, shard_of_code(pg, code, code_len)), S_REMOVE, 1, vals,
                       now_ms() + ADMIN_MS, &res);
        if (rc < 0)
                return rc == -EAGAIN ? KURZ_E_UNAVAILABLE : rc;
        if (PQntuples(res) == 0) {
                PQclear(res);
                return KURZ_E_NOTFOUND;
        }
        h = (uint64_t)col_i64(res, 0, 0);
        dd = col_bool(res, 0, 1);
        PQclear(res);
        tomb_add(pg, code, code_len);
        unindex_remote(pg, &h, c, &dd, 1);
        return 0;
}

static int pg_add_clicks(struct kurz_store *store, const struct kurz_click *clicks, size_t n)
{
        struct kurz_pg *pg = to_pg(store);
        int result = 0;

        if (n == 0)
                return 0;
        for (size_t sh = 0; sh < pg->n_shards; sh++) {
                struct arr a[4] = {0};
                const char *vals[4];
                PGresult *res;
                bool any = false, ok = true;
                int rc = 0;

                for (size_t i = 0; i < n; i++) {
                        const struct kurz_click *k = &clicks[i];
                        size_t len = strnlen(k->code, sizeof(k->code));

                        if (len == 0 || len > KURZ_CODE_MAX || k->count < 0 ||
                            shard_of_code(pg, k->code, len) != sh)
                                continue;
                        arr_text(&a[0], k->code, len);
                        arr_i64(&a[1], k->day);
                        arr_i64(&a[2], k->count);
                        arr_i64(&a[3], k->last_access);
                        any = true;
                }
                for (int k = 0; k < 4; k++)
                        if (!(vals[k] = arr_done(&a[k])))
                                ok = false;
                if (any) {
                        rc = ok ? -EAGAIN : -ENOMEM;
                        /* A deadlock with another process's flush is retried. */
                        for (int tries = 0; ok && rc == -EAGAIN && tries < 3; tries++)
                                rc = node_exec(primary_of(pg, (unsigned)sh), S_CLICKS, 4, vals,
                                               now_ms() + BULK_MS, &res);
                        if (rc == 0)
                                PQclear(res);
                        else
                                result = rc == -EAGAIN ? KURZ_E_UNAVAILABLE : rc;
                }
                for (int k = 0; k < 4; k++)
                        arr_free(&a[k]);
        }
        return result;
}

/* Runs one cleanup statement (S_EXPIRED or S_UNUSED) on shard sh and
 * appends what it deleted. */
static int cleanup_shard(struct kurz_pg *pg, unsigned sh, enum stmt_id id, int64_t t, size_t limit,
                         char (**arr)[KURZ_CODE_MAX + 1], uint64_t **hashes, bool **dedupe,
                         size_t *n, size_t *cap)
{
        char tb[24], lb[24];
        const char *vals[2] = {tb, lb};
        PGresult *res;
        int rc;

        snprintf(tb, sizeof(tb), "%" PRId64, t);
        snprintf(lb, sizeof(lb), "%zu", limit);
        rc = node_exec(primary_of(pg, sh), id, 2, vals, now_ms() + BULK_MS, &res);
        if (rc < 0)
                return rc;
        for (int row = 0; row < PQntuples(res); row++) {
                if (*n == *cap) {
                        size_t ncap = *cap ? *cap * 2 : 64;
                        char(*p)[KURZ_CODE_MAX + 1] = realloc(*arr, ncap * sizeof(**arr));
                        uint64_t *h;
                        bool *d;

                        if (p)
                                *arr = p;
                        h = p ? realloc(*hashes, ncap * sizeof(**hashes)) : NULL;
                        if (h)
                                *hashes = h;
                        d = h ? realloc(*dedupe, ncap * sizeof(**dedupe)) : NULL;
                        if (!d) {
                                PQclear(res);
                                return -ENOMEM;
                        }
                        *dedupe = d;
                        *cap = ncap;
                }
                if (!col_code(res, row, 0, (*arr)[*n]))
                        continue;
                (*hashes)[*n] = (uint64_t)col_i64(res, row, 1);
                (*dedupe)[*n] = col_bool(res, row, 2);
                (*n)++;
        }
        PQclear(res);
        return 0;
}

static int pg_cleanup(struct kurz_store *store, int64_t now, int64_t unused_before, size_t batch,
                      char (**codes)[KURZ_CODE_MAX + 1])
{
        struct kurz_pg *pg = to_pg(store);
        char(*arr)[KURZ_CODE_MAX + 1] = NULL;
        uint64_t *hashes = NULL;
        bool *dedupe = NULL;
        size_t n = 0, cap = 0, failed = 0;
        int rc = 0;

        *codes = NULL;
        if (batch == 0)
                return 0;
        if (batch > CLEANUP_MAX)
                batch = CLEANUP_MAX;
        /* A shard that fails is skipped: the others still get cleaned. */
        for (size_t sh = 0; sh < pg->n_shards && n < batch; sh++) {
                rc = cleanup_shard(pg, (unsigned)sh, S_EXPIRED, now, batch - n, &arr, &hashes,
                                   &dedupe, &n, &cap);
                if (rc == 0 && unused_before > 0 && n < batch)
                        rc = cleanup_shard(pg, (unsigned)sh, S_UNUSED, unused_before, batch - n,
                                           &arr, &hashes, &dedupe, &n, &cap);
                if (rc == -ENOMEM)
                        break;
                if (rc < 0)
                        failed++;
        }
        if (n)
                unindex_remote(pg, hashes, arr, dedupe, n);
        free(hashes);
        free(dedupe);
        if (n == 0) {
                free(arr);
                return rc == -ENOMEM ? -ENOMEM : failed ? KURZ_E_UNAVAILABLE : 0;
        }
        *codes = arr;
        return (int)n;
}

static int pg_lease_counter(struct kurz_store *store, uint64_t n, uint64_t *start)
{
        struct kurz_pg *pg = to_pg(store);
        char nb[24];
        const char *vals[1] = {nb};
        PGresult *res;
        int64_t first;
        int rc;

        if (n == 0 || n > LEASE_MAX)
                return -EINVAL;
        snprintf(nb, sizeof(nb), "%" PRIu64, n);
        rc = node_exec(primary_of(pg, 0), S_LEASE, 1, vals, now_ms() + WRITE_MS, &res);
        if (rc < 0)
                return KURZ_E_UNAVAILABLE;
        first = PQntuples(res) == 1 ? col_i64(res, 0, 0) : -1;
        PQclear(res);
        if (first < 0 || (uint64_t)first > (uint64_t)INT64_MAX - n) {
                kurz_error("pg: the code counter is out of range");
                return -ERANGE;
        }
        *start = (uint64_t)first;
        return 0;
}

static int pg_permutation_key(struct kurz_store *store, uint8_t key[16])
{
        memcpy(key, to_pg(store)->key, 16);
        return 0;
}

static int pg_key_add(struct kurz_store *store, const char *hash_hex, const char *name)
{
        struct kurz_pg *pg = to_pg(store);
        char tb[24];
        const char *vals[3] = {hash_hex, name, tb};
        PGresult *res;
        int rc;

        if (!hash_hex || strlen(hash_hex) != 64)
                return -EINVAL;
        snprintf(tb, sizeof(tb), "%lld", (long long)time(NULL));
        rc = node_exec(primary_of(pg, 0), S_KEY_ADD, 3, vals, now_ms() + ADMIN_MS, &res);
        if (rc < 0)
                return rc;
        PQclear(res);
        return 0;
}

/* --- admin reads (from the primaries: they must see every write) --- */

static int cmp_link(const void *a, const void *b)
{
        return strcmp(((const struct kurz_link *)a)->code, ((const struct kurz_link *)b)->code);
}

static int pg_list(struct kurz_store *store, const char *after, size_t limit,
                   struct kurz_link **out)
{
        struct kurz_pg *pg = to_pg(store);
        struct kurz_link *links = NULL;
        size_t n = 0;
        char lb[24];
        const char *vals[2] = {after ? after : "", lb};
        int rc = 0;

        *out = NULL;
        if (limit == 0)
                return 0;
        if (limit > LIST_MAX)
                limit = LIST_MAX;
        snprintf(lb, sizeof(lb), "%zu", limit);
        links = calloc(limit * pg->n_shards, sizeof(*links));
        if (!links)
                return -ENOMEM;
        /* Each shard's first `limit` codes after `after`, merged by code. */
        for (size_t sh = 0; sh < pg->n_shards && rc == 0; sh++) {
                PGresult *res;

                rc = node_exec(primary_of(pg, (unsigned)sh), S_LIST, 2, vals, now_ms() + ADMIN_MS,
                               &res);
                if (rc < 0)
                        break;
                for (int row = 0; row < PQntuples(res); row++) {
                        struct kurz_link *l = &links[n];
                        size_t ulen = (size_t)PQgetlength(res, row, 1);

                        if (!col_code(res, row, 0, l->code))
                                continue;
                        l->url = malloc(ulen + 1);
                        if (!l->url) {
                                rc = -ENOMEM;
                                break;
                        }
                        memcpy(l->url, PQgetvalue(res, row, 1), ulen);
                        l->url[ulen] = '\0';
                        l->url_len = ulen;
                        l->created_at = col_i64(res, row, 2);
                        l->expires_at = col_i64(res, row, 3);
                        l->clicks = col_i64(res, row, 4);
                        l->last_access = col_i64(res, row, 5);
                        n++;
                }
                PQclear(res);
        }
        if (rc < 0) {
                kurz_store_links_free(links, n);
                return rc == -EAGAIN ? KURZ_E_UNAVAILABLE : rc;
        }
        qsort(links, n, sizeof(*links), cmp_link);
        for (size_t i = limit; i < n; i++)
                free(links[i].url);
        if (n > limit)
                n = limit;
        if (n == 0) {
                free(links);
                return 0;
        }
        *out = links;
        return (int)n;
}

static int pg_count(struct kurz_store *store, int64_t now, int64_t *total, int64_t *active)
{
        struct kurz_pg *pg = to_pg(store);
        int64_t all = 0, expired = 0;
        char tb[24];
        const char *vals[1] = {tb};

        snprintf(tb, sizeof(tb), "%" PRId64, now);
        for (size_t sh = 0; sh < pg->n_shards; sh++) {
                PGresult *res;
                int rc = node_exec(primary_of(pg, (unsigned)sh), S_COUNT, 1, vals,
                                   now_ms() + ADMIN_MS, &res);

                if (rc < 0)
                        return rc == -EAGAIN ? KURZ_E_UNAVAILABLE : rc;
                all += col_i64(res, 0, 0);
                expired += col_i64(res, 0, 1);
                PQclear(res);
        }
        *total = all;
        *active = all - expired;
        return 0;
}

/* --- statistics (replicas first: a little staleness is fine here) --- */

static int pg_stats_link(struct kurz_store *store, const char *code, size_t code_len, int32_t today,
                         struct kurz_link_stats *out)
{
        struct kurz_pg *pg = to_pg(store);
        char c[KURZ_CODE_MAX + 1], from[16], to[16];
        const char *vals[3] = {c, from, to};
        PGresult *res;
        int rc, rows;

        memset(out, 0, sizeof(*out));
        if (code_len == 0 || code_len > KURZ_CODE_MAX || memchr(code, '\0', code_len))
                return KURZ_E_NOTFOUND;
        memcpy(c, code, code_len);
        c[code_len] = '\0';
        snprintf(from, sizeof(from), "%" PRId32, today - STATS_DAYS);
        snprintf(to, sizeof(to), "%" PRId32, today);
        rc = shard_read(pg, shard_of_code(pg, code, code_len), S_STATS_LINK, 3, vals,
                        tomb_recent(pg, code, code_len), &res);
        if (rc < 0)
                return rc;
        rows = PQntuples(res);
        if (rows == 0) {
                PQclear(res);
                return KURZ_E_NOTFOUND;
        }
        out->total_clicks = col_i64(res, 0, 0);
        out->first_click = col_i64(res, 0, 1);
        out->last_click = col_i64(res, 0, 2);
        out->timeline = calloc((size_t)rows, sizeof(*out->timeline));
        if (!out->timeline) {
                PQclear(res);
                return -ENOMEM;
        }
        for (int row = 0; row < rows; row++) {
                int32_t d;
                int64_t n;

                if (PQgetisnull(res, row, 3))
                        continue; /* no rollup rows: the LEFT JOIN's one row */
                d = (int32_t)col_i64(res, row, 3);
                n = col_i64(res, row, 4);
                if (n <= 0)
                        continue;
                out->timeline[out->ndays++] = (struct kurz_day_clicks){d, n};
                out->clicks_month += n;
                if (d > today - 7)
                        out->clicks_week += n;
                if (d == today)
                        out->clicks_today += n;
        }
        PQclear(res);
        return 0;
}

/* Sums every shard's counters: a few rows per shard whatever the number of
 * links. */
static int pg_stats_platform(struct kurz_store *store, int64_t now, int32_t today,
                             struct kurz_platform_stats *out)
{
        struct kurz_pg *pg = to_pg(store);
        char db[16], tb[24];
        const char *vals[2] = {db, tb};
        int64_t expired = 0;

        memset(out, 0, sizeof(*out));
        snprintf(db, sizeof(db), "%" PRId32, today);
        snprintf(tb, sizeof(tb), "%" PRId64, now);
        for (size_t sh = 0; sh < pg->n_shards; sh++) {
                PGresult *res;
                int rc = shard_read(pg, (unsigned)sh, S_PLATFORM, 2, vals, false, &res);

                if (rc < 0)
                        return rc;
                if (PQntuples(res) == 1) {
                        out->total_urls += col_i64(res, 0, 0);
                        out->total_clicks += col_i64(res, 0, 1);
                        out->clicks_today += col_i64(res, 0, 2);
                        expired += col_i64(res, 0, 3);
                }
                PQclear(res);
        }
        out->active_urls = out->total_urls > expired ? out->total_urls - expired : 0;
        return 0;
}

/* Healthy when every primary answers: each owns writes of its slots. */
static bool pg_healthy(struct kurz_store *store)
{
        struct kurz_pg *pg = to_pg(store);

        for (size_t sh = 0; sh < pg->n_shards; sh++) {
                PGresult *res;

                if (node_exec(primary_of(pg, (unsigned)sh), S_PING, 0, NULL, now_ms() + CHECK_MS,
                              &res) < 0)
                        return false;
                PQclear(res);
        }
        return true;
}

/* --- metrics --- */

enum family {
        F_CONNECTIONS,
        F_IN_USE,
        F_IDLE,
        F_WAITING,
        F_WAITS,
        F_WAIT_TIMEOUTS,
        F_UP,
        F_FAILURES,
        F_CONNECT_FAILURES,
        F_LAG,
        F_READS,
        F_MAX,
        F_COUNT
};

static const struct {
        const char *name, *type, *help;
} families[F_COUNT] = {
    [F_CONNECTIONS] = {"kurz_pg_pool_connections", "gauge", "Open pooled connections per node."},
    [F_IN_USE] = {"kurz_pg_pool_in_use", "gauge", "Pooled connections lent out."},
    [F_IDLE] = {"kurz_pg_pool_idle", "gauge", "Pooled connections idle."},
    [F_WAITING] = {"kurz_pg_pool_waiting", "gauge", "Borrowers waiting for a connection now."},
    [F_WAITS] = {"kurz_pg_pool_waits_total", "counter",
                 "Borrowers that had to wait for a connection."},
    [F_WAIT_TIMEOUTS] = {"kurz_pg_pool_wait_timeouts_total", "counter",
                         "Borrowers that gave up waiting (answered 503)."},
    [F_UP] = {"kurz_pg_node_up", "gauge",
              "1 when the node is usable (a replica in read rotation, a primary answering)."},
    [F_FAILURES] = {"kurz_pg_node_failures_total", "counter",
                    "Failures that tripped the node's circuit breaker."},
    [F_CONNECT_FAILURES] = {"kurz_pg_connect_failures_total", "counter",
                            "Connection attempts that failed."},
    [F_LAG] = {"kurz_pg_replica_lag_bytes", "gauge",
               "Replay lag of a replica behind its primary in bytes (-1 unknown)."},
    [F_READS] = {"kurz_pg_reads_total", "counter", "Reads answered by each node."},
    [F_MAX] = {"kurz_pg_pool_max", "gauge",
               "Most pooled connections per node (--db-pool-max): the pool alert's base."},
};

/* The value of family f for node n; false when n has none. */
static bool node_value(struct node *n, enum family f, long long *v)
{
        switch (f) {
        case F_CONNECTIONS:
        case F_IN_USE:
        case F_IDLE:
        case F_WAITING:
                pthread_mutex_lock(&n->mu);
                *v = f == F_CONNECTIONS ? n->n_total
                     : f == F_IN_USE    ? n->n_in_use
                     : f == F_IDLE      ? n->n_idle
                                        : n->n_waiting;
                pthread_mutex_unlock(&n->mu);
                return true;
        case F_WAITS:
                *v = (long long)atomic_load(&n->waits);
                return true;
        case F_WAIT_TIMEOUTS:
                *v = (long long)atomic_load(&n->wait_timeouts);
                return true;
        case F_UP:
                *v = atomic_load(&n->up) ? 1 : 0;
                return true;
        case F_FAILURES:
                *v = (long long)atomic_load(&n->failures);
                return true;
        case F_CONNECT_FAILURES:
                *v = (long long)atomic_load(&n->connect_failures);
                return true;
        case F_LAG:
                *v = atomic_load(&n->lag_bytes);
                return !n->is_primary;
        case F_READS:
                *v = (long long)atomic_load(&n->reads);
                return true;
        case F_MAX:
                *v = n->pg->pool_max;
                return true;
        default:
                return false;
        }
}

static int family_node(struct kurz_buf *b, enum family f, struct node *n)
{
        long long v;

        if (!node_value(n, f, &v))
                return 0;
        return kurz_buf_printf(b, "%s{shard=\"%s\",node=\"%s\"} %lld\n", families[f].name, n->shard,
                               n->role, v);
}

static int pg_metrics(struct kurz_store *store, struct kurz_buf *b)
{
        struct kurz_pg *pg = to_pg(store);
        int rc = 0;

        for (int f = 0; f < F_COUNT; f++) {
                rc |= kurz_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", families[f].name,
                                      families[f].help, families[f].name, families[f].type);
                for (size_t sh = 0; sh < pg->n_shards; sh++) {
                        rc |= family_node(b, (enum family)f, &pg->shards[sh].primary);
                        for (size_t r = 0; r < pg->shards[sh].n_replicas; r++)
                                rc |= family_node(b, (enum family)f, &pg->shards[sh].replicas[r]);
                }
        }
        rc |= kurz_buf_puts(b, "# HELP kurz_pg_lookups_total Store reads by how they were "
                               "served.\n# TYPE kurz_pg_lookups_total counter\n");
        for (int c = 0; c < RC_N; c++)
                rc |= kurz_buf_printf(b, "kurz_pg_lookups_total{class=\"%s\"} %llu\n",
                                      read_class_name[c],
                                      (unsigned long long)atomic_load(&pg->read_class[c]));
        rc |= kurz_buf_printf(b,
                              "# HELP kurz_pg_dedupe_skipped_total Create batches whose dedupe "
                              "lookup was skipped (URL shard down).\n"
                              "# TYPE kurz_pg_dedupe_skipped_total counter\n"
                              "kurz_pg_dedupe_skipped_total %llu\n",
                              (unsigned long long)atomic_load(&pg->dedupe_skipped));
        return rc ? -ENOMEM : 0;
}

/* --- the health and pool thread --- */

static bool parse_lsn(const char *s, uint64_t *out)
{
        unsigned long long hi, lo;

        if (sscanf(s, "%llX/%llX", &hi, &lo) != 2)
                return false;
        *out = (uint64_t)hi << 32 | (uint64_t)lo;
        return true;
}

/* Runs a probe statement on n's dedicated health connection. */
static int probe(struct node *n, enum stmt_id id, PGresult **res)
{
        int64_t deadline = now_ms() + CHECK_MS;
        int rc;

        *res = NULL;
        if (n->hc && n->hc->bad) {
                conn_close(n->hc);
                n->hc = NULL;
        }
        if (!n->hc) {
                rc = node_connect(n, deadline, &n->hc);
                if (rc < 0)
                        return rc;
        }
        rc = conn_exec(n->hc, id, 0, NULL, deadline, res);
        if (rc < 0 && n->hc->bad) {
                conn_close(n->hc);
                n->hc = NULL;
        }
        return rc;
}

static void check_shard(struct kurz_pg *pg, struct shard *s)
{
        uint64_t primary_lsn = 0, replay;
        bool have_primary = false;
        PGresult *res;

        if (probe(&s->primary, S_PRIMARY_LSN, &res) == 0) {
                have_primary = parse_lsn(PQgetvalue(res, 0, 0), &primary_lsn);
                PQclear(res);
                if (!atomic_exchange(&s->primary.up, true))
                        kurz_info("pg %s/primary: up", s->primary.shard);
                node_recovered(&s->primary);
        } else if (atomic_exchange(&s->primary.up, false)) {
                kurz_warn("pg %s/primary: down", s->primary.shard);
        }
        for (size_t i = 0; i < s->n_replicas; i++) {
                struct node *r = &s->replicas[i];
                bool ok = false;

                if (probe(r, S_REPLAY_LSN, &res) == 0) {
                        if (parse_lsn(PQgetvalue(res, 0, 0), &replay) && col_bool(res, 0, 1)) {
                                int64_t lag = -1;

                                if (have_primary)
                                        lag = replay >= primary_lsn
                                                  ? 0
                                                  : (int64_t)(primary_lsn - replay);
                                atomic_store(&r->lag_bytes, lag);
                                ok = lag <= pg->max_lag;
                                if (!ok)
                                        kurz_warn("pg %s/%s: %lld bytes behind the primary",
                                                  r->shard, r->role, (long long)lag);
                        } else {
                                kurz_warn("pg %s/%s: not a streaming replica", r->shard, r->role);
                        }
                        PQclear(res);
                } else {
                        atomic_store(&r->lag_bytes, -1);
                }
                if (ok) {
                        node_recovered(r);
                        if (!atomic_exchange(&r->up, true))
                                kurz_info("pg %s/%s: back in read rotation", r->shard, r->role);
                } else if (atomic_exchange(&r->up, false)) {
                        kurz_warn("pg %s/%s: out of read rotation", r->shard, r->role);
                }
        }
}

/* Closes idle connections past their lifetime (or idle too long beyond
 * min_idle) and opens connections up to min_idle on reachable nodes. */
static void maintain_pool(struct kurz_pg *pg, struct node *n)
{
        struct pconn **pp, *c, *drop = NULL;
        int64_t t = now_ms();
        unsigned want = 0;

        pthread_mutex_lock(&n->mu);
        for (pp = &n->idle; (c = *pp);) {
                bool old = t - c->born_ms > pg->max_lifetime_ms || c->gen != n->gen;
                bool idle = t - c->used_ms > pg->idle_timeout_ms && n->n_idle > pg->min_idle;

                if (old || idle) {
                        *pp = c->next;
                        n->n_idle--;
                        n->n_total--;
                        c->next = drop;
                        drop = c;
                } else {
                        pp = &c->next;
                }
        }
        if (t >= n->down_until_ms && atomic_load(&n->up)) {
                while (n->n_idle + want < pg->min_idle && n->n_total + want < pg->pool_max)
                        want++;
                n->n_total += want;
        }
        pthread_mutex_unlock(&n->mu);
        while (drop) {
                c = drop->next;
                conn_close(drop);
                drop = c;
        }
        for (unsigned i = 0; i < want; i++) {
                unsigned gen;

                pthread_mutex_lock(&n->mu);
                gen = n->gen;
                pthread_mutex_unlock(&n->mu);
                if (node_connect(n, now_ms() + CHECK_MS, &c) < 0) {
                        pthread_mutex_lock(&n->mu);
                        n->n_total -= want - i;
                        pthread_cond_broadcast(&n->cv);
                        pthread_mutex_unlock(&n->mu);
                        return;
                }
                c->gen = gen;
                pthread_mutex_lock(&n->mu);
                c->next = n->idle;
                n->idle = c;
                n->n_idle++;
                pthread_cond_signal(&n->cv);
                pthread_mutex_unlock(&n->mu);
        }
}

static bool wait_stop(struct kurz_pg *pg, int64_t ms)
{
        struct timespec ts;
        int64_t d = now_ms() + ms;
        bool stop;

        ts.tv_sec = (time_t)(d / 1000);
        ts.tv_nsec = (long)(d % 1000) * 1000000;
        pthread_mutex_lock(&pg->stop_mu);
        while (!pg->stopping && now_ms() < d)
                pthread_cond_timedwait(&pg->stop_cv, &pg->stop_mu, &ts);
        stop = pg->stopping;
        pthread_mutex_unlock(&pg->stop_mu);
        return stop;
}

static void *health_main(void *arg)
{
        struct kurz_pg *pg = arg;

        do {
                for (size_t sh = 0; sh < pg->n_shards; sh++) {
                        struct shard *s = &pg->shards[sh];

                        check_shard(pg, s);
                        maintain_pool(pg, &s->primary);
                        for (size_t r = 0; r < s->n_replicas; r++)
                                maintain_pool(pg, &s->replicas[r]);
                }
        } while (!wait_stop(pg, pg->check_ms));
        return NULL;
}

/* --- open, migrate, close --- */

static int node_init(struct kurz_pg *pg, struct node *n, const char *url, const char *shard,
                     const char *role, bool primary)
{
        pthread_condattr_t ca;

        n->pg = pg;
        n->url = (char *)url;
        snprintf(n->shard, sizeof(n->shard), "%s", shard);
        snprintf(n->role, sizeof(n->role), "%s", role);
        n->is_primary = primary;
        atomic_store(&n->up, true);
        atomic_store(&n->lag_bytes, primary ? 0 : -1);
        pthread_mutex_init(&n->mu, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&n->cv, &ca);
        pthread_condattr_destroy(&ca);
        return 0;
}

static void node_destroy(struct node *n)
{
        struct pconn *c, *next;

        if (!n->pg)
                return;
        for (c = n->idle; c; c = next) {
                next = c->next;
                conn_close(c);
        }
        conn_close(n->hc);
        pthread_cond_destroy(&n->cv);
        pthread_mutex_destroy(&n->mu);
}

/* Runs plain SQL (possibly several statements) on c. */
static int conn_sql(struct pconn *c, const char *sql, int64_t deadline, PGresult **out)
{
        PGresult *res;
        int rc;

        if (!PQsendQuery(c->pc, sql)) {
                c->bad = true;
                return KURZ_E_UNAVAILABLE;
        }
        rc = conn_wait(c, deadline, &res, "migration");
        if (rc == 0 && out)
                *out = res;
        else if (rc == 0)
                PQclear(res);
        return rc;
}

/* Migrates the primary of one shard under the advisory lock. */
static int migrate_node(struct node *n, int *version)
{
        int64_t deadline = now_ms() + MIGRATE_MS;
        struct pconn *c;
        PGresult *res;
        char bump[128];
        int cur = 0, rc;

        rc = node_connect(n, now_ms() + n->pg->connect_timeout_ms, &c);
        if (rc < 0)
                return rc;
        rc = conn_sql(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")", deadline, NULL);
        if (rc < 0)
                goto out_close;
        rc = conn_sql(c, "CREATE TABLE IF NOT EXISTS schema_version(version integer NOT NULL)",
                      deadline, NULL);
        if (rc < 0)
                goto out_close;
        for (;;) {
                rc = conn_sql(c, "SELECT coalesce(max(version), 0) FROM schema_version", deadline,
                              &res);
                if (rc < 0)
                        goto out_close;
                cur = (int)col_i64(res, 0, 0);
                PQclear(res);
                if (cur < 0 || cur > KURZ_PG_SCHEMA_VERSION) {
                        kurz_error("pg %s: schema version %d is newer than version %d of this "
                                   "kurz build; upgrade kurz",
                                   n->shard, cur, KURZ_PG_SCHEMA_VERSION);
                        rc = -EPROTO;
                        goto out_close;
                }
                if (cur == KURZ_PG_SCHEMA_VERSION)
                        break;
                rc = conn_sql(c, "BEGIN", deadline, NULL);
                if (rc == 0)
                        rc = conn_sql(c, migrations[cur], deadline, NULL);
                snprintf(bump, sizeof(bump),
                         "DELETE FROM schema_version; INSERT INTO schema_version VALUES(%d)",
                         cur + 1);
                if (rc == 0)
                        rc = conn_sql(c, bump, deadline, NULL);
                if (rc == 0)
                        rc = conn_sql(c, "COMMIT", deadline, NULL);
                if (rc < 0) {
                        conn_sql(c, "ROLLBACK", deadline, NULL);
                        goto out_close;
                }
                kurz_info("pg %s: migrated to schema version %d", n->shard, cur + 1);
        }
        *version = cur;
        conn_sql(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")", deadline, NULL);
out_close:
        conn_close(c);
        return rc;
}

/* Loads the permutation key from shard 0, creating it on first use; the
 * insert-if-absent then read makes racing processes agree. */
static int load_key(struct kurz_pg *pg)
{
        uint8_t fresh[16];
        char hex[40];
        const char *vals[1] = {hex};
        struct pconn *c;
        PGresult *res;
        int rc;

        if (getrandom(fresh, sizeof(fresh), 0) != (ssize_t)sizeof(fresh))
                return -EIO;
        memcpy(hex, "\\x", 2);
        for (int i = 0; i < 16; i++)
                snprintf(hex + 2 + 2 * i, 3, "%02x", fresh[i]);
        rc = pool_get(primary_of(pg, 0), now_ms() + ADMIN_MS, &c);
        if (rc < 0)
                return rc;
        if (!PQsendQueryParams(c->pc,
                               "INSERT INTO meta(key, value) VALUES('" KEY_NAME "', $1::bytea)"
                               " ON CONFLICT (key) DO NOTHING",
                               1, NULL, vals, NULL, NULL, 0)) {
                c->bad = true;
                rc = KURZ_E_UNAVAILABLE;
                goto out_put;
        }
        rc = conn_wait(c, now_ms() + ADMIN_MS, &res, "store permutation key");
        if (rc < 0)
                goto out_put;
        PQclear(res);
        rc = conn_sql(c, "SELECT encode(value, 'hex') FROM meta WHERE key = '" KEY_NAME "'",
                      now_ms() + ADMIN_MS, &res);
        if (rc < 0)
                goto out_put;
        if (PQntuples(res) != 1 || PQgetlength(res, 0, 0) != 32) {
                kurz_error("pg: the stored permutation key is not 16 bytes");
                rc = -EINVAL;
        } else {
                const char *h = PQgetvalue(res, 0, 0);

                for (int i = 0; i < 16; i++) {
                        unsigned v;

                        sscanf(h + 2 * i, "%2x", &v);
                        pg->key[i] = (uint8_t)v;
                }
        }
        PQclear(res);
out_put:
        pool_put(primary_of(pg, 0), c);
        return rc;
}

static void pg_close(struct kurz_store *store)
{
        struct kurz_pg *pg = to_pg(store);

        if (!store)
                return;
        if (pg->background) {
                pthread_mutex_lock(&pg->stop_mu);
                pg->stopping = true;
                pthread_cond_broadcast(&pg->stop_cv);
                pthread_mutex_unlock(&pg->stop_mu);
                pthread_join(pg->thread, NULL);
        }
        for (size_t sh = 0; pg->shards && sh < pg->n_shards; sh++) {
                node_destroy(&pg->shards[sh].primary);
                for (size_t r = 0; r < pg->shards[sh].n_replicas; r++)
                        node_destroy(&pg->shards[sh].replicas[r]);
                free(pg->shards[sh].replicas);
        }
        free(pg->shards);
        kurz_shards_free(pg->map);
        free(pg->tombs);
        pthread_mutex_destroy(&pg->tomb_mu);
        pthread_cond_destroy(&pg->stop_cv);
        pthread_mutex_destroy(&pg->stop_mu);
        free(pg);
}

static const struct kurz_store_ops pg_ops = {
    .lookup = pg_lookup,
    .create_batch = pg_create_batch,
    .remove = pg_remove,
    .add_clicks = pg_add_clicks,
    .cleanup = pg_cleanup,
    .lease_counter = pg_lease_counter,
    .permutation_key = pg_permutation_key,
    .key_add = pg_key_add,
    .key_check = pg_key_check,
    .list = pg_list,
    .count = pg_count,
    .healthy = pg_healthy,
    .close = pg_close,
    .metrics = pg_metrics,
    .stats_link = pg_stats_link,
    .stats_platform = pg_stats_platform,
};

/* Builds the handle and its nodes from the configuration (no I/O). */
static int pg_new(const struct kurz_pg_config *cfg, struct kurz_pg **out)
{
        struct kurz_pg *pg;
        char err[256];
        int rc;

        *out = NULL;
        pg = calloc(1, sizeof(*pg));
        if (!pg)
                return -ENOMEM;
        pthread_mutex_init(&pg->tomb_mu, NULL);
        pthread_mutex_init(&pg->stop_mu, NULL);
        {
                pthread_condattr_t ca;

                pthread_condattr_init(&ca);
                pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
                pthread_cond_init(&pg->stop_cv, &ca);
                pthread_condattr_destroy(&ca);
        }
        pg->store.ops = &pg_ops;
        pg->store.name = "postgres";
        pg->pool_max = cfg->pool_max ? cfg->pool_max : 50;
        pg->min_idle = cfg->pool_min_idle <= pg->pool_max ? cfg->pool_min_idle : pg->pool_max;
        pg->connect_timeout_ms = cfg->connect_timeout_ms ? (int64_t)cfg->connect_timeout_ms : 30000;
        pg->idle_timeout_ms = cfg->idle_timeout_ms ? (int64_t)cfg->idle_timeout_ms : 600000;
        pg->max_lifetime_ms = cfg->max_lifetime_ms ? (int64_t)cfg->max_lifetime_ms : 1800000;
        pg->check_ms = cfg->check_interval_ms ? (int64_t)cfg->check_interval_ms : 1000;
        pg->max_lag = cfg->max_lag_bytes ? (int64_t)cfg->max_lag_bytes : 10485760;
        pg->tombs = calloc(TOMBSTONES, sizeof(*pg->tombs));
        if (!pg->tombs) {
                rc = -ENOMEM;
                goto out_close;
        }
        if (cfg->shards_file && *cfg->shards_file)
                rc = kurz_shards_load(cfg->shards_file, &pg->map, err, sizeof(err));
        else
                rc = kurz_shards_single(cfg->database, cfg->replicas, &pg->map, err, sizeof(err));
        if (rc < 0) {
                kurz_error("pg: %s%s%s",
                           cfg->shards_file && *cfg->shards_file ? cfg->shards_file : "",
                           cfg->shards_file && *cfg->shards_file ? ": " : "",
                           err[0] ? err : strerror(-rc));
                goto out_close;
        }
        pg->shards = calloc(pg->map->n, sizeof(*pg->shards));
        if (!pg->shards) {
                rc = -ENOMEM;
                goto out_close;
        }
        pg->n_shards = pg->map->n;
        for (size_t sh = 0; sh < pg->n_shards; sh++) {
                const struct kurz_shard_def *d = &pg->map->shards[sh];
                struct shard *s = &pg->shards[sh];

                node_init(pg, &s->primary, d->primary, d->name, "primary", true);
                s->replicas = calloc(d->n_replicas ? d->n_replicas : 1, sizeof(*s->replicas));
                if (!s->replicas) {
                        rc = -ENOMEM;
                        goto out_close;
                }
                s->n_replicas = d->n_replicas;
                for (size_t r = 0; r < d->n_replicas; r++) {
                        char role[24];

                        snprintf(role, sizeof(role), "replica%u", (unsigned)r + 1);
                        node_init(pg, &s->replicas[r], d->replicas[r], d->name, role, false);
                }
        }
        *out = pg;
        return 0;

out_close:
        pg_close(&pg->store);
        return rc;
}

int kurz_pg_migrate(const struct kurz_pg_config *cfg, int *version)
{
        struct kurz_pg *pg;
        int rc = 0, v = 0;

        rc = pg_new(cfg, &pg);
        if (rc < 0)
                return rc;
        for (size_t sh = 0; sh < pg->n_shards && rc == 0; sh++)
                rc = migrate_node(&pg->shards[sh].primary, &v);
        if (rc == 0)
                *version = v;
        pg_close(&pg->store);
        return rc;
}

int kurz_pg_open(const struct kurz_pg_config *cfg, struct kurz_store **out)
{
        struct kurz_pg *pg;
        int rc, v = 0;

        *out = NULL;
        rc = pg_new(cfg, &pg);
        if (rc < 0)
                return rc;
        for (size_t sh = 0; sh < pg->n_shards && rc == 0; sh++)
                rc = migrate_node(&pg->shards[sh].primary, &v);
        if (rc == 0)
                rc = load_key(pg);
        if (rc < 0)
                goto out_close;
        if (cfg->background) {
                rc = -pthread_create(&pg->thread, NULL, health_main, pg);
                if (rc < 0)
                        goto out_close;
                pg->background = true;
        }
        *out = &pg->store; /* ownership passes to the caller */
        return 0;

out_close:
        pg_close(&pg->store);
        return rc;
}
