/* tests/unit/test_sqlite.c - the embedded SQLite store against a real file in
 * a temporary data dir: schema and migrations, creates (generated codes,
 * dedupe, aliases, collisions, whole-batch failure), reads, clicks, cleanup,
 * counters and keys that survive a reopen, and the data-dir lock. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "store/sqlite.h"
#include "test.h"
#include "sqlite_file.h"
#include "util/hash.h"

static char root[] = "/tmp/kurz-test-sqlite-XXXXXX";
static int dir_seq;

/* A fresh data dir under root for one test. */
static void new_dir(char *out, size_t cap)
{
        snprintf(out, cap, "%s/d%d", root, dir_seq++);
}

static struct kurz_store *open_store(const char *dir)
{
        struct kurz_sqlite_config cfg = {.data_dir = dir, .readers = 2};
        struct kurz_store *s = NULL;
        int rc = kurz_sqlite_open(&cfg, &s);

        CHECK_EQ_INT(rc, 0);
        return s;
}

/* A code generator for tests: "g<n>" from a counter, after first handing out
 * the scripted codes (to force collisions). A scripted NULL means "fail". */
struct gen {
        int next;
        const char *const *script;
        size_t nscript, pos;
        int calls;
};

static int gen_fn(void *arg, char *out, size_t cap)
{
        struct gen *g = arg;

        g->calls++;
        if (g->pos < g->nscript) {
                const char *code = g->script[g->pos++];

                if (!code)
                        return -EAGAIN;
                snprintf(out, cap, "%s", code);
                return 0;
        }
        snprintf(out, cap, "g%d", g->next++);
        return 0;
}

static struct kurz_create mk(const char *url, const char *alias, bool dedupe)
{
        return (struct kurz_create){
            .url = url,
            .url_len = strlen(url),
            .url_hash = kurz_hash(url, strlen(url)),
            .alias = alias,
            .created_at = 1000,
            .expires_at = 0,
            .dedupe = dedupe,
        };
}

static void test_migrate(void)
{
        char dir[256];
        int version = -1;
        struct kurz_store *s;

        new_dir(dir, sizeof(dir));
        CHECK_EQ_INT(kurz_sqlite_migrate(dir, &version), 0);
        CHECK_EQ_INT(version, KURZ_SQLITE_SCHEMA_VERSION);
        CHECK_EQ_INT(query_file(dir, "SELECT max(version) FROM schema_version"),
                     KURZ_SQLITE_SCHEMA_VERSION);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                     " AND name IN ('meta', 'counters', 'links',"
                                     " 'clicks_daily', 'api_keys', 'schema_version')"),
                     6);
        /* Schema 5: links by integer id; its code and URL indexes are tables
         * of their own, with the expiry index the only one on links. */
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                     " AND name IN ('link_codes', 'link_urls', 'links_unindexed')"),
                     3);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                                     " AND tbl_name = 'links' AND sql IS NOT NULL"),
                     1);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM pragma_journal_mode"
                                     " WHERE journal_mode = 'wal'"),
                     1);
        /* Idempotent, and possible while a server holds the data dir. */
        s = open_store(dir);
        version = -1;
        CHECK_EQ_INT(kurz_sqlite_migrate(dir, &version), 0);
        CHECK_EQ_INT(version, KURZ_SQLITE_SCHEMA_VERSION);
        if (s)
                s->ops->close(s);
        /* A file from a newer kurz is refused. */
        exec_file(dir, "UPDATE schema_version SET version = 99");
        CHECK(kurz_sqlite_migrate(dir, &version) < 0);
        {
                struct kurz_sqlite_config cfg = {.data_dir = dir};

                CHECK(kurz_sqlite_open(&cfg, &s) < 0);
                CHECK(s == NULL);
        }
}

