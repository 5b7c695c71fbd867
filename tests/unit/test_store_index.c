/* tests/unit/test_store_index.c - the SQLite store's links keyed by integer
 * (schema 5), with the real code generator: a generated code's row id is the
 * counter it encodes (creates append), aliases with and without a key, and
 * links not yet folded into link_codes and link_urls found by lookup, list
 * (in code order) and dedupe before the index fold, after it, and after a
 * restart; deletes leave no index entry behind, also in the middle of a fold
 * of several steps; a fold cut short by a crash is finished by the next
 * start; snowflake codes are keyed by their id; a file of schema 4 migrates
 * with every link, alias and dedupe entry intact, but not by an admin
 * command beside a running server. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ids/base62.h"
#include "ids/codegen.h"
#include "ids/perm.h"
#include "store/ifold.h"
#include "store/sqlite.h"
#include "test.h"
#include "sqlite_file.h"
#include "util/hash.h"

#define NLINKS 300

static char root[] = "/tmp/kurz-test-index-XXXXXX";
static int dir_seq;

static void new_dir(char *out, size_t cap)
{
        snprintf(out, cap, "%s/d%d", root, dir_seq++);
}

/* fold_ms 1: every tick (add_clicks with no clicks) or batch folds what
 * waits; FOLD_LATER: nothing is folded during a test. */
#define FOLD_NOW   1
#define FOLD_LATER 3600000

static struct kurz_store *open_store(const char *dir, uint64_t fold_ms)
{
        struct kurz_sqlite_config cfg = {.data_dir = dir, .readers = 2, .fold_ms = fold_ms};
        struct kurz_store *s = NULL;

        CHECK_EQ_INT(kurz_sqlite_open(&cfg, &s), 0);
        return s;
}

/* Flush timer ticks (add_clicks with no clicks) until the fold is done: a
 * tick runs about IFOLD_TICK_MS of its steps. */
static void tick(struct kurz_store *s, const char *dir)
{
        usleep(2000); /* past fold_ms */
        for (int i = 0; i < 100 && query_file(dir, "SELECT count(*) FROM links_unindexed") > 0; i++)
                CHECK_EQ_INT(s->ops->add_clicks(s, NULL, 0), 0);
}

static void url_of(int i, char *out, size_t cap)
{
        snprintf(out, cap, "https://index.example/%d", i);
}

/* Creates one link (alias NULL: a generated code, deduplicable) and returns
 * its status; its code goes to code. */
static int create(struct kurz_store *s, struct kurz_codegen *g, const char *url, const char *alias,
                  char *code)
{
        struct kurz_create it = {
            .url = url,
            .url_len = strlen(url),
            .url_hash = kurz_hash(url, strlen(url)),
            .alias = alias,
            .created_at = 1000,
            .dedupe = alias == NULL,
        };

        CHECK_EQ_INT(s->ops->create_batch(s, &it, 1, kurz_codegen_next, g), 0);
        snprintf(code, KURZ_CODE_MAX + 1, "%s", it.code);
        return it.status;
}

static struct kurz_codegen *codegen(struct kurz_store *s)
{
        struct kurz_codegen_config cfg = {.kind = KURZ_CODES_COMPACT, .store = s, .block = 100};
        struct kurz_codegen *g = NULL;

        CHECK_EQ_INT(kurz_codegen_new(&cfg, &g), 0);
        return g;
}

static int cmp_code(const void *a, const void *b)
{
        return strcmp(a, b);
}

/* Everything the store has is found: each code by lookup to its URL, the
 * whole set by list in code order (pages of 7), each generated URL by dedupe
 * to its code. */
