/* tests/unit/test.h - a minimal unit-test harness: each test file is one
 * program whose main() runs its cases; the last line it prints is
 * "unit <name>: N passed, N failed", which tests/run adds up. */
#ifndef KURZ_TESTS_UNIT_TEST_H
#define KURZ_TESTS_UNIT_TEST_H
#include <ftw.h>
#include <stdio.h>
#include <string.h>

static int test_passed, test_failed, test_case_failed;

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
                        test_case_failed = 1;                                                      \
                }                                                                                  \
        } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
        do {                                                                                       \
                long long va_ = (long long)(a), vb_ = (long long)(b);                              \
                if (va_ != vb_) {                                                                  \
                        fprintf(stderr, "  %s:%d: %s == %lld, expected %s == %lld\n", __FILE__,    \
                                __LINE__, #a, va_, #b, vb_);                                       \
                        test_case_failed = 1;                                                      \
                }                                                                                  \
        } while (0)

#define CHECK_EQ_STR(a, b)                                                                         \
        do {                                                                                       \
                const char *sa_ = (a), *sb_ = (b);                                                 \
                if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                       \
                        fprintf(stderr, "  %s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__,         \
                                sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                       \
                        test_case_failed = 1;                                                      \
                }                                                                                  \
        } while (0)

#define RUN(fn)                                                                                    \
        do {                                                                                       \
                test_case_failed = 0;                                                              \
                fn();                                                                              \
                if (test_case_failed) {                                                            \
                        test_failed++;                                                             \
                        fprintf(stderr, "FAIL %s\n", #fn);                                         \
                } else {                                                                           \
                        test_passed++;                                                             \
                        printf("ok   %s\n", #fn);                                                  \
                }                                                                                  \
        } while (0)

#define TEST_END(name)                                                                             \
        do {                                                                                       \
                printf("unit %s: %d passed, %d failed\n", name, test_passed, test_failed);         \
                return test_failed ? 1 : 0;                                                        \
        } while (0)
static inline int test_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
        (void)sb;
        (void)flag;
        (void)ftw;
        return remove(path);
}

/* Removes dir and everything under it (a test's scratch directory). */
static inline void test_rmtree(const char *dir)
{
        nftw(dir, test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
#endif
