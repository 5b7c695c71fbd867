/* fuzz/fuzz_alias.c - the alias validator and the code syntax test of the
 * router, against a reference definition: a code is 1-64 of [0-9A-Za-z_-];
 * an accepted alias is a code of 3-64 characters. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "fuzz_alias: invariant failed: %s\n", #cond);              \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

static bool ref_code(const char *p, size_t len)
{
        if (len < 1 || len > 64)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = p[i];
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      c == '_' || c == '-'))
                        return false;
        }
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *copy = malloc(size ? size : 1);
        struct kurz_str s;
        const char *err;

        if (!copy)
                abort();
        if (size)
                memcpy(copy, data, size);
        s = (struct kurz_str){copy, size};
        CHECK(kurz_code_syntax_ok(s) == ref_code(copy, size));
        err = kurz_alias_check(s);
        if (err) {
                CHECK(err[0] != '\0' && strlen(err) < 200);
        } else {
                CHECK(size >= 3 && size <= 64);
                CHECK(ref_code(copy, size));
        }
        free(copy);
        return 0;
}