static void test_create_generated_and_lookup(void)
{
        char dir[256];
        struct gen g = {0};
        struct kurz_create it[3] = {mk("https://a.example/1", NULL, false),
                                    mk("https://a.example/2", NULL, false),
                                    mk("https://a.example/3", NULL, false)};
        struct kurz_link l;
        struct kurz_store *s;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        if (!s)
                return;
        it[1].expires_at = 5000;
        CHECK_EQ_INT(s->ops->create_batch(s, it, 3, gen_fn, &g), 0);
        for (int i = 0; i < 3; i++)
                CHECK_EQ_INT(it[i].status, KURZ_CREATE_NEW);
        CHECK_EQ_STR(it[0].code, "g0");
        CHECK_EQ_STR(it[1].code, "g1");
        CHECK_EQ_STR(it[2].code, "g2");
        CHECK_EQ_INT(it[1].out_created_at, 1000);
        CHECK_EQ_INT(it[1].out_expires_at, 5000);

        memset(&l, 0, sizeof(l));
        CHECK_EQ_INT(s->ops->lookup(s, "g1", 2, &l), 0);
        CHECK_EQ_STR(l.code, "g1");
        CHECK_EQ_STR(l.url, "https://a.example/2");
        CHECK_EQ_INT(l.url_len, strlen("https://a.example/2"));
        CHECK_EQ_INT(l.created_at, 1000);
        CHECK_EQ_INT(l.expires_at, 5000);
        CHECK_EQ_INT(l.clicks, 0);
        CHECK_EQ_INT(l.last_access, 0);
        free(l.url);
        /* The code is compared in full, not as a prefix. */
        CHECK_EQ_INT(s->ops->lookup(s, "g1x", 2, &l), 0);
        free(l.url);
        CHECK_EQ_INT(s->ops->lookup(s, "g1x", 3, &l), KURZ_E_NOTFOUND);
        CHECK_EQ_INT(s->ops->lookup(s, "nope", 4, &l), KURZ_E_NOTFOUND);
        CHECK_EQ_INT(s->ops->lookup(s, "", 0, &l), KURZ_E_NOTFOUND);
        s->ops->close(s);
}

static void test_dedupe(void)
{
        char dir[256];
        struct gen g = {0};
        struct kurz_create a = mk("https://d.example/x", NULL, true);
        struct kurz_create it[4];
        struct kurz_store *s;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        if (!s)
                return;
        CHECK_EQ_INT(s->ops->create_batch(s, &a, 1, gen_fn, &g), 0);
        CHECK_EQ_INT(a.status, KURZ_CREATE_NEW);

        /* Same URL again, later: the existing link and its times. */
        it[0] = mk("https://d.example/x", NULL, true);
        it[0].created_at = 2000;
        /* Same hash, different bytes: never merged. */
        it[1] = mk("https://d.example/y", NULL, true);
        it[1].url_hash = a.url_hash;
        /* Without dedupe: a new link even for the same URL. */
        it[2] = mk("https://d.example/x", NULL, false);
        /* An alias with the same URL is its own link. */
        it[3] = mk("https://d.example/x", "myalias", true);
        CHECK_EQ_INT(s->ops->create_batch(s, it, 4, gen_fn, &g), 0);
        CHECK_EQ_INT(it[0].status, KURZ_CREATE_EXISTING);
        CHECK_EQ_STR(it[0].code, a.code);
        CHECK_EQ_INT(it[0].out_created_at, 1000);
        CHECK_EQ_INT(it[1].status, KURZ_CREATE_NEW);
        CHECK(strcmp(it[1].code, a.code) != 0);
        CHECK_EQ_INT(it[2].status, KURZ_CREATE_NEW);
        CHECK(strcmp(it[2].code, a.code) != 0);
        CHECK_EQ_INT(it[3].status, KURZ_CREATE_NEW);
        CHECK_EQ_STR(it[3].code, "myalias");

        /* Two identical new URLs in one batch get one code. */
        it[0] = mk("https://d.example/twice", NULL, true);
        it[1] = mk("https://d.example/twice", NULL, true);
        CHECK_EQ_INT(s->ops->create_batch(s, it, 2, gen_fn, &g), 0);
        CHECK_EQ_INT(it[0].status, KURZ_CREATE_NEW);
        CHECK_EQ_INT(it[1].status, KURZ_CREATE_EXISTING);
        CHECK_EQ_STR(it[1].code, it[0].code);

        /* An expired link is not handed out again. */
        it[0] = mk("https://d.example/old", NULL, true);
        it[0].expires_at = 1500;
        CHECK_EQ_INT(s->ops->create_batch(s, it, 1, gen_fn, &g), 0);
        it[1] = mk("https://d.example/old", NULL, true);
        it[1].created_at = 1600;
        CHECK_EQ_INT(s->ops->create_batch(s, &it[1], 1, gen_fn, &g), 0);
        CHECK_EQ_INT(it[1].status, KURZ_CREATE_NEW);
        CHECK(strcmp(it[1].code, it[0].code) != 0);
        s->ops->close(s);
}