static void check_all(struct kurz_store *s, struct kurz_codegen *g,
                      char (*codes)[KURZ_CODE_MAX + 1], char (*urls)[64], int n)
{
        char(*sorted)[KURZ_CODE_MAX + 1] = malloc((size_t)n * sizeof(*sorted));
        char after[KURZ_CODE_MAX + 1] = "", code[KURZ_CODE_MAX + 1];
        int bad_lookup = 0, bad_list = 0, bad_dedupe = 0, seen = 0;

        if (!sorted)
                return;
        for (int i = 0; i < n; i++) {
                struct kurz_link l;

                if (s->ops->lookup(s, codes[i], strlen(codes[i]), &l) != 0) {
                        bad_lookup++;
                        continue;
                }
                bad_lookup += strcmp(l.url, urls[i]) != 0;
                free(l.url);
        }
        memcpy(sorted, codes, (size_t)n * sizeof(*sorted));
        qsort(sorted, (size_t)n, sizeof(*sorted), cmp_code);
        for (;;) {
                struct kurz_link *page = NULL;
                int k = s->ops->list(s, after, 7, &page);

                if (k <= 0)
                        break;
                for (int j = 0; j < k; j++)
                        bad_list += seen + j >= n || strcmp(page[j].code, sorted[seen + j]) != 0;
                seen += k;
                snprintf(after, sizeof(after), "%s", page[k - 1].code);
                kurz_store_links_free(page, (size_t)k);
        }
        CHECK_EQ_INT(seen, n);
        for (int i = 0; i < n; i++) {
                if (strncmp(urls[i], "https://index.example/", 22) != 0)
                        continue; /* an alias: not deduplicated */
                if (create(s, g, urls[i], NULL, code) != KURZ_CREATE_EXISTING ||
                    strcmp(code, codes[i]) != 0)
                        bad_dedupe++;
        }
        CHECK_EQ_INT(bad_lookup, 0);
        CHECK_EQ_INT(bad_list, 0);
        CHECK_EQ_INT(bad_dedupe, 0);
        free(sorted);
}

static void test_keyed_rows_and_fold(void)
{
        static char codes[NLINKS + 2][KURZ_CODE_MAX + 1], urls[NLINKS + 2][64];
        char dir[256], code[KURZ_CODE_MAX + 1];
        struct kurz_store *s;
        struct kurz_codegen *g;
        int n = 0;

        new_dir(dir, sizeof(dir));
        s = open_store(dir, FOLD_LATER);
        g = s ? codegen(s) : NULL;
        if (!g)
                return;
        for (; n < NLINKS; n++) {
                url_of(n, urls[n], sizeof(urls[n]));
                CHECK_EQ_INT(create(s, g, urls[n], NULL, codes[n]), KURZ_CREATE_NEW);
        }
        /* A generated code's row id is its counter: creates append. */
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM links WHERE id BETWEEN 0 AND 299"
                                     " AND is_alias = 0"),
                     NLINKS);
        /* An alias with a key (7 base62 characters) and one without. */
        snprintf(urls[n], sizeof(urls[n]), "https://alias.example/keyed");
        CHECK_EQ_INT(create(s, g, urls[n], "Promo42", codes[n]), KURZ_CREATE_NEW);
        n++;
        snprintf(urls[n], sizeof(urls[n]), "https://alias.example/free");
        CHECK_EQ_INT(create(s, g, urls[n], "summer-sale", codes[n]), KURZ_CREATE_NEW);
        n++;
        CHECK_EQ_INT(create(s, g, "https://alias.example/again", "summer-sale", code),
                     KURZ_CREATE_ALIAS_TAKEN);
        CHECK_EQ_INT(create(s, g, "https://alias.example/again", "Promo42", code),
                     KURZ_CREATE_ALIAS_TAKEN);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM links WHERE id < 0"), 1);

        /* Before the index fold: only the alias without a key is indexed. */
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM links_unindexed"), n);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM link_codes"), 1);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM link_urls"), 0);
        check_all(s, g, codes, urls, n);

        /* A restart rebuilds the dedupe entries of the unindexed links. */
        s->ops->close(s);
        kurz_codegen_free(g);
        s = open_store(dir, FOLD_LATER);
        g = s ? codegen(s) : NULL;
        if (!g)
                return;
        check_all(s, g, codes, urls, n);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM links_unindexed"), n);

        s->ops->close(s);
        kurz_codegen_free(g);
        s = open_store(dir, FOLD_NOW);
        g = s ? codegen(s) : NULL;
        if (!g)
                return;
        tick(s, dir);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM links_unindexed"), 0);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM link_codes"), n);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM link_urls"), NLINKS);
        check_all(s, g, codes, urls, n);

        /* Deletes, of a folded link, a pending one and both aliases, leave no
         * index entry; the deleted URL is no longer deduplicated. */
        url_of(NLINKS, urls[0], sizeof(urls[0]));
        CHECK_EQ_INT(create(s, g, urls[0], NULL, codes[0]), KURZ_CREATE_NEW); /* pending */
        CHECK_EQ_INT(s->ops->remove(s, codes[0], strlen(codes[0])), 0);
        CHECK_EQ_INT(s->ops->remove(s, codes[1], strlen(codes[1])), 0);
        CHECK_EQ_INT(s->ops->remove(s, "Promo42", 7), 0);
        CHECK_EQ_INT(s->ops->remove(s, "summer-sale", 11), 0);
        CHECK_EQ_INT(s->ops->remove(s, "summer-sale", 11), KURZ_E_NOTFOUND);
        /* (The pending link's row waits for the fold, which skips it.) */
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM links_unindexed u JOIN links l"
                                     " ON l.id = u.id"),
                     0);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM link_codes"), n - 3);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM link_urls"), NLINKS - 1);
        CHECK_EQ_INT(create(s, g, urls[0], NULL, code), KURZ_CREATE_NEW);
        CHECK(strcmp(code, codes[0]) != 0);
        CHECK_EQ_INT(create(s, g, urls[1], NULL, code), KURZ_CREATE_NEW);
        CHECK_EQ_INT(create(s, g, "https://alias.example/new", "summer-sale", code),
                     KURZ_CREATE_NEW);
        s->ops->close(s);
        kurz_codegen_free(g);
}

