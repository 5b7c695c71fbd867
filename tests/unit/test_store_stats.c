/* tests/unit/test_store_stats.c - the statistics ops of the SQLite store
 * (stats_link, stats_platform): windows of the daily rollup, first and last
 * click, platform counters kept by creates, deletes, cleanup and clicks,
 * migrations 2 and 3 initialising them from data written before them, and
 * the click log: logged clicks count in every read before they are folded,
 * survive a crash, and fold at close and past its day bound. */
#include <sys/wait.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/sqlite.h"
#include "store/unfolded.h"
#include "test.h"
#include "sqlite_file.h"
#include "util/hash.h"

static char root[] = "/tmp/kurz-test-stats-XXXXXX";
static int dir_seq;
static int next_code;

static void new_dir(char *out, size_t cap)
{
        snprintf(out, cap, "%s/d%d", root, dir_seq++);
}

static struct kurz_store *open_store(const char *dir)
{
        struct kurz_sqlite_config cfg = {.data_dir = dir, .readers = 2};
        struct kurz_store *s = NULL;

        CHECK_EQ_INT(kurz_sqlite_open(&cfg, &s), 0);
        return s;
}

static int gen_fn(void *arg, char *out, size_t cap)
{
        (void)arg;
        snprintf(out, cap, "c%d", next_code++);
        return 0;
}

/* Creates a link of url (expiring at expires_at, under alias or a
 * generated code, deduplicated when without alias); returns what the store
 * made of it. */
static struct kurz_create make(struct kurz_store *s, const char *url, const char *alias,
                               int64_t expires_at)
{
        struct kurz_create it = {
            .url = url,
            .url_len = strlen(url),
            .url_hash = kurz_hash(url, strlen(url)),
            .alias = alias,
            .created_at = 1000,
            .expires_at = expires_at,
            .dedupe = !alias,
        };

        CHECK_EQ_INT(s->ops->create_batch(s, &it, 1, gen_fn, NULL), 0);
        return it;
}

/* Creates a link of url (expiring at expires_at) and copies its code. */
static void create(struct kurz_store *s, const char *url, int64_t expires_at, char *code)
{
        struct kurz_create it = make(s, url, NULL, expires_at);

        CHECK(it.status == KURZ_CREATE_NEW || it.status == KURZ_CREATE_EXISTING);
        strcpy(code, it.code);
}

static void click(struct kurz_store *s, const char *code, int32_t day, int64_t n, int64_t at)
{
        struct kurz_click k = {.day = day, .count = n, .last_access = at};

        snprintf(k.code, sizeof(k.code), "%s", code);
        CHECK_EQ_INT(s->ops->add_clicks(s, &k, 1), 0);
}

#define TODAY 20000 /* a day number: 2024-10-04 */