static void test_alias(void)
{
        char dir[256];
        struct gen g = {0};
        struct kurz_create it[4];
        struct kurz_store *s;
        struct kurz_link l;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        if (!s)
                return;
        it[0] = mk("https://al.example/1", "promo", false);
        it[1] = mk("https://al.example/2", "promo", false);
        it[2] = mk("https://al.example/3", NULL, false);
        CHECK_EQ_INT(s->ops->create_batch(s, it, 3, gen_fn, &g), 0);
        CHECK_EQ_INT(it[0].status, KURZ_CREATE_NEW);
        CHECK_EQ_STR(it[0].code, "promo");
        CHECK_EQ_INT(it[1].status, KURZ_CREATE_ALIAS_TAKEN);
        CHECK_EQ_INT(it[2].status, KURZ_CREATE_NEW);

        it[0] = mk("https://al.example/4", "promo", false);
        it[1] = mk("https://al.example/5", "other", false);
        CHECK_EQ_INT(s->ops->create_batch(s, it, 2, gen_fn, &g), 0);
        CHECK_EQ_INT(it[0].status, KURZ_CREATE_ALIAS_TAKEN);
        CHECK_EQ_INT(it[1].status, KURZ_CREATE_NEW);

        /* The taken alias still points at its first URL. */
        CHECK_EQ_INT(s->ops->lookup(s, "promo", 5, &l), 0);
        CHECK_EQ_STR(l.url, "https://al.example/1");
        free(l.url);
        CHECK_EQ_INT(s->ops->lookup(s, "other", 5, &l), 0);
        free(l.url);

        /* An alias longer than KURZ_CODE_MAX fails alone. */
        char longalias[KURZ_CODE_MAX + 2];
        memset(longalias, 'a', sizeof(longalias) - 1);
        longalias[sizeof(longalias) - 1] = '\0';
        it[0] = mk("https://al.example/6", longalias, false);
        it[1] = mk("https://al.example/7", NULL, false);
        CHECK_EQ_INT(s->ops->create_batch(s, it, 2, gen_fn, &g), 0);
        CHECK_EQ_INT(it[0].status, KURZ_CREATE_FAILED);
        CHECK_EQ_INT(it[0].err, -EINVAL);
        CHECK_EQ_INT(it[1].status, KURZ_CREATE_NEW);
        s->ops->close(s);
}

static void test_generated_collision(void)
{
        char dir[256];
        static const char *const retry[] = {"taken", "fresh"};
        static const char *const stuck[] = {"taken", "taken", "taken", "taken",
                                            "taken", "taken", "taken", "taken"};
        static const char *const failing[] = {NULL};
        struct gen g = {0};
        struct kurz_create it[2];
        struct kurz_store *s;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        if (!s)
                return;
        it[0] = mk("https://c.example/0", "taken", false);
        CHECK_EQ_INT(s->ops->create_batch(s, it, 1, gen_fn, &g), 0);

        g = (struct gen){.script = retry, .nscript = 2};
        it[0] = mk("https://c.example/1", NULL, false);
        CHECK_EQ_INT(s->ops->create_batch(s, it, 1, gen_fn, &g), 0);
        CHECK_EQ_INT(it[0].status, KURZ_CREATE_NEW);
        CHECK_EQ_STR(it[0].code, "fresh");
        CHECK_EQ_INT(g.calls, 2);

        /* Retries are bounded; the rest of the batch is unaffected. */
        g = (struct gen){.script = stuck, .nscript = 8};
        it[0] = mk("https://c.example/2", NULL, false);
        it[1] = mk("https://c.example/3", NULL, false);
        CHECK_EQ_INT(s->ops->create_batch(s, it, 2, gen_fn, &g), 0);
        CHECK_EQ_INT(it[0].status, KURZ_CREATE_FAILED);
        CHECK_EQ_INT(it[0].err, -EEXIST);
        CHECK_EQ_INT(it[1].status, KURZ_CREATE_NEW);
        CHECK_EQ_STR(it[1].code, "g0");

        /* A generator error fails that item only, with that error. */
        g = (struct gen){.script = failing, .nscript = 1, .next = 10};
        it[0] = mk("https://c.example/4", NULL, false);
        it[1] = mk("https://c.example/5", NULL, false);
        CHECK_EQ_INT(s->ops->create_batch(s, it, 2, gen_fn, &g), 0);
        CHECK_EQ_INT(it[0].status, KURZ_CREATE_FAILED);
        CHECK_EQ_INT(it[0].err, -EAGAIN);
        CHECK_EQ_INT(it[1].status, KURZ_CREATE_NEW);
        CHECK_EQ_STR(it[1].code, "g10");
        s->ops->close(s);
}

