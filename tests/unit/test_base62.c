/* tests/unit/test_base62.c - base62 codes: the alphabet's digit order, fixed
 * and shortest widths, round trips, boundaries and every error. */
#include <errno.h>
#include <stdint.h>

#include "ids/base62.h"
#include "ids/perm.h"
#include "test.h"

static void test_digits(void)
{
        char out[16];

        CHECK_EQ_INT(kurz_base62_encode(0, 0, out, sizeof(out)), 1);
        CHECK_EQ_STR(out, "0");
        CHECK_EQ_INT(kurz_base62_encode(9, 0, out, sizeof(out)), 1);
        CHECK_EQ_STR(out, "9");
        CHECK_EQ_INT(kurz_base62_encode(10, 0, out, sizeof(out)), 1);
        CHECK_EQ_STR(out, "a");
        CHECK_EQ_INT(kurz_base62_encode(35, 0, out, sizeof(out)), 1);
        CHECK_EQ_STR(out, "z");
        CHECK_EQ_INT(kurz_base62_encode(36, 0, out, sizeof(out)), 1);
        CHECK_EQ_STR(out, "A");
        CHECK_EQ_INT(kurz_base62_encode(61, 0, out, sizeof(out)), 1);
        CHECK_EQ_STR(out, "Z");
        CHECK_EQ_INT(kurz_base62_encode(62, 0, out, sizeof(out)), 2);
        CHECK_EQ_STR(out, "10");
        CHECK_EQ_INT(kurz_base62_encode(3843, 0, out, sizeof(out)), 2); /* 62^2-1 */
        CHECK_EQ_STR(out, "ZZ");
}

static void test_fixed_width(void)
{
        char out[16];

        CHECK_EQ_INT(kurz_base62_encode(0, 7, out, sizeof(out)), 7);
        CHECK_EQ_STR(out, "0000000");
        CHECK_EQ_INT(kurz_base62_encode(62, 7, out, sizeof(out)), 7);
        CHECK_EQ_STR(out, "0000010");
        CHECK_EQ_INT(kurz_base62_encode(KURZ_PERM_DOMAIN - 1, 7, out, sizeof(out)), 7);
        CHECK_EQ_STR(out, "ZZZZZZZ");
        /* 62^7 needs 8 digits. */
        CHECK_EQ_INT(kurz_base62_encode(KURZ_PERM_DOMAIN, 7, out, sizeof(out)), -ERANGE);
        CHECK_EQ_INT(kurz_base62_encode(KURZ_PERM_DOMAIN, 0, out, sizeof(out)), 8);
        CHECK_EQ_STR(out, "10000000");
}

static void test_cap(void)
{
        char out[16];

        /* cap must hold the digits and the NUL. */
        CHECK_EQ_INT(kurz_base62_encode(0, 7, out, 7), -ERANGE);
        CHECK_EQ_INT(kurz_base62_encode(0, 7, out, 8), 7);
        CHECK_EQ_INT(kurz_base62_encode(62, 0, out, 2), -ERANGE);
        CHECK_EQ_INT(kurz_base62_encode(62, 0, out, 3), 2);
        CHECK_EQ_INT(kurz_base62_encode(UINT64_MAX, 0, out, sizeof(out)), 11);
        CHECK_EQ_STR(out, "lYGhA16ahyf");
        CHECK_EQ_INT(kurz_base62_encode(UINT64_MAX, 10, out, sizeof(out)), -ERANGE);
}

static void test_decode(void)
{
        uint64_t v = 12345;

        CHECK_EQ_INT(kurz_base62_decode("0", 1, &v), 0);
        CHECK(v == 0);
        CHECK_EQ_INT(kurz_base62_decode("Z", 1, &v), 0);
        CHECK(v == 61);
        CHECK_EQ_INT(kurz_base62_decode("0000010", 7, &v), 0);
        CHECK(v == 62);
        CHECK_EQ_INT(kurz_base62_decode("ZZZZZZZ", 7, &v), 0);
        CHECK(v == KURZ_PERM_DOMAIN - 1);
        CHECK_EQ_INT(kurz_base62_decode("lYGhA16ahyf", 11, &v), 0);
        CHECK(v == UINT64_MAX);
        /* Only len bytes are read. */
        CHECK_EQ_INT(kurz_base62_decode("10xyz!", 2, &v), 0);
        CHECK(v == 62);
}

static void test_decode_errors(void)
{
        uint64_t v = 7;

        CHECK_EQ_INT(kurz_base62_decode("", 0, &v), -EINVAL);
        CHECK_EQ_INT(kurz_base62_decode("ab-c", 4, &v), -EINVAL);
        CHECK_EQ_INT(kurz_base62_decode("ab_c", 4, &v), -EINVAL);
        CHECK_EQ_INT(kurz_base62_decode("ab c", 4, &v), -EINVAL);
        CHECK_EQ_INT(kurz_base62_decode("\xc3\xa9", 2, &v), -EINVAL);
        CHECK_EQ_INT(kurz_base62_decode("a\0b", 3, &v), -EINVAL);
        /* UINT64_MAX + 1 and anything longer overflow. */
        CHECK_EQ_INT(kurz_base62_decode("lYGhA16ahyg", 11, &v), -ERANGE);
        CHECK_EQ_INT(kurz_base62_decode("100000000000", 12, &v), -ERANGE);
        CHECK_EQ_INT(kurz_base62_decode("ZZZZZZZZZZZZZZZZZZZZ", 20, &v), -ERANGE);
        /* Leading zeros are fine, however many. */
        CHECK_EQ_INT(kurz_base62_decode("0000000000000000000001", 22, &v), 0);
        CHECK(v == 1);
}

static void test_round_trip(void)
{
        uint64_t x = 0x9e3779b97f4a7c15ULL, v;
        char out[16];
        int n;

        for (int i = 0; i < 100000; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                uint64_t in = (i & 1) ? x : x % KURZ_PERM_DOMAIN;
                n = kurz_base62_encode(in, (i & 1) ? 0 : 7, out, sizeof(out));
                CHECK(n > 0);
                CHECK_EQ_INT(kurz_base62_decode(out, (size_t)n, &v), 0);
                CHECK(v == in);
                if (test_case_failed)
                        return;
        }
}

int main(void)
{
        RUN(test_digits);
        RUN(test_fixed_width);
        RUN(test_cap);
        RUN(test_decode);
        RUN(test_decode_errors);
        RUN(test_round_trip);
        TEST_END("base62");
}
