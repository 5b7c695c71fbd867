/* fuzz/fuzz_json.c - the hand-written JSON output: kurz_json_escape must
 * always produce one valid JSON string literal (checked with jansson) that
 * decodes to the input when the input is valid UTF-8, with no raw byte a
 * browser could trip on; and RFC 3339 times must round-trip between
 * kurz_time_parse_rfc3339 and kurz_json_time. Input: a mode byte, then the
 * bytes. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "fuzz_json: invariant failed: %s\n", #cond);               \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above
 * U+10FFFF. */
static bool utf8_valid(const uint8_t *s, size_t n)
{
        size_t i = 0;

        while (i < n) {
                uint8_t c = s[i];
                size_t k;
                uint32_t cp;

                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf) {
                        k = 1;
                        cp = c & 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        k = 2;
                        cp = c & 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        k = 3;
                        cp = c & 0x07;
                } else {
                        return false;
                }
                if (n - i <= k)
                        return false;
                for (size_t j = 1; j <= k; j++) {
                        if ((s[i + j] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (s[i + j] & 0x3f);
                }
                if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += k + 1;
        }
        return true;
}

static void fuzz_escape(const uint8_t *p, size_t n)
{
        struct kurz_buf b = {0};
        json_error_t err;
        json_t *v;

        CHECK(kurz_json_escape(&b, (const char *)p, n) == 0);
        CHECK(b.len >= 2 && b.p[0] == '"' && b.p[b.len - 1] == '"');
        for (size_t i = 0; i < b.len; i++) {
                uint8_t c = (uint8_t)b.p[i];
                CHECK(c >= 0x20 && c != 0x7f && c != '<' && c != '>' && c != '&');
                if (c == 0xe2 && i + 2 < b.len && (uint8_t)b.p[i + 1] == 0x80)
                        CHECK((uint8_t)b.p[i + 2] != 0xa8 && (uint8_t)b.p[i + 2] != 0xa9);
        }
        CHECK(utf8_valid((const uint8_t *)b.p, b.len));
        v = json_loadb(b.p, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (!v)
                fprintf(stderr, "fuzz_json: jansson: %s\n", err.text);
        CHECK(v && json_is_string(v));
        if (utf8_valid(p, n))
                CHECK(json_string_length(v) == n &&
                      (n == 0 || memcmp(json_string_value(v), p, n) == 0));
        else
                CHECK(json_string_length(v) > 0);
        json_decref(v);
        kurz_buf_free(&b);
}

/* A time formatted by kurz_json_time parses back to itself. */
static void round_trip(int64_t t)
{
        struct kurz_buf b = {0};
        int64_t back;
        int rc = kurz_json_time(&b, t);

        if (rc == 0 && t != 0) {
                CHECK(b.len == 22 && b.p[0] == '"' && b.p[21] == '"');
                CHECK(kurz_time_parse_rfc3339(b.p + 1, 20, &back) == 0 && back == t);
        } else if (rc == 0) {
                CHECK(b.len == 4 && memcmp(b.p, "null", 4) == 0);
        }
        kurz_buf_free(&b);
}

static void fuzz_time(const uint8_t *p, size_t n)
{
        char *copy = malloc(n ? n : 1);
        int64_t t, t2;

        if (!copy)
                abort();
        if (n)
                memcpy(copy, p, n);
        if (kurz_time_parse_rfc3339(copy, n, &t) == 0) {
                struct kurz_buf b = {0};

                CHECK(n >= 20);
                /* Years 0000-9999 and offsets up to a day: in range. */
                CHECK(t > -62167219200LL - 86400 && t < 253402300800LL + 86400);
                if (kurz_json_time(&b, t) == 0 && t != 0) {
                        CHECK(kurz_time_parse_rfc3339(b.p + 1, b.len - 2, &t2) == 0 && t2 == t);
                }
                kurz_buf_free(&b);
                round_trip(t);
        }
        free(copy);
        if (n >= 8) {
                memcpy(&t, p, 8);
                round_trip(t);
                round_trip(t % 253402300800LL);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size == 0)
                return 0;
        if (data[0] & 1)
                fuzz_time(data + 1, size - 1);
        else
                fuzz_escape(data + 1, size - 1);
        return 0;
}
