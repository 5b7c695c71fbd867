/* store/ifold.c - a fold covers the rows of links_unindexed up to the last
 * one at its start (seq <= last) and works through them in steps: it reads
 * them (with the code, URL hash and dedupe flag of each link that still
 * exists), writes the link_codes entries in code order, then the link_urls
 * entries in hash order, then deletes the rows. An entry is written only
 * while its link exists (a delete during the fold leaves nothing behind) and
 * written again after a crash (INSERT OR IGNORE), so a fold cut short is
 * simply done again by the next one. */
#include "store/ifold.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"
#include "store/urlmap.h"
#include "util/log.h"

enum {
        S_LAST,
        S_READ,
        S_CODE,
        S_URL,
        S_DONE,
        S_BEGIN,
        S_COMMIT,
        S_ROLLBACK,
        S_SAVE,
        S_UNDO,
        S_RELEASE,
        S_COUNT
};

static const char *const sql[S_COUNT] = {
    [S_LAST] = "SELECT coalesce(max(seq), 0) FROM links_unindexed",
    [S_READ] = "SELECT u.seq, l.id, l.url_hash, l.code, l.dedupe = 1 AND l.is_alias = 0 FROM"
               " links_unindexed u JOIN links l ON l.id = u.id WHERE u.seq > ?1 AND u.seq <= ?2"
               " ORDER BY u.seq LIMIT ?3",
    [S_CODE] = "INSERT OR IGNORE INTO link_codes(code, id) SELECT ?1, ?2 WHERE EXISTS"
               " (SELECT 1 FROM links WHERE id = ?2 AND code = ?1)",
    [S_URL] = "INSERT OR IGNORE INTO link_urls(url_hash, id) SELECT ?1, ?2 WHERE EXISTS"
              " (SELECT 1 FROM links WHERE id = ?2 AND url_hash = ?1)",
    [S_DONE] = "DELETE FROM links_unindexed WHERE seq IN (SELECT seq FROM links_unindexed"
               " WHERE seq <= ?1 ORDER BY seq LIMIT ?2)",
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    /* A step inside a create batch: undone alone when it fails. */
    [S_SAVE] = "SAVEPOINT ifold",
    [S_UNDO] = "ROLLBACK TO ifold",
    [S_RELEASE] = "RELEASE ifold",
};

/* What a fold does next: each phase runs in steps of at most IFOLD_STEP. */
enum phase { P_IDLE, P_READ, P_CODES, P_URLS, P_DONE };

struct entry {
        int64_t id;
        int64_t hash;  /* url_hash as SQLite stores it (signed) */
        uint64_t ckey; /* the code's first 8 bytes, big-endian: sorts like it */
        char code[KURZ_CODE_MAX + 1];
        bool dedupe;
};

struct kurz_ifold {
        sqlite3 *db;
        sqlite3_stmt *st[S_COUNT];
        struct kurz_urlmap *map;
        int64_t fold_ms;
        int64_t last_ms;  /* when the last fold started (monotonic) */
        int64_t retry_ms; /* no step before this after a failed one */
        _Atomic size_t pending;
        _Atomic uint64_t folds;
        /* The fold in progress: its phase, its rows (seq <= last), the
         * last row read (seq), the links read (e, n) in one order (ord), the
         * next entry to write (pos), and the urlmap entries and pending
         * count it covers. A write inside a create batch moves pos (or ends
         * the fold) only when the batch commits: to (t_pos, t_end) until
         * then, t_set while it waits. */
        enum phase phase;
        int64_t last, seq;
        struct entry *e;
        uint32_t *ord;
        size_t n, cap, pos;
        size_t map_mark, counted;
        size_t t_pos;
        bool t_end, t_set;
};

static int64_t mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(struct kurz_ifold *f, int rc, const char *what)
{
        kurz_error("sqlite: index fold: %s: %s (%d)", what, sqlite3_errmsg(f->db), rc);
        return (rc & 0xff) == SQLITE_NOMEM ? -ENOMEM : KURZ_E_UNAVAILABLE;
}