static void test_remove(void)
{
        char dir[256];
        struct gen g = {0};
        struct kurz_create it = mk("https://r.example/", NULL, true);
        struct kurz_click k = {.code = "g0", .day = 5, .count = 1, .last_access = 1};
        struct kurz_store *s;
        struct kurz_link l;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        if (!s)
                return;
        CHECK_EQ_INT(s->ops->create_batch(s, &it, 1, gen_fn, &g), 0);
        CHECK_EQ_INT(s->ops->add_clicks(s, &k, 1), 0);
        CHECK_EQ_INT(s->ops->remove(s, "g0", 2), 0);
        CHECK_EQ_INT(s->ops->lookup(s, "g0", 2, &l), KURZ_E_NOTFOUND);
        CHECK_EQ_INT(s->ops->remove(s, "g0", 2), KURZ_E_NOTFOUND);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM clicks_daily"), 0);
        /* A removed URL is not deduplicated against any more. */
        it = mk("https://r.example/", NULL, true);
        CHECK_EQ_INT(s->ops->create_batch(s, &it, 1, gen_fn, &g), 0);
        CHECK_EQ_INT(it.status, KURZ_CREATE_NEW);
        CHECK_EQ_STR(it.code, "g1");
        s->ops->close(s);
}

static void test_add_clicks(void)
{
        char dir[256];
        struct gen g = {0};
        struct kurz_create it = mk("https://k.example/", NULL, false);
        struct kurz_click k[4] = {
            {.code = "g0", .day = 100, .count = 3, .last_access = 8640000},
            {.code = "g0", .day = 101, .count = 4, .last_access = 8726400},
            {.code = "gone", .day = 100, .count = 7, .last_access = 8640000},
            {.code = "g0", .day = 100, .count = 2, .last_access = 8640500},
        };
        struct kurz_store *s;
        struct kurz_link l;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        if (!s)
                return;
        CHECK_EQ_INT(s->ops->create_batch(s, &it, 1, gen_fn, &g), 0);
        CHECK_EQ_INT(s->ops->add_clicks(s, k, 4), 0);
        CHECK_EQ_INT(s->ops->lookup(s, "g0", 2, &l), 0);
        CHECK_EQ_INT(l.clicks, 9);
        CHECK_EQ_INT(l.last_access, 8726400); /* the latest, not the last flushed */
        free(l.url);
        s->ops->close(s);
        CHECK_EQ_INT(query_file(dir, "SELECT clicks FROM clicks_daily WHERE code = 'g0'"
                                     " AND day = 100"),
                     5);
        CHECK_EQ_INT(query_file(dir, "SELECT clicks FROM clicks_daily WHERE code = 'g0'"
                                     " AND day = 101"),
                     4);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM clicks_daily WHERE code = 'gone'"), 0);
}

static bool has_code(char (*codes)[KURZ_CODE_MAX + 1], int n, const char *code)
{
        for (int i = 0; i < n; i++)
                if (strcmp(codes[i], code) == 0)
                        return true;
        return false;
}