static void test_link_windows(void)
{
        char dir[256], a[KURZ_CODE_MAX + 1], b[KURZ_CODE_MAX + 1];
        struct kurz_link_stats st;
        struct kurz_store *s;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        create(s, "https://example.com/a", 0, a);
        create(s, "https://example.com/b", 0, b);
        CHECK_EQ_INT(s->ops->stats_link(s, a, strlen(a), TODAY, &st), 0);
        CHECK_EQ_INT(st.total_clicks, 0);
        CHECK_EQ_INT(st.ndays, 0);
        CHECK_EQ_INT(st.first_click, 0);
        free(st.timeline);

        /* Today, 3 days ago (week), 10 days ago (month), 40 days ago (out). */
        click(s, a, TODAY - 40, 1, (int64_t)(TODAY - 40) * 86400 + 50);
        click(s, a, TODAY - 10, 2, (int64_t)(TODAY - 10) * 86400 + 60);
        click(s, a, TODAY - 3, 4, (int64_t)(TODAY - 3) * 86400 + 70);
        click(s, a, TODAY, 8, (int64_t)TODAY * 86400 + 80);
        click(s, b, TODAY, 100, (int64_t)TODAY * 86400 + 90);
        CHECK_EQ_INT(s->ops->stats_link(s, a, strlen(a), TODAY, &st), 0);
        CHECK_EQ_INT(st.total_clicks, 15);
        CHECK_EQ_INT(st.clicks_today, 8);
        CHECK_EQ_INT(st.clicks_week, 12);
        CHECK_EQ_INT(st.clicks_month, 14);
        CHECK_EQ_INT(st.first_click, (int64_t)(TODAY - 40) * 86400 + 50);
        CHECK_EQ_INT(st.last_click, (int64_t)TODAY * 86400 + 80);
        /* The timeline: the month's days with clicks, oldest first. */
        CHECK_EQ_INT(st.ndays, 3);
        if (st.ndays == 3) {
                CHECK_EQ_INT(st.timeline[0].day, TODAY - 10);
                CHECK_EQ_INT(st.timeline[0].clicks, 2);
                CHECK_EQ_INT(st.timeline[2].day, TODAY);
                CHECK_EQ_INT(st.timeline[2].clicks, 8);
        }
        free(st.timeline);
        CHECK_EQ_INT(s->ops->stats_link(s, "nope", 4, TODAY, &st), KURZ_E_NOTFOUND);
        CHECK(st.timeline == NULL);
        s->ops->close(s);
}

/* A flush adds to the day's existing row (first and last click kept);
 * lookup returns the totals, lookup_target (a redirect's read) only the
 * target. */
static void test_clicks_add_up_and_lookups(void)
{
        char dir[256], a[KURZ_CODE_MAX + 1];
        struct kurz_link_stats st;
        struct kurz_link l;
        struct kurz_store *s;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        create(s, "https://example.com/sum", 5000000000, a);
        click(s, a, TODAY, 2, (int64_t)TODAY * 86400 + 500);
        click(s, a, TODAY, 3, (int64_t)TODAY * 86400 + 100);
        click(s, a, TODAY, 1, (int64_t)TODAY * 86400 + 900);
        CHECK_EQ_INT(s->ops->stats_link(s, a, strlen(a), TODAY, &st), 0);
        CHECK_EQ_INT(st.total_clicks, 6);
        CHECK_EQ_INT(st.clicks_today, 6);
        CHECK_EQ_INT(st.ndays, 1);
        CHECK_EQ_INT(st.first_click, (int64_t)TODAY * 86400 + 100);
        CHECK_EQ_INT(st.last_click, (int64_t)TODAY * 86400 + 900);
        free(st.timeline);

        CHECK_EQ_INT(s->ops->lookup(s, a, strlen(a), &l), 0);
        CHECK_EQ_STR(l.url, "https://example.com/sum");
        CHECK_EQ_INT(l.clicks, 6);
        CHECK_EQ_INT(l.last_access, (int64_t)TODAY * 86400 + 900);
        free(l.url);
        CHECK(s->ops->lookup_target != NULL);
        memset(&l, 0x55, sizeof(l));
        CHECK_EQ_INT(s->ops->lookup_target(s, a, strlen(a), &l), 0);
        CHECK_EQ_STR(l.url, "https://example.com/sum");
        CHECK_EQ_STR(l.code, a);
        CHECK_EQ_INT(l.created_at, 1000);
        CHECK_EQ_INT(l.expires_at, 5000000000);
        CHECK_EQ_INT(l.clicks, 0);
        CHECK_EQ_INT(l.last_access, 0);
        free(l.url);
        CHECK_EQ_INT(s->ops->lookup_target(s, "nope", 4, &l), KURZ_E_NOTFOUND);
        s->ops->close(s);
}

