/* tests/unit/test_shards.c - the shards file parser (the documented format,
 * slot coverage exactly once, clear errors) and slot routing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/shards.h"
#include "test.h"
#include "util/hash.h"

static const char two[] =
    "# two shards\n"
    "\n"
    "shard a primary=postgres://k:pw@127.0.0.1:25432/kurz "
    "replicas=postgres://k:pw@127.0.0.1:25433/kurz,postgres://k:pw@127.0.0.1:25434/kurz "
    "slots=0-2047   # the first half\n"
    "  shard b\tprimary=postgresql://k:pw@127.0.0.1:25442/kurz slots=2048-4000,4001,4002-4095\r\n";

static int parse(const char *text, struct kurz_shards **s, char *err, size_t cap)
{
        return kurz_shards_parse(text, strlen(text), s, err, cap);
}

static void test_documented_format(void)
{
        struct kurz_shards *s = NULL;
        char err[256];

        CHECK_EQ_INT(parse(two, &s, err, sizeof(err)), 0);
        CHECK_EQ_STR(err, "");
        if (!s)
                return;
        CHECK_EQ_INT(s->n, 2);
        CHECK_EQ_STR(s->shards[0].name, "a");
        CHECK_EQ_STR(s->shards[0].primary, "postgres://k:pw@127.0.0.1:25432/kurz");
        CHECK_EQ_INT(s->shards[0].n_replicas, 2);
        CHECK_EQ_STR(s->shards[0].replicas[1], "postgres://k:pw@127.0.0.1:25434/kurz");
        CHECK_EQ_STR(s->shards[1].name, "b");
        CHECK_EQ_INT(s->shards[1].n_replicas, 0);
        CHECK_EQ_INT(s->slot_shard[0], 0);
        CHECK_EQ_INT(s->slot_shard[2047], 0);
        CHECK_EQ_INT(s->slot_shard[2048], 1);
        CHECK_EQ_INT(s->slot_shard[4001], 1);
        CHECK_EQ_INT(s->slot_shard[4095], 1);
        kurz_shards_free(s);
}

static void test_interleaved_slots(void)
{
        static const char t[] = "shard x primary=postgres://h/db slots=0-99,200-4095\n"
                                "shard y primary=postgres://h2/db slots=100-199";
        struct kurz_shards *s = NULL;
        char err[256];

        CHECK_EQ_INT(parse(t, &s, err, sizeof(err)), 0);
        if (!s)
                return;
        CHECK_EQ_INT(s->slot_shard[99], 0);
        CHECK_EQ_INT(s->slot_shard[100], 1);
        CHECK_EQ_INT(s->slot_shard[199], 1);
        CHECK_EQ_INT(s->slot_shard[200], 0);
        kurz_shards_free(s);
}

/* Each bad text must fail with -EINVAL and an error mentioning needle. */
static void expect_bad(const char *text, const char *needle)
{
        struct kurz_shards *s = (struct kurz_shards *)1;
        char err[256];
        int rc = parse(text, &s, err, sizeof(err));

        CHECK_EQ_INT(rc, -EINVAL);
        CHECK(s == NULL);
        if (!strstr(err, needle)) {
                fprintf(stderr, "  error \"%s\" lacks \"%s\"\n", err, needle);
                CHECK(0);
        }
}

static void test_rejects_gaps_overlaps_garbage(void)
{
        expect_bad("shard a primary=postgres://h/d slots=0-4094\n", "slots 4095-4095");
        expect_bad("shard a primary=postgres://h/d slots=0-100\n"
                   "shard b primary=postgres://h/e slots=200-4095\n",
                   "slots 101-199 are owned by no shard");
        expect_bad("shard a primary=postgres://h/d slots=0-2048\n"
                   "shard b primary=postgres://h/e slots=2048-4095\n",
                   "line 2: slot 2048 is already owned by shard a");
        expect_bad("shard a primary=postgres://h/d slots=0-4095,7\n", "slot 7 is already");
        expect_bad("shard a primary=postgres://h/d slots=0-4096\n", "out of range");
        expect_bad("shard a primary=postgres://h/d slots=10-5\n", "bad slot range");
        expect_bad("shard a primary=postgres://h/d slots=0-4095,\n", "trailing comma");
        expect_bad("shard a primary=postgres://h/d slots=x\n", "bad slot range");
        expect_bad("shard a primary=postgres://h/d slots=\n", "empty");
        expect_bad("shard a slots=0-4095\n", "no primary");
        expect_bad("shard a primary=postgres://h/d\n", "no slots");
        expect_bad("shard a primary=http://h/d slots=0-4095\n", "primary");
        expect_bad("shard a primary=postgres://h/d replicas=mysql://x slots=0-4095\n", "replica");
        expect_bad("shard a primary=postgres://h/d colour=red slots=0-4095\n", "unknown key");
        expect_bad("primary=postgres://h/d slots=0-4095\n", "expected \"shard");
        expect_bad("shard a primary=postgres://h/d slots=0-2047\n"
                   "shard a primary=postgres://h/e slots=2048-4095\n",
                   "duplicate shard name");
        expect_bad("# nothing\n\n", "no shard lines");
        expect_bad("shard\n", "needs a name");
        expect_bad("shard a\"b primary=postgres://h/d slots=0-4095\n", "bad shard name");
        expect_bad("garbage \x01\x02 here", "expected");
}

