/* tests/unit/test_codegen.c - the code generator against a fake store that
 * only leases counters and hands out a permutation key: compact codes are 7
 * base62 characters, unique across blocks and generators, leased once per
 * block, and run out with -ENOSPC; snowflake codes are increasing ids. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "ids/base62.h"
#include "ids/codegen.h"
#include "ids/perm.h"
#include "test.h"

struct fake_store {
        struct kurz_store base; /* first, so a kurz_store * is a fake_store * */
        uint64_t counter;       /* next value to lease */
        int leases;
        uint64_t last_n;
        int fail_lease; /* error to return from the next lease, or 0 */
        int fail_key;
};

static const uint8_t fake_key[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};

static int fake_lease(struct kurz_store *s, uint64_t n, uint64_t *start)
{
        struct fake_store *f = (struct fake_store *)s;

        if (f->fail_lease) {
                int rc = f->fail_lease;
                f->fail_lease = 0;
                return rc;
        }
        f->leases++;
        f->last_n = n;
        *start = f->counter;
        f->counter += n;
        return 0;
}

static int fake_permutation_key(struct kurz_store *s, uint8_t key[16])
{
        struct fake_store *f = (struct fake_store *)s;

        if (f->fail_key)
                return f->fail_key;
        memcpy(key, fake_key, 16);
        return 0;
}

static const struct kurz_store_ops fake_ops = {
    .lease_counter = fake_lease,
    .permutation_key = fake_permutation_key,
};

static void fake_init(struct fake_store *f, uint64_t counter)
{
        memset(f, 0, sizeof(*f));
        f->base.ops = &fake_ops;
        f->base.name = "fake";
        f->counter = counter;
}

static struct kurz_codegen *compact_new(struct fake_store *f, uint64_t block)
{
        struct kurz_codegen_config cfg = {
            .kind = KURZ_CODES_COMPACT,
            .store = &f->base,
            .block = block,
        };
        struct kurz_codegen *g = NULL;

        CHECK_EQ_INT(kurz_codegen_new(&cfg, &g), 0);
        return g;
}

static bool is_code(const char *s)
{
        if (strlen(s) != 7)
                return false;
        for (; *s; s++) {
                char c = *s;
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
                        return false;
        }
        return true;
}

static int cmp_code(const void *a, const void *b)
{
        return strcmp(a, b);
}

#define NCODES 2500

static void test_compact_codes(void)
{
        struct fake_store f;
        struct kurz_codegen *g, *g2;
        static char codes[2 * NCODES][8];
        int bad = 0, dups = 0;

        fake_init(&f, 0);
        g = compact_new(&f, 100);
        if (!g)
                return;
        CHECK_EQ_INT(f.leases, 0); /* nothing leased until a code is asked for */
        for (int i = 0; i < NCODES; i++) {
                CHECK_EQ_INT(kurz_codegen_next(g, codes[i], sizeof(codes[i])), 0);
                if (!is_code(codes[i]))
                        bad++;
        }
        CHECK_EQ_INT(bad, 0);
        /* One lease per block of 100. */
        CHECK_EQ_INT(f.leases, NCODES / 100);
        CHECK(f.last_n == 100);
        /* The codes are the store key's permutation of the counters. */
        {
                struct kurz_perm p;
                char want[8];
                kurz_perm_init(&p, fake_key);
                kurz_base62_encode(kurz_perm_apply(&p, 0), 7, want, sizeof(want));
                CHECK_EQ_STR(codes[0], want);
                kurz_base62_encode(kurz_perm_apply(&p, NCODES - 1), 7, want, sizeof(want));
                CHECK_EQ_STR(codes[NCODES - 1], want);
        }
        /* A second generator on the same store (another process, or a
         * restart) continues from the store's counter. */
        g2 = compact_new(&f, 100);
        if (g2) {
                for (int i = NCODES; i < 2 * NCODES; i++) {
                        /* interleave the two generators */
                        struct kurz_codegen *which = (i & 1) ? g : g2;
                        CHECK_EQ_INT(kurz_codegen_next(which, codes[i], sizeof(codes[i])), 0);
                }
                kurz_codegen_free(g2);
        }
        qsort(codes, 2 * NCODES, sizeof(codes[0]), cmp_code);
        for (int i = 1; i < 2 * NCODES; i++)
                if (strcmp(codes[i], codes[i - 1]) == 0)
                        dups++;
        CHECK_EQ_INT(dups, 0);
        kurz_codegen_free(g);
}

static void test_default_block(void)
{
        struct fake_store f;
        struct kurz_codegen *g;
        char code[16];

        fake_init(&f, 0);
        g = compact_new(&f, 0);
        if (!g)
                return;
        CHECK_EQ_INT(kurz_codegen_next(g, code, sizeof(code)), 0);
        CHECK(f.last_n == 1000);
        for (int i = 1; i < 1000; i++)
                kurz_codegen_next(g, code, sizeof(code));
        CHECK_EQ_INT(f.leases, 1);
        CHECK_EQ_INT(kurz_codegen_next(g, code, sizeof(code)), 0);
        CHECK_EQ_INT(f.leases, 2);
        kurz_codegen_free(g);
}