static void test_platform_counters(void)
{
        char dir[256], a[KURZ_CODE_MAX + 1], b[KURZ_CODE_MAX + 1], c[KURZ_CODE_MAX + 1];
        char del[KURZ_CODE_MAX + 1];
        char(*gone)[KURZ_CODE_MAX + 1] = NULL;
        struct kurz_platform_stats p;
        struct kurz_store *s;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        CHECK_EQ_INT(s->ops->stats_platform(s, 5000, TODAY, &p), 0);
        CHECK_EQ_INT(p.total_urls, 0);
        CHECK_EQ_INT(p.total_clicks, 0);
        create(s, "https://example.com/p1", 0, a);
        create(s, "https://example.com/p1", 0, a); /* dedupe: not a new link */
        create(s, "https://example.com/p2", 0, b);
        create(s, "https://example.com/p3", 3000, c); /* expires at 3000 */
        click(s, a, TODAY, 5, 100);
        click(s, b, TODAY - 1, 7, 100);
        /* A link deleted after its clicks were counted, before they were
         * written: they count nowhere. */
        create(s, "https://example.com/p4", 0, del);
        CHECK_EQ_INT(s->ops->remove(s, del, strlen(del)), 0);
        click(s, del, TODAY, 9, 100);
        CHECK_EQ_INT(s->ops->stats_platform(s, 2000, TODAY, &p), 0);
        CHECK_EQ_INT(p.total_urls, 3);
        CHECK_EQ_INT(p.active_urls, 3);
        CHECK_EQ_INT(p.total_clicks, 12);
        CHECK_EQ_INT(p.clicks_today, 5);
        /* After its expiry, before cleanup: counted, not active. */
        CHECK_EQ_INT(s->ops->stats_platform(s, 4000, TODAY, &p), 0);
        CHECK_EQ_INT(p.total_urls, 3);
        CHECK_EQ_INT(p.active_urls, 2);
        CHECK_EQ_INT(s->ops->cleanup(s, 4000, 0, 100, &gone), 1);
        free(gone);
        CHECK_EQ_INT(s->ops->remove(s, a, strlen(a)), 0);
        CHECK_EQ_INT(s->ops->remove(s, a, strlen(a)), KURZ_E_NOTFOUND);
        CHECK_EQ_INT(s->ops->stats_platform(s, 4000, TODAY, &p), 0);
        CHECK_EQ_INT(p.total_urls, 1);
        CHECK_EQ_INT(p.active_urls, 1);
        CHECK_EQ_INT(p.total_clicks, 12); /* served clicks stay in history */
        s->ops->close(s);
        /* The counters are durable. */
        s = open_store(dir);
        CHECK_EQ_INT(s->ops->stats_platform(s, 4000, TODAY, &p), 0);
        CHECK_EQ_INT(p.total_urls, 1);
        CHECK_EQ_INT(p.total_clicks, 12);
        s->ops->close(s);
}

/* A file written by schema 1 (no counters, no first_access) gets them from
 * its data when migration 2 runs. */
static void test_migration_initialises(void)
{
        char dir[256], a[KURZ_CODE_MAX + 1], b[KURZ_CODE_MAX + 1];
        struct kurz_platform_stats p;
        struct kurz_link_stats st;
        struct kurz_store *s;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        create(s, "https://example.com/m1", 0, a);
        create(s, "https://example.com/m2", 0, b);
        click(s, a, TODAY, 3, (int64_t)TODAY * 86400 + 500);
        click(s, b, TODAY - 2, 4, (int64_t)(TODAY - 2) * 86400 + 500);
        s->ops->close(s);
        /* Back to schema 1: totals in links, no first click, no counters. */
        exec_file(dir,
                  TO_SCHEMA_4 "DROP TABLE platform_totals; DROP TABLE platform_daily;"
                              "ALTER TABLE links ADD COLUMN clicks INTEGER NOT NULL DEFAULT 0;"
                              "ALTER TABLE links ADD COLUMN last_access INTEGER NOT NULL DEFAULT 0;"
                              "UPDATE links SET clicks = (SELECT sum(clicks) FROM clicks_daily d"
                              " WHERE d.code = links.code), last_access = (SELECT max(last_at)"
                              " FROM clicks_daily d WHERE d.code = links.code);"
                              "ALTER TABLE clicks_daily DROP COLUMN first_at;"
                              "ALTER TABLE clicks_daily DROP COLUMN last_at;"
                              "DELETE FROM schema_version; INSERT INTO schema_version VALUES(1);");
        s = open_store(dir);
        CHECK_EQ_INT(s->ops->stats_platform(s, 2000, TODAY, &p), 0);
        CHECK_EQ_INT(p.total_urls, 2);
        CHECK_EQ_INT(p.total_clicks, 7);
        CHECK_EQ_INT(p.clicks_today, 3);
        CHECK_EQ_INT(s->ops->stats_link(s, b, strlen(b), TODAY, &st), 0);
        CHECK_EQ_INT(st.total_clicks, 4);
        CHECK_EQ_INT(st.clicks_week, 4);
        CHECK_EQ_INT(st.first_click, (int64_t)(TODAY - 2) * 86400); /* day precision */
        free(st.timeline);
        s->ops->close(s);
}