/* A file of schema 4 (links keyed by code) moves to integer ids: generated
 * codes get their counter, other codes negative ids; lookups, list and
 * dedupe find every link, and new creates get new codes. */
static void test_migration_5(void)
{
        static char codes[NLINKS][KURZ_CODE_MAX + 1], urls[NLINKS][64];
        char dir[256], code[KURZ_CODE_MAX + 1];
        struct kurz_store *s;
        struct kurz_codegen *g;
        int n = 0;

        new_dir(dir, sizeof(dir));
        s = open_store(dir, FOLD_NOW);
        g = s ? codegen(s) : NULL;
        if (!g)
                return;
        for (; n < 100; n++) {
                url_of(n, urls[n], sizeof(urls[n]));
                CHECK_EQ_INT(create(s, g, urls[n], NULL, codes[n]), KURZ_CREATE_NEW);
        }
        snprintf(urls[n], sizeof(urls[n]), "https://alias.example/a");
        CHECK_EQ_INT(create(s, g, urls[n], "x_y", codes[n]), KURZ_CREATE_NEW);
        n++;
        snprintf(urls[n], sizeof(urls[n]), "https://alias.example/b");
        CHECK_EQ_INT(create(s, g, urls[n], "Abcdefg", codes[n]), KURZ_CREATE_NEW);
        n++;
        s->ops->close(s);
        kurz_codegen_free(g);
        exec_file(dir, TO_SCHEMA_4);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM links"), n);
        /* An admin command beside a running server does not migrate it. */
        {
                struct kurz_sqlite_config cfg = {.data_dir = dir, .shared = true};
                struct kurz_store *sh = NULL;

                CHECK_EQ_INT(kurz_sqlite_open(&cfg, &sh), -EPROTO);
                CHECK_EQ_INT(query_file(dir, "SELECT max(version) FROM schema_version"), 4);
        }

        s = open_store(dir, FOLD_NOW);
        g = s ? codegen(s) : NULL;
        if (!g)
                return;
        CHECK_EQ_INT(query_file(dir, "SELECT max(version) FROM schema_version"), 5);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM links WHERE id BETWEEN 0 AND 99"
                                     " AND is_alias = 0"),
                     100);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM links WHERE id < 0"), 1);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM link_codes"), n);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM link_urls"), 100);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM links_unindexed"), 0);
        check_all(s, g, codes, urls, n);
        CHECK_EQ_INT(create(s, g, "https://index.example/new", NULL, code), KURZ_CREATE_NEW);
        for (int i = 0; i < n; i++)
                CHECK(strcmp(code, codes[i]) != 0);
        s->ops->close(s);
        kurz_codegen_free(g);
}

