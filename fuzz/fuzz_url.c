/* fuzz/fuzz_url.c - the target URL validator (kurz_url_check) and the
 * same-origin test, with the invariants the service relies on: an accepted
 * URL is safe to put in a Location header, its parts point into it, and
 * same-origin is reflexive and symmetric. Input: one URL, or two separated
 * by a NUL byte. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store/store.h"
#include "util/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "fuzz_url: invariant failed: %s\n", #cond);                \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

static bool inside(struct kurz_str part, struct kurz_str whole)
{
        return part.p >= whole.p && part.len <= whole.len &&
               (size_t)(part.p - whole.p) <= whole.len - part.len;
}

/* Checks one URL; returns true when accepted (parts filled). */
static bool check_one(struct kurz_str u, struct kurz_url_parts *pp)
{
        struct kurz_url_parts p;
        const char *err = kurz_url_check(u, KURZ_URL_MAX, &p);

        if (err) {
                CHECK(err[0] != '\0' && strlen(err) < 200);
                /* Refused with a tighter bound too (parts optional). */
                CHECK(kurz_url_check(u, KURZ_URL_MAX, NULL) != NULL);
                return false;
        }
        CHECK(u.len <= KURZ_URL_MAX);
        for (size_t i = 0; i < u.len; i++) {
                unsigned char ch = (unsigned char)u.p[i];
                CHECK(ch > 0x20 && ch < 0x7f); /* no CR, LF, NUL, space, control, non-ASCII */
        }
        CHECK(inside(p.scheme, u) && inside(p.host, u));
        CHECK(p.scheme.p == u.p);
        CHECK((p.scheme.len == 4 && strncasecmp(p.scheme.p, "http", 4) == 0) ||
              (p.scheme.len == 5 && strncasecmp(p.scheme.p, "https", 5) == 0));
        CHECK(u.len >= p.scheme.len + 3 && memcmp(u.p + p.scheme.len, "://", 3) == 0);
        CHECK(p.host.len > 0);
        CHECK(p.port >= 1 && p.port <= 65535);
        for (size_t i = 0; i < p.host.len; i++) {
                char ch = p.host.p[i];
                CHECK(ch != '/' && ch != '?' && ch != '#' && ch != '@' && ch != '\\');
        }
        CHECK(kurz_url_same_origin(&p, &p));
        /* Deterministic, with or without a length bound that fits. */
        CHECK(kurz_url_check(u, u.len, NULL) == NULL);
        if (u.len)
                CHECK(kurz_url_check(u, u.len - 1, NULL) != NULL);
        *pp = p;
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *s = (const char *)data;
        const char *nul = memchr(s, '\0', size);
        struct kurz_str a = {s, nul ? (size_t)(nul - s) : size};
        struct kurz_str b = {nul ? nul + 1 : NULL, nul ? size - a.len - 1 : 0};
        struct kurz_url_parts pa, pb;
        bool oka, okb;

        /* Copies, so ASan sees any read past the slice. */
        char *ca = malloc(a.len ? a.len : 1), *cb = malloc(b.len ? b.len : 1);
        if (!ca || !cb)
                abort();
        if (a.len)
                memcpy(ca, a.p, a.len);
        if (b.len)
                memcpy(cb, b.p, b.len);
        a.p = ca;
        b.p = cb;
        oka = check_one(a, &pa);
        okb = nul && check_one(b, &pb);
        if (oka && okb)
                CHECK(kurz_url_same_origin(&pa, &pb) == kurz_url_same_origin(&pb, &pa));
        free(ca);
        free(cb);
        return 0;
}