/* A file of schema 2 (totals, first and last click in links) keeps every
 * figure when migration 3 moves them into the daily rollup. */
static void test_migration_3_keeps_totals(void)
{
        char dir[256], a[KURZ_CODE_MAX + 1], b[KURZ_CODE_MAX + 1];
        struct kurz_link_stats st;
        struct kurz_link l = {0};
        struct kurz_store *s;
        int64_t first = (int64_t)(TODAY - 3) * 86400 + 777, last = (int64_t)TODAY * 86400 + 999;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        create(s, "https://example.com/v2a", 0, a);
        create(s, "https://example.com/v2b", 0, b);
        click(s, a, TODAY - 3, 2, first + 5);
        click(s, a, TODAY - 1, 3, (int64_t)(TODAY - 1) * 86400 + 10);
        click(s, a, TODAY, 4, last - 5);
        s->ops->close(s);
        exec_file(dir, TO_SCHEMA_4
                  "ALTER TABLE links ADD COLUMN clicks INTEGER NOT NULL DEFAULT 0;"
                  "ALTER TABLE links ADD COLUMN last_access INTEGER NOT NULL DEFAULT 0;"
                  "ALTER TABLE links ADD COLUMN first_access INTEGER NOT NULL DEFAULT 0;"
                  "ALTER TABLE clicks_daily DROP COLUMN first_at;"
                  "ALTER TABLE clicks_daily DROP COLUMN last_at;"
                  "DELETE FROM schema_version; INSERT INTO schema_version VALUES(2);");
        {
                char sql[256];

                snprintf(sql, sizeof(sql),
                         "UPDATE links SET clicks = 9, first_access = %lld, last_access = %lld"
                         " WHERE code = '%s'",
                         (long long)first, (long long)last, a);
                exec_file(dir, sql);
        }
        s = open_store(dir);
        CHECK_EQ_INT(s->ops->stats_link(s, a, strlen(a), TODAY, &st), 0);
        CHECK_EQ_INT(st.total_clicks, 9);
        CHECK_EQ_INT(st.clicks_today, 4);
        CHECK_EQ_INT(st.ndays, 3);
        CHECK_EQ_INT(st.first_click, first); /* exact, from links */
        CHECK_EQ_INT(st.last_click, last);
        free(st.timeline);
        CHECK_EQ_INT(s->ops->lookup(s, a, strlen(a), &l), 0);
        CHECK_EQ_INT(l.clicks, 9);
        CHECK_EQ_INT(l.last_access, last);
        free(l.url);
        /* A link never clicked stays at zero; new clicks add to the rollup. */
        CHECK_EQ_INT(s->ops->stats_link(s, b, strlen(b), TODAY, &st), 0);
        CHECK_EQ_INT(st.total_clicks, 0);
        CHECK_EQ_INT(st.first_click, 0);
        free(st.timeline);
        click(s, a, TODAY, 1, last + 1);
        CHECK_EQ_INT(s->ops->stats_link(s, a, strlen(a), TODAY, &st), 0);
        CHECK_EQ_INT(st.total_clicks, 10);
        CHECK_EQ_INT(st.last_click, last + 1);
        free(st.timeline);
        s->ops->close(s);
}