/* A fold of more than one step (IFOLD_STEP rows) runs one step per create
 * batch: links deleted before their entry is written leave none, a process
 * that dies between steps leaves a fold the next start finishes, and every
 * link is found at every point. */
static void test_fold_in_steps(void)
{
        enum { N = 5000 }; /* read, written and deleted in 3 steps each */
        static char codes[N + 8][KURZ_CODE_MAX + 1], urls[N + 8][64];
        char dir[256];
        struct kurz_store *s;
        struct kurz_codegen *g;
        int n = 0;
        pid_t pid;

        new_dir(dir, sizeof(dir));
        s = open_store(dir, FOLD_LATER);
        g = s ? codegen(s) : NULL;
        if (!g)
                return;
        for (; n < N; n++) {
                url_of(n, urls[n], sizeof(urls[n]));
                CHECK_EQ_INT(create(s, g, urls[n], NULL, codes[n]), KURZ_CREATE_NEW);
        }
        s->ops->close(s);
        kurz_codegen_free(g);

        /* A child starts the fold (a step in each of its batches: 3 reads,
         * the sort, 2 of 3 pieces of code entries) and dies. */
        pid = fork();
        if (pid == 0) {
                char code[KURZ_CODE_MAX + 1], url[64];

                s = open_store(dir, FOLD_NOW);
                g = s ? codegen(s) : NULL;
                usleep(2000); /* past fold_ms */
                for (int i = 0; g && i < 6; i++) {
                        snprintf(url, sizeof(url), "https://index.example/child%d", i);
                        create(s, g, url, NULL, code);
                }
                _exit(0); /* no close */
        }
        CHECK(pid > 0);
        waitpid(pid, NULL, 0);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM link_codes"), 2 * IFOLD_STEP);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM link_urls"), 0);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM links_unindexed"), N + 6);

        s = open_store(dir, FOLD_NOW);
        g = s ? codegen(s) : NULL;
        if (!g)
                return;
        usleep(2000);
        for (int i = 0; i < 6; i++, n++) {
                snprintf(urls[n], sizeof(urls[n]), "https://index.example/child%d", i);
                CHECK_EQ_INT(create(s, g, urls[n], NULL, codes[n]),
                             KURZ_CREATE_EXISTING); /* dedupe of an unindexed link */
        }
        /* Those batches began the fold again (reading). Two links go now,
         * one whose code entry the child wrote: the steps to come write
         * nothing for them. */
        CHECK_EQ_INT(s->ops->remove(s, codes[0], strlen(codes[0])), 0);
        CHECK_EQ_INT(s->ops->remove(s, codes[N - 1], strlen(codes[N - 1])), 0);
        memmove(codes, codes + 1, (size_t)(n - 1) * sizeof(codes[0]));
        memmove(urls, urls + 1, (size_t)(n - 1) * sizeof(urls[0]));
        n--;
        memmove(codes + N - 2, codes + N - 1, sizeof(codes[0]) * (size_t)(n - (N - 1)));
        memmove(urls + N - 2, urls + N - 1, sizeof(urls[0]) * (size_t)(n - (N - 1)));
        n--;
        check_all(s, g, codes, urls, n); /* its dedupe batches run the rest */
        tick(s, dir);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM links_unindexed"), 0);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM link_codes"), n);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM link_urls"), n);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM link_codes c WHERE NOT EXISTS"
                                     " (SELECT 1 FROM links l WHERE l.id = c.id)"),
                     0);
        check_all(s, g, codes, urls, n);
        s->ops->close(s);
        kurz_codegen_free(g);
}

/* A fold that fails (here every write of link_codes is refused) costs no
 * create: each batch's step is undone alone, the batch commits, and the
 * links stay found through links_unindexed. Once writes pass again, the
 * next fold indexes them all. */