static int run(struct kurz_ifold *f, int id)
{
        int rc;

        while ((rc = sqlite3_step(f->st[id])) == SQLITE_ROW)
                ;
        sqlite3_reset(f->st[id]);
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

void kurz_ifold_free(struct kurz_ifold *f)
{
        if (!f)
                return;
        for (int i = 0; i < S_COUNT; i++)
                sqlite3_finalize(f->st[i]);
        kurz_urlmap_free(f->map);
        free(f->e);
        free(f->ord);
        free(f);
}

/* Reads up to limit links of the rows seq in (f->seq, f->last] into f->e,
 * advancing f->seq; with map, their dedupe entries go into the urlmap too
 * (at open). Returns how many rows it read, or an error. */
static int read_rows(struct kurz_ifold *f, size_t limit, bool map)
{
        sqlite3_stmt *st = f->st[S_READ];
        int rc, rows = 0;

        sqlite3_bind_int64(st, 1, f->seq);
        sqlite3_bind_int64(st, 2, f->last);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct entry *x;
                int len = sqlite3_column_bytes(st, 3);

                rows++;
                if (len <= 0 || len > KURZ_CODE_MAX) {
                        f->seq = sqlite3_column_int64(st, 0);
                        continue; /* not a code kurz stores */
                }
                if (f->n == f->cap) {
                        size_t ncap = f->cap ? f->cap * 2 : 1024;

                        x = realloc(f->e, ncap * sizeof(*x));
                        if (!x) {
                                sqlite3_reset(st);
                                return -ENOMEM;
                        }
                        f->e = x;
                        f->cap = ncap;
                }
                x = &f->e[f->n++];
                x->id = sqlite3_column_int64(st, 1);
                x->hash = sqlite3_column_int64(st, 2);
                memcpy(x->code, sqlite3_column_text(st, 3), (size_t)len);
                x->code[len] = '\0';
                x->ckey = 0;
                for (int i = 0; i < 8; i++)
                        x->ckey = x->ckey << 8 | (uint8_t)(i < len ? x->code[i] : 0);
                x->dedupe = sqlite3_column_int(st, 4) != 0;
                if (map && x->dedupe && kurz_urlmap_add(f->map, (uint64_t)x->hash, x->id) < 0) {
                        f->n--;
                        sqlite3_reset(st);
                        return -ENOMEM;
                }
                f->seq = sqlite3_column_int64(st, 0); /* read: the next read goes on after it */
        }
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? rows : fail(f, rc, "read unindexed links");
}

/* The last row of links_unindexed now, into *last. */
static int last_seq(struct kurz_ifold *f, int64_t *last)
{
        sqlite3_stmt *st = f->st[S_LAST];
        int rc = sqlite3_step(st);

        if (rc == SQLITE_ROW)
                *last = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        return rc == SQLITE_ROW ? 0 : fail(f, rc, "read unindexed links");
}

int kurz_ifold_open(sqlite3 *db, int64_t fold_ms, bool load, struct kurz_ifold **out)
{
        struct kurz_ifold *f = calloc(1, sizeof(*f));
        int rc;

        *out = NULL;
        if (!f)
                return -ENOMEM;
        f->db = db;
        f->fold_ms = fold_ms;
        f->last_ms = mono_ms();
        f->map = kurz_urlmap_new();
        if (!f->map) {
                kurz_ifold_free(f);
                return -ENOMEM;
        }
        for (int i = 0; i < S_COUNT; i++) {
                rc = sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &f->st[i], NULL);
                if (rc != SQLITE_OK) {
                        rc = fail(f, rc, sql[i]);
                        kurz_ifold_free(f);
                        return rc;
                }
        }
        /* Every row a stop or crash left: its link's dedupe entry. */
        rc = load ? last_seq(f, &f->last) : 0;
        while (load && rc == 0 && (rc = read_rows(f, 65536, true)) > 0)
                ;
        if (rc < 0) {
                kurz_ifold_free(f);
                return rc;
        }
        f->pending = f->n;
        f->n = 0;
        f->seq = 0;
        *out = f;
        return 0;
}

size_t kurz_ifold_mark(const struct kurz_ifold *f)
{
        return kurz_urlmap_size(f->map);
}

int kurz_ifold_added(struct kurz_ifold *f, uint64_t url_hash, int64_t id)
{
        return kurz_urlmap_add(f->map, url_hash, id);
}