static void test_cleanup(void)
{
        char dir[256];
        struct gen g = {0};
        struct kurz_create it[5];
        struct kurz_click k[3] = {
            {.code = "used", .day = 1, .count = 1, .last_access = 60},
            {.code = "expired", .day = 1, .count = 1, .last_access = 20},
            {.code = "live", .day = 1, .count = 1, .last_access = 55},
        };
        char(*codes)[KURZ_CODE_MAX + 1] = NULL;
        struct kurz_store *s;
        struct kurz_link l;
        int n;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        if (!s)
                return;
        it[0] = mk("https://x.example/expired", "expired", false);
        it[0].created_at = 10;
        it[0].expires_at = 100;
        it[1] = mk("https://x.example/live", "live", false);
        it[1].created_at = 10;
        it[1].expires_at = 1000;
        it[2] = mk("https://x.example/unused", "unused", false);
        it[2].created_at = 10;
        it[3] = mk("https://x.example/used", "used", false);
        it[3].created_at = 10;
        it[4] = mk("https://x.example/new", "new", false);
        it[4].created_at = 70;
        CHECK_EQ_INT(s->ops->create_batch(s, it, 5, gen_fn, &g), 0);
        CHECK_EQ_INT(s->ops->add_clicks(s, k, 3), 0);

        /* Without unused_before only expired links go. */
        n = s->ops->cleanup(s, 200, 0, 10, &codes);
        CHECK_EQ_INT(n, 1);
        if (n == 1)
                CHECK_EQ_STR(codes[0], "expired");
        free(codes);
        CHECK_EQ_INT(s->ops->lookup(s, "expired", 7, &l), KURZ_E_NOTFOUND);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM clicks_daily WHERE code ="
                                     " 'expired'"),
                     0);
        n = s->ops->cleanup(s, 200, 0, 10, &codes);
        CHECK_EQ_INT(n, 0);
        CHECK(codes == NULL);

        /* Unused: created and last accessed before 50. Bounded by batch. */
        n = s->ops->cleanup(s, 200, 50, 10, &codes);
        CHECK_EQ_INT(n, 1);
        if (n == 1)
                CHECK_EQ_STR(codes[0], "unused");
        free(codes);
        CHECK_EQ_INT(s->ops->lookup(s, "used", 4, &l), 0);
        free(l.url);
        CHECK_EQ_INT(s->ops->lookup(s, "new", 3, &l), 0);
        free(l.url);
        CHECK_EQ_INT(s->ops->lookup(s, "live", 4, &l), 0);
        free(l.url);

        /* live expires at 1000, used was last accessed at 60. */
        n = s->ops->cleanup(s, 2000, 65, 1, &codes);
        CHECK_EQ_INT(n, 1);
        if (n == 1)
                CHECK_EQ_STR(codes[0], "live");
        free(codes);
        n = s->ops->cleanup(s, 2000, 65, 10, &codes);
        CHECK_EQ_INT(n, 1);
        if (n >= 1)
                CHECK(has_code(codes, n, "used"));
        free(codes);
        CHECK_EQ_INT(s->ops->lookup(s, "new", 3, &l), 0);
        free(l.url);
        s->ops->close(s);
}

/* A generator that leases a counter block inside the open batch, as the
 * compact code generator does. */
static int lease_gen(void *arg, char *out, size_t cap)
{
        struct kurz_store *s = arg;
        uint64_t v;
        int rc = s->ops->lease_counter(s, 1, &v);

        if (rc < 0)
                return rc;
        snprintf(out, cap, "L%llu", (unsigned long long)v);
        return 0;
}

static void test_lease_counter(void)
{
        char dir[256];
        uint64_t a = 0, b = 0, c = 0;
        struct kurz_create it[2];
        struct kurz_store *s;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        if (!s)
                return;
        CHECK_EQ_INT(s->ops->lease_counter(s, 10, &a), 0);
        CHECK_EQ_INT(s->ops->lease_counter(s, 5, &b), 0);
        CHECK_EQ_INT(b, a + 10);
        CHECK_EQ_INT(s->ops->lease_counter(s, 0, &c), -EINVAL);
        /* Inside a create batch, re-entrantly on the write connection. */
        it[0] = mk("https://l.example/1", NULL, false);
        it[1] = mk("https://l.example/2", NULL, false);
        CHECK_EQ_INT(s->ops->create_batch(s, it, 2, lease_gen, s), 0);
        CHECK_EQ_INT(it[0].status, KURZ_CREATE_NEW);
        CHECK_EQ_INT(it[1].status, KURZ_CREATE_NEW);
        char want[32];
        snprintf(want, sizeof(want), "L%llu", (unsigned long long)(b + 5));
        CHECK_EQ_STR(it[0].code, want);
        snprintf(want, sizeof(want), "L%llu", (unsigned long long)(b + 6));
        CHECK_EQ_STR(it[1].code, want);
        s->ops->close(s);

        s = open_store(dir);
        if (!s)
                return;
        CHECK_EQ_INT(s->ops->lease_counter(s, 1, &c), 0);
        CHECK_EQ_INT(c, b + 7);
        s->ops->close(s);
}