static void test_failing_fold_fails_no_create(void)
{
        static char codes[40][KURZ_CODE_MAX + 1], urls[40][64];
        char dir[256];
        struct kurz_store *s;
        struct kurz_codegen *g;
        int n = 0, failed = 0;

        new_dir(dir, sizeof(dir));
        s = open_store(dir, FOLD_LATER);
        g = s ? codegen(s) : NULL;
        if (!g)
                return;
        for (; n < 20; n++) {
                url_of(n, urls[n], sizeof(urls[n]));
                CHECK_EQ_INT(create(s, g, urls[n], NULL, codes[n]), KURZ_CREATE_NEW);
        }
        s->ops->close(s);
        kurz_codegen_free(g);
        exec_file(dir, "CREATE TRIGGER refuse BEFORE INSERT ON link_codes BEGIN"
                       " SELECT RAISE(ABORT, 'injected'); END;");
        s = open_store(dir, FOLD_NOW);
        g = s ? codegen(s) : NULL;
        if (!g)
                return;
        /* Each create runs a step of the due fold; a second passes between
         * some of them, so failed steps are tried again. */
        for (; n < 40; n++) {
                url_of(n, urls[n], sizeof(urls[n]));
                if (create(s, g, urls[n], NULL, codes[n]) != KURZ_CREATE_NEW)
                        failed++;
                if (n % 10 == 0)
                        usleep(1100 * 1000);
        }
        CHECK_EQ_INT(failed, 0);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM link_codes"), 0);
        check_all(s, g, codes, urls, n);
        exec_file(dir, "DROP TRIGGER refuse");
        usleep(1100 * 1000); /* past the retry pause */
        tick(s, dir);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM links_unindexed"), 0);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM link_codes"), n);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM link_urls"), n);
        check_all(s, g, codes, urls, n);
        s->ops->close(s);
        kurz_codegen_free(g);
}

/* Snowflake codes (base62 of the id, 11 characters) are keyed by their id:
 * ascending, and found again. */
static void test_snowflake_keys(void)
{
        char dir[256], code[3][KURZ_CODE_MAX + 1];
        struct kurz_codegen_config cfg = {.kind = KURZ_CODES_SNOWFLAKE};
        struct kurz_codegen *g = NULL;
        struct kurz_store *s;

        new_dir(dir, sizeof(dir));
        s = open_store(dir, FOLD_NOW);
        if (!s)
                return;
        cfg.store = s;
        CHECK_EQ_INT(kurz_codegen_new(&cfg, &g), 0);
        if (!g) {
                s->ops->close(s);
                return;
        }
        for (int i = 0; i < 3; i++) {
                char url[64];
                struct kurz_link l;

                url_of(i, url, sizeof(url));
                CHECK_EQ_INT(create(s, g, url, NULL, code[i]), KURZ_CREATE_NEW);
                CHECK(strlen(code[i]) > 7);
                CHECK_EQ_INT(s->ops->lookup(s, code[i], strlen(code[i]), &l), 0);
                free(l.url);
        }
        for (int i = 0; i < 3; i++) {
                char sql[256];
                uint64_t v = 0;

                CHECK_EQ_INT(kurz_base62_decode(code[i], strlen(code[i]), &v), 0);
                snprintf(sql, sizeof(sql), "SELECT id FROM links WHERE code = '%s'", code[i]);
                CHECK(query_file(dir, sql) == (long long)v);
                CHECK(v >= KURZ_PERM_DOMAIN);
                if (i > 0) {
                        uint64_t prev = 0;

                        kurz_base62_decode(code[i - 1], strlen(code[i - 1]), &prev);
                        CHECK(v > prev);
                }
        }
        s->ops->close(s);
        kurz_codegen_free(g);
}

int main(void)
{
        if (!mkdtemp(root)) {
                perror("mkdtemp");
                return 1;
        }
        RUN(test_keyed_rows_and_fold);
        RUN(test_migration_5);
        RUN(test_snowflake_keys);
        RUN(test_fold_in_steps);
        RUN(test_failing_fold_fails_no_create);
        test_rmtree(root);
        TEST_END("store_index");
}