static void test_exhaustion(void)
{
        struct fake_store f;
        struct kurz_codegen *g;
        char code[16];

        fake_init(&f, KURZ_PERM_DOMAIN - 2);
        g = compact_new(&f, 100);
        if (!g)
                return;
        CHECK_EQ_INT(kurz_codegen_next(g, code, sizeof(code)), 0);
        CHECK(is_code(code));
        CHECK_EQ_INT(kurz_codegen_next(g, code, sizeof(code)), 0);
        CHECK(is_code(code));
        CHECK_EQ_INT(kurz_codegen_next(g, code, sizeof(code)), -ENOSPC);
        CHECK_EQ_INT(kurz_codegen_next(g, code, sizeof(code)), -ENOSPC);
        CHECK_EQ_INT(f.leases, 1);
        kurz_codegen_free(g);

        /* A lease that starts past the end. */
        fake_init(&f, KURZ_PERM_DOMAIN);
        g = compact_new(&f, 100);
        if (!g)
                return;
        CHECK_EQ_INT(kurz_codegen_next(g, code, sizeof(code)), -ENOSPC);
        kurz_codegen_free(g);
}

static void test_store_errors(void)
{
        struct fake_store f;
        struct kurz_codegen *g;
        struct kurz_codegen_config cfg = {.kind = KURZ_CODES_COMPACT, .store = &f.base};
        char code[16], first[16];

        /* No key, no generator. */
        fake_init(&f, 0);
        f.fail_key = KURZ_E_UNAVAILABLE;
        g = (struct kurz_codegen *)&f;
        CHECK_EQ_INT(kurz_codegen_new(&cfg, &g), KURZ_E_UNAVAILABLE);
        CHECK(g == NULL);

        /* A failed lease fails this code only; the next call leases again. */
        fake_init(&f, 0);
        g = compact_new(&f, 10);
        if (!g)
                return;
        f.fail_lease = KURZ_E_UNAVAILABLE;
        CHECK_EQ_INT(kurz_codegen_next(g, code, sizeof(code)), KURZ_E_UNAVAILABLE);
        CHECK_EQ_INT(kurz_codegen_next(g, first, sizeof(first)), 0);
        CHECK_EQ_INT(f.leases, 1);
        /* Too small a buffer spends no counter. */
        CHECK_EQ_INT(kurz_codegen_next(g, code, 7), -ERANGE);
        CHECK_EQ_INT(kurz_codegen_next(g, code, 8), 0);
        CHECK_EQ_INT(strlen(code), 7);
        {
                struct kurz_perm p;
                char want[8];
                kurz_perm_init(&p, fake_key);
                kurz_base62_encode(kurz_perm_apply(&p, 1), 7, want, sizeof(want));
                CHECK_EQ_STR(code, want);
        }
        kurz_codegen_free(g);

        /* A store without the ops compact needs. */
        static const struct kurz_store_ops no_ops;
        struct kurz_store bare = {.ops = &no_ops, .name = "bare"};
        cfg.store = &bare;
        CHECK_EQ_INT(kurz_codegen_new(&cfg, &g), -EINVAL);
        cfg.store = NULL;
        CHECK_EQ_INT(kurz_codegen_new(&cfg, &g), -EINVAL);
}

static uint64_t fixed_clock(void *arg)
{
        return *(uint64_t *)arg;
}

static void test_snowflake_codes(void)
{
        uint64_t now = 1704067200000ULL + 86400000ULL;
        struct kurz_codegen_config cfg = {
            .kind = KURZ_CODES_SNOWFLAKE,
            .snowflake = {.worker_id = 3, .clock = fixed_clock, .clock_arg = &now},
        };
        struct kurz_codegen *g;
        char code[16];
        uint64_t id, prev = 0;

        CHECK_EQ_INT(kurz_codegen_new(&cfg, &g), 0);
        if (!g)
                return;
        for (int i = 0; i < 100; i++) {
                CHECK_EQ_INT(kurz_codegen_next(g, code, sizeof(code)), 0);
                CHECK_EQ_INT(kurz_base62_decode(code, strlen(code), &id), 0);
                CHECK(id > prev);
                CHECK(id >> 22 == 86400000ULL);
                CHECK_EQ_INT((id >> 12) & 1023, 3);
                /* shortest form: no leading zero */
                CHECK(code[0] != '0');
                prev = id;
        }
        now = 1704067200000ULL - 1; /* before the epoch */
        CHECK_EQ_INT(kurz_codegen_next(g, code, sizeof(code)), -EAGAIN);
        kurz_codegen_free(g);

        cfg.snowflake.worker_id = 1024;
        CHECK_EQ_INT(kurz_codegen_new(&cfg, &g), -EINVAL);
        kurz_codegen_free(NULL);
}

int main(void)
{
        RUN(test_compact_codes);
        RUN(test_default_block);
        RUN(test_exhaustion);
        RUN(test_store_errors);
        RUN(test_snowflake_codes);
        TEST_END("codegen");
}