static void test_permutation_key(void)
{
        char dir[256], dir2[256];
        uint8_t k1[16], k2[16], k3[16], zero[16] = {0};
        struct kurz_store *s;

        new_dir(dir, sizeof(dir));
        new_dir(dir2, sizeof(dir2));
        s = open_store(dir);
        if (!s)
                return;
        CHECK_EQ_INT(s->ops->permutation_key(s, k1), 0);
        CHECK(memcmp(k1, zero, 16) != 0);
        s->ops->close(s);
        s = open_store(dir);
        if (!s)
                return;
        CHECK_EQ_INT(s->ops->permutation_key(s, k2), 0);
        CHECK(memcmp(k1, k2, 16) == 0);
        s->ops->close(s);
        /* Another store gets its own random key. */
        s = open_store(dir2);
        if (!s)
                return;
        CHECK_EQ_INT(s->ops->permutation_key(s, k3), 0);
        CHECK(memcmp(k1, k3, 16) != 0);
        s->ops->close(s);
}

static void test_api_keys(void)
{
        char dir[256];
        const char *h1 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        const char *h2 = "1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        struct kurz_store *s;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        if (!s)
                return;
        CHECK_EQ_INT(s->ops->key_check(s, h1), KURZ_E_NOTFOUND);
        CHECK_EQ_INT(s->ops->key_add(s, h1, "ops"), 0);
        CHECK_EQ_INT(s->ops->key_add(s, h1, "ops again"), 0);
        CHECK_EQ_INT(s->ops->key_check(s, h1), 0);
        CHECK_EQ_INT(s->ops->key_check(s, h2), KURZ_E_NOTFOUND);
        CHECK_EQ_INT(s->ops->key_check(s, "0123"), KURZ_E_NOTFOUND);
        CHECK_EQ_INT(s->ops->key_add(s, "short", NULL), -EINVAL);
        s->ops->close(s);
}

static void test_list(void)
{
        char dir[256];
        static char alias[1100][16];
        static struct kurz_create it[1100];
        struct gen g = {0};
        struct kurz_link *links = NULL;
        struct kurz_store *s;
        int n;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        if (!s)
                return;
        for (int i = 0; i < 1100; i++) {
                snprintf(alias[i], sizeof(alias[i]), "c%04d", i);
                it[i] = mk("https://list.example/", alias[i], false);
        }
        CHECK_EQ_INT(s->ops->create_batch(s, it, 1100, gen_fn, &g), 0);
        n = s->ops->list(s, NULL, 10, &links);
        CHECK_EQ_INT(n, 10);
        if (n == 10) {
                CHECK_EQ_STR(links[0].code, "c0000");
                CHECK_EQ_STR(links[9].code, "c0009");
                CHECK_EQ_STR(links[9].url, "https://list.example/");
        }
        kurz_store_links_free(links, n > 0 ? (size_t)n : 0);
        n = s->ops->list(s, "c0009", 10, &links);
        CHECK_EQ_INT(n, 10);
        if (n == 10) {
                CHECK_EQ_STR(links[0].code, "c0010");
                CHECK_EQ_STR(links[9].code, "c0019");
        }
        kurz_store_links_free(links, n > 0 ? (size_t)n : 0);
        n = s->ops->list(s, "c1095", 10, &links);
        CHECK_EQ_INT(n, 4);
        kurz_store_links_free(links, n > 0 ? (size_t)n : 0);
        n = s->ops->list(s, "c1099", 10, &links);
        CHECK_EQ_INT(n, 0);
        CHECK(links == NULL);
        /* The limit is bounded. */
        n = s->ops->list(s, "", 5000, &links);
        CHECK_EQ_INT(n, 1000);
        kurz_store_links_free(links, n > 0 ? (size_t)n : 0);
        s->ops->close(s);
}