void kurz_ifold_rollback(struct kurz_ifold *f, size_t mark)
{
        kurz_urlmap_truncate(f->map, mark);
        f->t_set = false; /* the batch's piece of the fold is undone */
}

static void confirm(struct kurz_ifold *f);

void kurz_ifold_committed(struct kurz_ifold *f, size_t created)
{
        f->pending += created;
        confirm(f);
}

int kurz_ifold_next(const struct kurz_ifold *f, uint64_t url_hash, size_t *cursor, int64_t *id)
{
        return kurz_urlmap_next(f->map, url_hash, cursor, id);
}

size_t kurz_ifold_pending(const struct kurz_ifold *f)
{
        return atomic_load(&f->pending);
}

uint64_t kurz_ifold_folds(const struct kurz_ifold *f)
{
        return atomic_load(&f->folds);
}

static int by_code_cmp(const void *a, const void *b, void *arg)
{
        const struct entry *x = (const struct entry *)arg + *(const uint32_t *)a;
        const struct entry *y = (const struct entry *)arg + *(const uint32_t *)b;

        if (x->ckey != y->ckey)
                return x->ckey < y->ckey ? -1 : 1;
        return strcmp(x->code, y->code);
}

static int by_hash_cmp(const void *a, const void *b, void *arg)
{
        const struct entry *x = (const struct entry *)arg + *(const uint32_t *)a;
        const struct entry *y = (const struct entry *)arg + *(const uint32_t *)b;

        if (x->hash != y->hash)
                return x->hash < y->hash ? -1 : 1;
        return (x->id > y->id) - (x->id < y->id);
}

/* Puts f->ord in the order of cmp. */
static void order(struct kurz_ifold *f, int (*cmp)(const void *, const void *, void *))
{
        for (size_t i = 0; i < f->n; i++)
                f->ord[i] = (uint32_t)i;
        qsort_r(f->ord, f->n, sizeof(*f->ord), cmp, f->e);
}

/* Writes the entry of the link at f->ord[i] in the current phase. */
static int write_entry(struct kurz_ifold *f, size_t i)
{
        const struct entry *x = &f->e[f->ord[i]];
        sqlite3_stmt *st;

        if (f->phase == P_CODES) {
                if (x->id < 0)
                        return SQLITE_OK; /* its link_codes row came with it */
                st = f->st[S_CODE];
                sqlite3_bind_text(st, 1, x->code, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, x->id);
                return run(f, S_CODE);
        }
        if (!x->dedupe)
                return SQLITE_OK;
        st = f->st[S_URL];
        sqlite3_bind_int64(st, 1, x->hash);
        sqlite3_bind_int64(st, 2, x->id);
        return run(f, S_URL);
}

/* Starts a fold of every row there is now. */
static int start(struct kurz_ifold *f)
{
        int rc = last_seq(f, &f->last);

        if (rc < 0)
                return rc;
        f->map_mark = kurz_urlmap_size(f->map);
        f->counted = f->pending;
        f->seq = 0;
        f->n = 0;
        f->t_set = false;
        f->phase = P_READ;
        f->last_ms = mono_ms();
        return 0;
}

/* The fold is through: its links leave the urlmap and the pending count. */
static void finish(struct kurz_ifold *f)
{
        kurz_urlmap_drop_oldest(f->map, f->map_mark);
        f->pending -= f->counted < f->pending ? f->counted : f->pending;
        f->folds++;
        f->phase = P_IDLE;
        free(f->e);
        free(f->ord);
        f->e = NULL;
        f->ord = NULL;
        f->n = f->cap = 0;
}

/* Writes the next piece of the current phase inside the open transaction:
 * entries [pos, pos + IFOLD_STEP), or the deletion of the next IFOLD_STEP
 * rows. Where it got to waits in (t_pos, t_end) for the commit. */