static void test_nul_and_size(void)
{
        static const char t[] = "shard a primary=postgres://h/d\0 slots=0-4095\n";
        struct kurz_shards *s = NULL;
        char err[128];

        CHECK_EQ_INT(kurz_shards_parse(t, sizeof(t) - 1, &s, err, sizeof(err)), -EINVAL);
        CHECK(strstr(err, "NUL") != NULL);
        CHECK(s == NULL);
}

static void test_single_and_routing(void)
{
        struct kurz_shards *s = NULL, *two_s = NULL;
        char err[256];
        unsigned seen[2] = {0, 0};

        CHECK_EQ_INT(kurz_shards_single("postgres://u:p@h:1/db",
                                        "postgres://r1/db,postgres://r2/db", &s, err, sizeof(err)),
                     0);
        if (!s)
                return;
        CHECK_EQ_INT(s->n, 1);
        CHECK_EQ_INT(s->shards[0].n_replicas, 2);
        CHECK_EQ_INT(kurz_shards_route(s, "abc1234", 7), 0);
        kurz_shards_free(s);
        CHECK_EQ_INT(kurz_shards_single("nope", NULL, &s, err, sizeof(err)), -EINVAL);
        CHECK(strstr(err, "--database") != NULL);
        CHECK_EQ_INT(
            kurz_shards_single("postgres://h/db", "postgres://r/db,,", &s, err, sizeof(err)),
            -EINVAL);

        CHECK_EQ_INT(parse(two, &two_s, err, sizeof(err)), 0);
        if (!two_s)
                return;
        /* slot = kurz_hash(code) % 4096, routed through the table. */
        for (int i = 0; i < 1000; i++) {
                char code[16];
                int len = snprintf(code, sizeof(code), "c%06d", i);
                unsigned slot = kurz_shards_slot(code, (size_t)len);
                unsigned sh = kurz_shards_route(two_s, code, (size_t)len);

                CHECK_EQ_INT(slot, kurz_hash(code, (size_t)len) % 4096);
                CHECK_EQ_INT(sh, slot < 2048 ? 0 : 1);
                seen[sh]++;
        }
        /* A uniform hash spreads codes over both halves. */
        CHECK(seen[0] > 400 && seen[1] > 400);
        CHECK_EQ_INT(kurz_shards_route_hash(two_s, 2047), 0);
        CHECK_EQ_INT(kurz_shards_route_hash(two_s, 4096 + 2048), 1);
        kurz_shards_free(two_s);
}

static void test_load_file(void)
{
        char path[] = "/tmp/kurz-shards-XXXXXX";
        struct kurz_shards *s = NULL;
        char err[256];
        int fd = mkstemp(path);
        FILE *f;

        CHECK(fd >= 0);
        if (fd < 0)
                return;
        f = fdopen(fd, "w");
        fputs(two, f);
        fclose(f);
        CHECK_EQ_INT(kurz_shards_load(path, &s, err, sizeof(err)), 0);
        CHECK(s && s->n == 2);
        kurz_shards_free(s);
        unlink(path);
        CHECK(kurz_shards_load(path, &s, err, sizeof(err)) < 0);
        CHECK(strstr(err, "cannot open") != NULL);
}

int main(void)
{
        RUN(test_documented_format);
        RUN(test_interleaved_slots);
        RUN(test_rejects_gaps_overlaps_garbage);
        RUN(test_nul_and_size);
        RUN(test_single_and_routing);
        RUN(test_load_file);
        TEST_END("shards");
}