static void test_count_and_health(void)
{
        char dir[256];
        struct gen g = {0};
        struct kurz_create it[3] = {mk("https://n.example/1", NULL, false),
                                    mk("https://n.example/2", NULL, false),
                                    mk("https://n.example/3", NULL, false)};
        int64_t total = -1, active = -1;
        struct kurz_store *s;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        if (!s)
                return;
        CHECK(s->ops->healthy(s));
        CHECK_EQ_STR(s->name, "sqlite");
        CHECK_EQ_INT(s->ops->count(s, 1000, &total, &active), 0);
        CHECK_EQ_INT(total, 0);
        CHECK_EQ_INT(active, 0);
        it[0].expires_at = 1500;
        it[1].expires_at = 3000;
        CHECK_EQ_INT(s->ops->create_batch(s, it, 3, gen_fn, &g), 0);
        CHECK_EQ_INT(s->ops->count(s, 1000, &total, &active), 0);
        CHECK_EQ_INT(total, 3);
        CHECK_EQ_INT(active, 3);
        CHECK_EQ_INT(s->ops->count(s, 2000, &total, &active), 0);
        CHECK_EQ_INT(total, 3);
        CHECK_EQ_INT(active, 2);
        s->ops->close(s);
}

static void test_lock_and_durability(void)
{
        char dir[256];
        struct kurz_sqlite_config cfg = {0};
        struct gen g = {0};
        struct kurz_create it = mk("https://durable.example/", NULL, true);
        struct kurz_store *s, *s2 = NULL;
        struct kurz_link l;

        new_dir(dir, sizeof(dir));
        cfg.data_dir = dir;
        s = open_store(dir);
        if (!s)
                return;
        CHECK_EQ_INT(kurz_sqlite_open(&cfg, &s2), -EBUSY);
        CHECK(s2 == NULL);
        CHECK_EQ_INT(s->ops->create_batch(s, &it, 1, gen_fn, &g), 0);
        CHECK_EQ_INT(it.status, KURZ_CREATE_NEW);
        s->ops->close(s);

        /* Closing released the lock; the link is still there. */
        s = open_store(dir);
        if (!s)
                return;
        CHECK_EQ_INT(s->ops->lookup(s, "g0", 2, &l), 0);
        CHECK_EQ_STR(l.url, "https://durable.example/");
        free(l.url);
        it = mk("https://durable.example/", NULL, true);
        CHECK_EQ_INT(s->ops->create_batch(s, &it, 1, gen_fn, &g), 0);
        CHECK_EQ_INT(it.status, KURZ_CREATE_EXISTING);
        CHECK_EQ_STR(it.code, "g0");
        s->ops->close(s);
}

struct reader_arg {
        struct kurz_store *s;
        int ok;
};

static void *reader_main(void *arg)
{
        struct reader_arg *a = arg;
        struct kurz_link l;
        char code[16];

        for (int i = 0; i < 500; i++) {
                snprintf(code, sizeof(code), "g%d", i % 20);
                if (a->s->ops->lookup(a->s, code, strlen(code), &l) == 0) {
                        a->ok += strcmp(l.code, code) == 0;
                        free(l.url);
                }
        }
        return NULL;
}

/* More reading threads than pooled connections (2): they wait their turn
 * and every lookup succeeds. */
static void test_concurrent_reads(void)
{
        char dir[256];
        static char urls[20][64];
        struct kurz_create it[20];
        struct reader_arg args[6];
        pthread_t th[6];
        struct gen g = {0};
        struct kurz_store *s;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        if (!s)
                return;
        for (int i = 0; i < 20; i++) {
                snprintf(urls[i], sizeof(urls[i]), "https://read.example/%d", i);
                it[i] = mk(urls[i], NULL, false);
        }
        CHECK_EQ_INT(s->ops->create_batch(s, it, 20, gen_fn, &g), 0);
        for (int i = 0; i < 6; i++) {
                args[i] = (struct reader_arg){.s = s};
                pthread_create(&th[i], NULL, reader_main, &args[i]);
        }
        for (int i = 0; i < 6; i++) {
                pthread_join(th[i], NULL);
                CHECK_EQ_INT(args[i].ok, 500);
        }
        s->ops->close(s);
}

/* Another process holding the write lock past busy_timeout: BEGIN fails, so
 * the whole batch fails and nothing is reported as stored. */