/* Clicks a flush logged are in every read at once, added to what the
 * rollup already holds for the same days; the rollup gets them at close. */
static void test_logged_clicks_add_to_rollup(void)
{
        char dir[256], a[KURZ_CODE_MAX + 1];
        struct kurz_link_stats st;
        struct kurz_platform_stats p;
        struct kurz_link l = {0}, *list = NULL;
        struct kurz_store *s;
        int64_t t1 = (int64_t)(TODAY - 1) * 86400 + 100, t2 = t1 + 50, t3 = (int64_t)TODAY * 86400;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        create(s, "https://example.com/log1", 0, a);
        click(s, a, TODAY - 1, 3, t1);
        s->ops->close(s); /* folds */
        CHECK_EQ_INT(query_file(dir, "SELECT sum(clicks) FROM clicks_daily"), 3);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM clicks_log"), 0);
        s = open_store(dir);
        click(s, a, TODAY - 1, 2, t2);
        click(s, a, TODAY, 4, t3);
        /* logged, not folded */
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM clicks_log"), 2);
        CHECK_EQ_INT(query_file(dir, "SELECT sum(clicks) FROM clicks_daily"), 3);
        CHECK_EQ_INT(s->ops->stats_link(s, a, strlen(a), TODAY, &st), 0);
        CHECK_EQ_INT(st.total_clicks, 9);
        CHECK_EQ_INT(st.clicks_today, 4);
        CHECK_EQ_INT(st.clicks_week, 9);
        CHECK_EQ_INT(st.first_click, t1);
        CHECK_EQ_INT(st.last_click, t3);
        CHECK_EQ_INT(st.ndays, 2);
        if (st.ndays == 2) {
                CHECK_EQ_INT(st.timeline[0].day, TODAY - 1);
                CHECK_EQ_INT(st.timeline[0].clicks, 5);
                CHECK_EQ_INT(st.timeline[1].day, TODAY);
                CHECK_EQ_INT(st.timeline[1].clicks, 4);
        }
        free(st.timeline);
        CHECK_EQ_INT(s->ops->lookup(s, a, strlen(a), &l), 0);
        CHECK_EQ_INT(l.clicks, 9);
        CHECK_EQ_INT(l.last_access, t3);
        free(l.url);
        CHECK_EQ_INT(s->ops->list(s, NULL, 10, &list), 1);
        if (list) {
                CHECK_EQ_INT(list[0].clicks, 9);
                CHECK_EQ_INT(list[0].last_access, t3);
                kurz_store_links_free(list, 1);
        }
        CHECK_EQ_INT(s->ops->stats_platform(s, 2000, TODAY, &p), 0);
        CHECK_EQ_INT(p.total_clicks, 9);
        CHECK_EQ_INT(p.clicks_today, 4);
        s->ops->close(s);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM clicks_log"), 0);
        CHECK_EQ_INT(query_file(dir, "SELECT clicks FROM clicks_daily WHERE day = 19999"), 5);
        s = open_store(dir);
        CHECK_EQ_INT(s->ops->stats_link(s, a, strlen(a), TODAY, &st), 0);
        CHECK_EQ_INT(st.total_clicks, 9);
        CHECK_EQ_INT(st.first_click, t1);
        CHECK_EQ_INT(st.last_click, t3);
        free(st.timeline);
        CHECK_EQ_INT(s->ops->stats_platform(s, 2000, TODAY, &p), 0);
        CHECK_EQ_INT(p.total_clicks, 9);
        s->ops->close(s);
}

/* A process that dies after a flush returned loses none of its clicks: the
 * next open folds the log. */
