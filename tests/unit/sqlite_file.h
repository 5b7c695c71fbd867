/* tests/unit/sqlite_file.h - direct access to a store's kurz.db for the
 * SQLite store tests: what the file holds, and changes behind the store's
 * back. Include after test.h and <sqlite3.h>. */
#ifndef KURZ_TESTS_UNIT_SQLITE_FILE_H
#define KURZ_TESTS_UNIT_SQLITE_FILE_H
#include <sqlite3.h>
#include <stdio.h>

/* SQL that turns a file of schema 5 back into schema 4 (links keyed by
 * code, with its URL hash index), for the tests of older files: prefix it to
 * what undoes the earlier steps. */
#define TO_SCHEMA_4                                                                                \
        "DROP TRIGGER links_added; DROP TRIGGER links_removed;"                                    \
        "CREATE TABLE links4(code TEXT PRIMARY KEY, url TEXT NOT NULL,"                            \
        " url_hash INTEGER NOT NULL, created_at INTEGER NOT NULL,"                                 \
        " expires_at INTEGER NOT NULL DEFAULT 0, is_alias INTEGER NOT NULL DEFAULT 0,"             \
        " dedupe INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"                                       \
        "INSERT INTO links4 SELECT code, url, url_hash, created_at, expires_at, is_alias, dedupe"  \
        " FROM links;"                                                                             \
        "DROP TABLE links; DROP TABLE link_codes; DROP TABLE link_urls;"                           \
        " DROP TABLE links_unindexed;"                                                             \
        "ALTER TABLE links4 RENAME TO links;"                                                      \
        "CREATE INDEX links_url_hash ON links(url_hash);"                                          \
        "CREATE INDEX links_expires_at ON links(expires_at) WHERE expires_at > 0;"                 \
        "DELETE FROM schema_version; INSERT INTO schema_version VALUES(4);"

/* Runs a query on dir/kurz.db and returns its single integer (or -1). */
static inline long long query_file(const char *dir, const char *sql)
{
        char path[512];
        sqlite3 *db;
        sqlite3_stmt *st;
        long long v = -1;

        snprintf(path, sizeof(path), "%s/kurz.db", dir);
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
                sqlite3_close(db);
                return -1;
        }
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
                if (sqlite3_step(st) == SQLITE_ROW)
                        v = sqlite3_column_int64(st, 0);
                sqlite3_finalize(st);
        }
        sqlite3_close(db);
        return v;
}

/* Runs sql on dir/kurz.db; a failure fails the test case. */
static inline void exec_file(const char *dir, const char *sql)
{
        char path[512];
        sqlite3 *db;

        snprintf(path, sizeof(path), "%s/kurz.db", dir);
        CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
        sqlite3_busy_timeout(db, 2000);
        CHECK_EQ_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
}
#endif