static void test_batch_busy(void)
{
        char dir[256], path[300];
        struct kurz_sqlite_config cfg = {0};
        struct gen g = {0};
        struct kurz_create it[2] = {mk("https://busy.example/1", NULL, false),
                                    mk("https://busy.example/2", "busyalias", false)};
        struct kurz_store *s = NULL;
        sqlite3 *db;

        new_dir(dir, sizeof(dir));
        cfg.data_dir = dir;
        cfg.busy_timeout_ms = 50;
        CHECK_EQ_INT(kurz_sqlite_open(&cfg, &s), 0);
        if (!s)
                return;
        snprintf(path, sizeof(path), "%s/kurz.db", dir);
        CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
        CHECK_EQ_INT(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        CHECK_EQ_INT(s->ops->create_batch(s, it, 2, gen_fn, &g), KURZ_E_UNAVAILABLE);
        CHECK_EQ_INT(it[0].status, KURZ_CREATE_FAILED);
        CHECK_EQ_INT(it[0].err, KURZ_E_UNAVAILABLE);
        CHECK_EQ_INT(it[1].status, KURZ_CREATE_FAILED);
        CHECK_EQ_INT(it[1].err, KURZ_E_UNAVAILABLE);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(db);

        it[0] = mk("https://busy.example/1", NULL, false);
        it[1] = mk("https://busy.example/2", "busyalias", false);
        CHECK_EQ_INT(s->ops->create_batch(s, it, 2, gen_fn, &g), 0);
        CHECK_EQ_INT(it[0].status, KURZ_CREATE_NEW);
        CHECK_EQ_INT(it[1].status, KURZ_CREATE_NEW);
        s->ops->close(s);
}

/* The disk fills up during a batch (simulated with RLIMIT_FSIZE): every item
 * fails, none of them is stored, and the store works again afterwards. */
static void test_batch_disk_full(void)
{
        enum { N = 200 };
        static char urls[N][4100];
        static struct kurz_create it[N];
        char dir[256];
        struct gen g = {0};
        struct rlimit old, lim;
        struct kurz_store *s;
        struct kurz_link l;
        int rc;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        if (!s)
                return;
        for (int i = 0; i < N; i++) {
                int len = snprintf(urls[i], sizeof(urls[i]), "https://full.example/%d/", i);

                memset(urls[i] + len, 'a', sizeof(urls[i]) - 1 - (size_t)len);
                urls[i][sizeof(urls[i]) - 1] = '\0';
                it[i] = mk(urls[i], NULL, false);
        }
        signal(SIGXFSZ, SIG_IGN);
        CHECK_EQ_INT(getrlimit(RLIMIT_FSIZE, &old), 0);
        lim = old;
        lim.rlim_cur = 256 * 1024; /* the batch needs about 1 MB */
        CHECK_EQ_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
        rc = s->ops->create_batch(s, it, N, gen_fn, &g);
        CHECK_EQ_INT(setrlimit(RLIMIT_FSIZE, &old), 0);
        CHECK_EQ_INT(rc, KURZ_E_UNAVAILABLE);
        for (int i = 0; i < N; i++) {
                CHECK_EQ_INT(it[i].status, KURZ_CREATE_FAILED);
                CHECK_EQ_INT(it[i].err, KURZ_E_UNAVAILABLE);
        }
        CHECK_EQ_INT(s->ops->lookup(s, "g0", 2, &l), KURZ_E_NOTFOUND);

        it[0] = mk(urls[0], NULL, false);
        CHECK_EQ_INT(s->ops->create_batch(s, it, 1, gen_fn, &g), 0);
        CHECK_EQ_INT(it[0].status, KURZ_CREATE_NEW);
        s->ops->close(s);
        /* What was reported NEW is there after a reopen; nothing else is. */
        s = open_store(dir);
        if (!s)
                return;
        int64_t total = 0, active = 0;
        CHECK_EQ_INT(s->ops->count(s, 0, &total, &active), 0);
        CHECK_EQ_INT(total, 1);
        s->ops->close(s);
}

int main(void)
{
        if (!mkdtemp(root)) {
                perror("mkdtemp");
                return 1;
        }
        RUN(test_migrate);
        RUN(test_create_generated_and_lookup);
        RUN(test_dedupe);
        RUN(test_alias);
        RUN(test_generated_collision);
        RUN(test_remove);
        RUN(test_add_clicks);
        RUN(test_cleanup);
        RUN(test_lease_counter);
        RUN(test_permutation_key);
        RUN(test_api_keys);
        RUN(test_list);
        RUN(test_count_and_health);
        RUN(test_lock_and_durability);
        RUN(test_concurrent_reads);
        RUN(test_batch_busy);
        RUN(test_batch_disk_full);
        test_rmtree(root);
        TEST_END("sqlite");
}