static int write_piece(struct kurz_ifold *f)
{
        int rc = SQLITE_OK;

        if (f->phase == P_DONE) {
                sqlite3_bind_int64(f->st[S_DONE], 1, f->last);
                sqlite3_bind_int64(f->st[S_DONE], 2, IFOLD_STEP);
                rc = run(f, S_DONE);
                f->t_end = sqlite3_changes(f->db) < (int)IFOLD_STEP;
        } else {
                f->t_pos = f->pos + IFOLD_STEP < f->n ? f->pos + IFOLD_STEP : f->n;
                for (size_t i = f->pos; rc == SQLITE_OK && i < f->t_pos; i++)
                        rc = write_entry(f, i);
        }
        f->t_set = rc == SQLITE_OK;
        return rc;
}

/* The transaction of the piece committed: the fold moves on. */
static void confirm(struct kurz_ifold *f)
{
        if (!f->t_set)
                return;
        f->t_set = false;
        if (f->phase != P_DONE)
                f->pos = f->t_pos;
        else if (f->t_end)
                finish(f);
}

/* One step of the fold: a bounded piece of one phase. Inside a create batch
 * (in_tx) a piece joins its transaction; otherwise it has its own. */
static int step(struct kurz_ifold *f, bool in_tx)
{
        int rc;

        switch (f->phase) {
        case P_IDLE:
                return 0;
        case P_READ:
                rc = read_rows(f, IFOLD_STEP, false);
                if (rc < 0)
                        return rc;
                if (rc > 0)
                        return 0;
                free(f->ord);
                f->ord = malloc((f->n ? f->n : 1) * sizeof(*f->ord));
                if (!f->ord)
                        return -ENOMEM;
                order(f, by_code_cmp);
                f->phase = P_CODES;
                f->pos = 0;
                return 0;
        case P_CODES:
        case P_URLS:
                if (f->pos == f->n) {
                        if (f->phase == P_CODES) {
                                order(f, by_hash_cmp);
                                f->phase = P_URLS;
                        } else {
                                f->phase = P_DONE;
                        }
                        f->pos = 0;
                        return 0;
                }
                break;
        case P_DONE:
                break;
        }
        if (in_tx)
                return write_piece(f) == SQLITE_OK ? 0 : fail(f, sqlite3_errcode(f->db), "write");
        rc = run(f, S_BEGIN);
        if (rc == SQLITE_OK)
                rc = write_piece(f);
        if (rc == SQLITE_OK)
                rc = run(f, S_COMMIT);
        if (rc != SQLITE_OK) {
                rc = fail(f, rc, "write");
                f->t_set = false;
                if (!sqlite3_get_autocommit(f->db))
                        (void)run(f, S_ROLLBACK);
                return rc;
        }
        confirm(f);
        return 0;
}

/* Starts a fold when one is due and none runs. */
static int start_if_due(struct kurz_ifold *f, int64_t now)
{
        size_t pending = f->pending;

        if (f->phase != P_IDLE || pending == 0 ||
            (pending < IFOLD_ROWS && now - f->last_ms < f->fold_ms))
                return 0;
        return start(f);
}

int kurz_ifold_batch_step(struct kurz_ifold *f)
{
        int64_t now = mono_ms();
        int rc;

        if (now < f->retry_ms)
                return 0;
        rc = run(f, S_SAVE);
        if (rc != SQLITE_OK)
                return fail(f, rc, "savepoint");
        rc = start_if_due(f, now);
        if (rc == 0)
                rc = step(f, true);
        if (rc == 0) {
                rc = run(f, S_RELEASE);
                return rc == SQLITE_OK ? 0 : fail(f, rc, "release");
        }
        /* The fold waits; the batch goes on without its step, unless the
         * failure took the whole transaction with it (I/O, disk full). */
        f->retry_ms = now + 1000;
        f->t_set = false;
        if (sqlite3_get_autocommit(f->db))
                return rc;
        (void)run(f, S_UNDO);
        (void)run(f, S_RELEASE);
        return 0;
}

int kurz_ifold_work(struct kurz_ifold *f, int64_t budget_ms)
{
        int64_t t0 = mono_ms();
        int rc;

        if (t0 < f->retry_ms)
                return 0;
        rc = start_if_due(f, t0);
        while (rc == 0 && f->phase != P_IDLE) {
                rc = step(f, false);
                if (mono_ms() - t0 >= budget_ms)
                        break;
        }
        if (rc < 0)
                f->retry_ms = mono_ms() + 1000;
        return rc;
}