static void test_logged_clicks_survive_a_crash(void)
{
        char dir[256], a[KURZ_CODE_MAX + 1];
        struct kurz_link_stats st;
        struct kurz_store *s;
        int status = 0;
        pid_t pid;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        create(s, "https://example.com/crash", 0, a);
        s->ops->close(s);
        fflush(NULL);
        pid = fork();
        if (pid == 0) {
                s = open_store(dir);
                click(s, a, TODAY, 5, (int64_t)TODAY * 86400 + 9);
                click(s, a, TODAY - 2, 2, (int64_t)(TODAY - 2) * 86400 + 9);
                _exit(test_case_failed); /* no close: no fold */
        }
        CHECK(pid > 0);
        CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM clicks_log"), 2);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM clicks_daily"), 0);
        s = open_store(dir);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM clicks_log"), 0);
        CHECK_EQ_INT(query_file(dir, "SELECT sum(clicks) FROM clicks_daily"), 7);
        CHECK_EQ_INT(s->ops->stats_link(s, a, strlen(a), TODAY, &st), 0);
        CHECK_EQ_INT(st.total_clicks, 7);
        CHECK_EQ_INT(st.clicks_today, 5);
        CHECK_EQ_INT(st.ndays, 2);
        free(st.timeline);
        s->ops->close(s);
}

/* More distinct days than the table holds: the flush that brings one too
 * many folds the others first; nothing is lost or counted twice. */
static void test_logged_days_past_the_bound(void)
{
        char dir[256], a[KURZ_CODE_MAX + 1];
        struct kurz_link_stats st;
        struct kurz_store *s;
        int days = 2 * KURZ_UNFOLDED_DAYS + 3;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        create(s, "https://example.com/days", 0, a);
        for (int d = 0; d < days; d++)
                click(s, a, TODAY - d, d + 1, (int64_t)(TODAY - d) * 86400 + 1);
        CHECK(query_file(dir, "SELECT count(*) FROM clicks_daily") >= KURZ_UNFOLDED_DAYS);
        CHECK_EQ_INT(s->ops->stats_link(s, a, strlen(a), TODAY, &st), 0);
        CHECK_EQ_INT(st.total_clicks, days * (days + 1) / 2);
        CHECK_EQ_INT(st.ndays, days);
        CHECK_EQ_INT(st.clicks_today, 1);
        CHECK_EQ_INT(st.clicks_week, 1 + 2 + 3 + 4 + 5 + 6 + 7);
        CHECK_EQ_INT(st.first_click, (int64_t)(TODAY - days + 1) * 86400 + 1);
        free(st.timeline);
        s->ops->close(s);
        CHECK_EQ_INT(query_file(dir, "SELECT sum(clicks) FROM clicks_daily"),
                     days * (days + 1) / 2);
}

static void create_alias(struct kurz_store *s, const char *url, const char *alias)
{
        CHECK_EQ_INT(make(s, url, alias, 0).status, KURZ_CREATE_NEW);
}

/* A deleted link's logged clicks stay in the platform's history and count
 * for no later link of the same code, also when a crash leaves the log for
 * the next open to replay; a batch spanning more days than the table holds
 * is written directly. */
static void test_delete_forgets_logged_clicks(void)
{
        char dir[256];
        struct kurz_link_stats st;
        struct kurz_platform_stats p;
        struct kurz_click k[KURZ_UNFOLDED_DAYS + 2];
        struct kurz_store *s;
        int status = 0;
        pid_t pid;

        new_dir(dir, sizeof(dir));
        s = open_store(dir);
        create_alias(s, "https://example.com/del1", "again");
        s->ops->close(s);
        fflush(NULL);
        pid = fork();
        if (pid == 0) {
                s = open_store(dir);
                click(s, "again", TODAY, 6, (int64_t)TODAY * 86400 + 1);
                CHECK_EQ_INT(s->ops->remove(s, "again", 5), 0);
                create_alias(s, "https://example.com/del2", "again");
                CHECK_EQ_INT(s->ops->stats_link(s, "again", 5, TODAY, &st), 0);
                CHECK_EQ_INT(st.total_clicks, 0);
                free(st.timeline);
                CHECK_EQ_INT(s->ops->stats_platform(s, 2000, TODAY, &p), 0);
                CHECK_EQ_INT(p.total_clicks, 6);
                click(s, "again", TODAY, 1, (int64_t)TODAY * 86400 + 2);
                _exit(test_case_failed); /* no close: the log holds click, tombstone, click */
        }
        CHECK(pid > 0);
        CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM clicks_log"), 3);
        s = open_store(dir);
        CHECK_EQ_INT(s->ops->stats_link(s, "again", 5, TODAY, &st), 0);
        CHECK_EQ_INT(st.total_clicks, 1);
        free(st.timeline);
        CHECK_EQ_INT(s->ops->stats_platform(s, 2000, TODAY, &p), 0);
        CHECK_EQ_INT(p.total_clicks, 7);
        CHECK_EQ_INT(p.total_urls, 1);
        /* one batch of KURZ_UNFOLDED_DAYS + 2 days */
        for (int i = 0; i < KURZ_UNFOLDED_DAYS + 2; i++)
                k[i] = (struct kurz_click){.code = "again",
                                           .day = TODAY - i,
                                           .count = 2,
                                           .last_access = (int64_t)(TODAY - i) * 86400};
        CHECK_EQ_INT(s->ops->add_clicks(s, k, KURZ_UNFOLDED_DAYS + 2), 0);
        CHECK_EQ_INT(s->ops->stats_link(s, "again", 5, TODAY, &st), 0);
        CHECK_EQ_INT(st.total_clicks, 1 + 2 * (KURZ_UNFOLDED_DAYS + 2));
        CHECK_EQ_INT(st.ndays, KURZ_UNFOLDED_DAYS + 2);
        free(st.timeline);
        s->ops->close(s);
}

/* The fold comes when due also without another click: the service calls
 * add_clicks(NULL, 0) every flush interval. */
static void test_fold_when_due(void)
{
        char dir[256], a[KURZ_CODE_MAX + 1];
        struct kurz_sqlite_config cfg = {.readers = 2, .fold_ms = 200};
        struct kurz_link_stats st;
        struct kurz_store *s = NULL;

        new_dir(dir, sizeof(dir));
        cfg.data_dir = dir;
        CHECK_EQ_INT(kurz_sqlite_open(&cfg, &s), 0);
        if (!s)
                return;
        create(s, "https://example.com/due", 0, a);
        click(s, a, TODAY, 3, (int64_t)TODAY * 86400);
        CHECK_EQ_INT(s->ops->add_clicks(s, NULL, 0), 0); /* not due yet */
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM clicks_log"), 1);
        usleep(250 * 1000);
        CHECK_EQ_INT(s->ops->add_clicks(s, NULL, 0), 0);
        CHECK_EQ_INT(query_file(dir, "SELECT count(*) FROM clicks_log"), 0);
        CHECK_EQ_INT(query_file(dir, "SELECT sum(clicks) FROM clicks_daily"), 3);
        CHECK_EQ_INT(s->ops->stats_link(s, a, strlen(a), TODAY, &st), 0);
        CHECK_EQ_INT(st.total_clicks, 3); /* not twice: memory was emptied */
        free(st.timeline);
        s->ops->close(s);
}

int main(void)
{
        if (!mkdtemp(root)) {
                perror("mkdtemp");
                return 1;
        }
        RUN(test_link_windows);
        RUN(test_clicks_add_up_and_lookups);
        RUN(test_platform_counters);
        RUN(test_migration_initialises);
        RUN(test_migration_3_keeps_totals);
        RUN(test_logged_clicks_add_to_rollup);
        RUN(test_logged_clicks_survive_a_crash);
        RUN(test_logged_days_past_the_bound);
        RUN(test_delete_forgets_logged_clicks);
        RUN(test_fold_when_due);
        test_rmtree(root);
        TEST_END("store_stats");
}
