/* tests/unit/test_json.c - JSON string escaping (quotes, controls, HTML
 * metacharacters, line separators, invalid UTF-8), RFC 3339 output and
 * parsing. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>

#include "test.h"
#include "util/json.h"

/* Escapes p[0..len) into a fresh NUL-terminated string in *b. */
static const char *esc(struct kurz_buf *b, const char *p, size_t len)
{
        kurz_buf_free(b);
        if (kurz_json_escape(b, p, len) != 0 || kurz_buf_append(b, "", 1) != 0)
                return NULL;
        return b->p;
}

#define ESC(lit) esc(&b, (lit), sizeof(lit) - 1)

static void test_escape_basic(void)
{
        struct kurz_buf b = {0};

        CHECK_EQ_STR(ESC(""), "\"\"");
        CHECK_EQ_STR(esc(&b, NULL, 0), "\"\"");
        CHECK_EQ_STR(ESC("https://example.com/a?b=c"), "\"https://example.com/a?b=c\"");
        CHECK_EQ_STR(ESC("say \"hi\""), "\"say \\\"hi\\\"\"");
        CHECK_EQ_STR(ESC("a\\b"), "\"a\\\\b\"");
        CHECK_EQ_STR(ESC("/'"), "\"/'\"");
        kurz_buf_free(&b);
}

static void test_escape_controls(void)
{
        struct kurz_buf b = {0};

        CHECK_EQ_STR(ESC("a\nb\rc\td"), "\"a\\nb\\rc\\td\"");
        CHECK_EQ_STR(ESC("\b\f"), "\"\\b\\f\"");
        CHECK_EQ_STR(ESC("\x01\x1f\x7f"), "\"\\u0001\\u001f\\u007f\"");
        CHECK_EQ_STR(ESC("a\0b"), "\"a\\u0000b\"");
        kurz_buf_free(&b);
}

static void test_escape_html(void)
{
        struct kurz_buf b = {0};

        CHECK_EQ_STR(ESC("</script><script>alert(1)</script>"),
                     "\"\\u003c/script\\u003e\\u003cscript\\u003ealert(1)\\u003c/script\\u003e\"");
        CHECK_EQ_STR(ESC("a&b"), "\"a\\u0026b\"");
        kurz_buf_free(&b);
}

static void test_escape_utf8(void)
{
        struct kurz_buf b = {0};

        /* Well-formed UTF-8 passes through. */
        CHECK_EQ_STR(ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                     "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
        CHECK_EQ_STR(ESC("\xef\xbf\xbf"), "\"\xef\xbf\xbf\"");         /* U+FFFF */
        CHECK_EQ_STR(ESC("\xf4\x8f\xbf\xbf"), "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
        /* Line separators are escaped. */
        CHECK_EQ_STR(ESC("a\xe2\x80\xa8"
                         "b\xe2\x80\xa9"),
                     "\"a\\u2028b\\u2029\"");
        /* Ill-formed bytes become U+FFFD, one per byte. */
        CHECK_EQ_STR(ESC("\xff"), "\"\\ufffd\"");
        CHECK_EQ_STR(ESC("a\x80z"), "\"a\\ufffdz\"");
        CHECK_EQ_STR(ESC("\xc3"), "\"\\ufffd\"");                       /* truncated */
        CHECK_EQ_STR(ESC("\xe2\x82"), "\"\\ufffd\\ufffd\"");            /* truncated */
        CHECK_EQ_STR(ESC("\xc0\xaf"), "\"\\ufffd\\ufffd\"");            /* overlong '/' */
        CHECK_EQ_STR(ESC("\xe0\x80\xbc"), "\"\\ufffd\\ufffd\\ufffd\""); /* overlong '<' */
        CHECK_EQ_STR(ESC("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
        CHECK_EQ_STR(ESC("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > 10FFFF */
        CHECK_EQ_STR(ESC("\xc3(x"), "\"\\ufffd(x\"");
        kurz_buf_free(&b);
}

static void test_escape_is_valid_json(void)
{
        struct kurz_buf b = {0};
        uint64_t x = 88172645463325252ULL;
        char in[64];
        int bad = 0;

        /* Random bytes always give a literal a JSON parser accepts. */
        for (int i = 0; i < 2000; i++) {
                for (size_t j = 0; j < sizeof(in); j++) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        in[j] = (char)(x >> 24);
                }
                const char *s = esc(&b, in, sizeof(in));
                json_t *v = s ? json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL) : NULL;
                if (!v || !json_is_string(v))
                        bad++;
                json_decref(v);
        }
        CHECK_EQ_INT(bad, 0);
        kurz_buf_free(&b);
}

static void test_escape_limit(void)
{
        struct kurz_buf b = {.limit = 8};

        CHECK_EQ_INT(kurz_json_escape(&b, "abcdef", 6), 0); /* 8 bytes with quotes */
        b.len = 0;
        CHECK(kurz_json_escape(&b, "abcdefg", 7) == -E2BIG);
        b.len = 0;
        CHECK(kurz_json_escape(&b, "<<", 2) == -E2BIG); /* grows past the cap */
        kurz_buf_free(&b);
}

static const char *time_str(struct kurz_buf *b, int64_t t)
{
        kurz_buf_free(b);
        if (kurz_json_time(b, t) != 0 || kurz_buf_append(b, "", 1) != 0)
                return NULL;
        return b->p;
}

static void test_time_format(void)
{
        struct kurz_buf b = {0};

        CHECK_EQ_STR(time_str(&b, 0), "null");
        CHECK_EQ_STR(time_str(&b, 1), "\"1970-01-01T00:00:01Z\"");
        CHECK_EQ_STR(time_str(&b, 1795907282), "\"2026-11-28T23:08:02Z\"");
        CHECK_EQ_STR(time_str(&b, 951782400), "\"2000-02-29T00:00:00Z\"");
        CHECK_EQ_STR(time_str(&b, 4102444799), "\"2099-12-31T23:59:59Z\"");
        CHECK_EQ_STR(time_str(&b, -1), "\"1969-12-31T23:59:59Z\"");
        CHECK_EQ_STR(time_str(&b, 253402300799LL), "\"9999-12-31T23:59:59Z\"");
        kurz_buf_free(&b);
        CHECK_EQ_INT(kurz_json_time(&b, 253402300800LL), -ERANGE);
        kurz_buf_free(&b);
}

static int parse(const char *s, int64_t *t)
{
        return kurz_time_parse_rfc3339(s, strlen(s), t);
}

static void test_time_parse(void)
{
        int64_t t = 0;

        CHECK_EQ_INT(parse("2026-11-28T23:08:02Z", &t), 0);
        CHECK(t == 1795907282);
        CHECK_EQ_INT(parse("2026-11-28t23:08:02z", &t), 0);
        CHECK(t == 1795907282);
        CHECK_EQ_INT(parse("1970-01-01T00:00:00Z", &t), 0);
        CHECK(t == 0);
        /* Offsets: the same instant written in other zones. */
        CHECK_EQ_INT(parse("2026-11-29T00:08:02+01:00", &t), 0);
        CHECK(t == 1795907282);
        CHECK_EQ_INT(parse("2026-11-28T17:38:02-05:30", &t), 0);
        CHECK(t == 1795907282);
        CHECK_EQ_INT(parse("2026-11-28T23:08:02+00:00", &t), 0);
        CHECK(t == 1795907282);
        CHECK_EQ_INT(parse("2026-11-28T23:08:02-00:00", &t), 0);
        CHECK(t == 1795907282);
        /* Fractions are truncated. */
        CHECK_EQ_INT(parse("2026-11-28T23:08:02.999Z", &t), 0);
        CHECK(t == 1795907282);
        CHECK_EQ_INT(parse("2026-11-28T23:08:02.1234567890123+01:00", &t), 0);
        CHECK(t == 1795907282 - 3600);
        /* Leap years and a leap second. */
        CHECK_EQ_INT(parse("2000-02-29T00:00:00Z", &t), 0);
        CHECK(t == 951782400);
        CHECK_EQ_INT(parse("2024-02-29T12:00:00Z", &t), 0);
        CHECK_EQ_INT(parse("2016-12-31T23:59:60Z", &t), 0);
        CHECK(t == 1483228800);
        /* Only len bytes are read. */
        CHECK_EQ_INT(kurz_time_parse_rfc3339("1970-01-01T00:00:10Zgarbage", 20, &t), 0);
        CHECK(t == 10);
}

static void test_time_parse_invalid(void)
{
        static const char *const bad[] = {
            "",
            "garbage",
            "2026-02-30T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-10T00:00:00Z",
            "2026-01-00T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T23:60:00Z",
            "2026-01-01T23:59:61Z",
            "2026-01-01T00:00:00",
            "2026-01-01 00:00:00Z",
            "2026-01-01",
            "2026-01-01T00:00Z",
            "2026-1-01T00:00:00Z",
            "26-01-01T00:00:00Z",
            "+2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00ZZ",
            "2026-01-01T00:00:00Z ",
            " 2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00+01",
            "2026-01-01T00:00:00+0100",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00+01:60",
            "2026-01-01T00:00:00UTC",
            "2026-01-01X00:00:00Z",
            "２０２６-01-01T00:00:00Z",
            "1795907282",
        };
        int64_t t = 42;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (parse(bad[i], &t) != -EINVAL) {
                        fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
                        CHECK(0);
                }
        }
        CHECK(t == 42); /* untouched on error */
        CHECK_EQ_INT(kurz_time_parse_rfc3339(NULL, 0, &t), -EINVAL);
        /* A NUL inside. */
        CHECK_EQ_INT(kurz_time_parse_rfc3339("2026-01-01T00:00:00Z\0", 21, &t), -EINVAL);
}

static void test_time_round_trip(void)
{
        struct kurz_buf b = {0};
        int64_t back;
        int bad = 0;

        for (int64_t t = -2208988800LL; t < 4102444800LL; t += 86399 * 7 + 3607) {
                const char *s = time_str(&b, t == 0 ? 1 : t);
                if (!s || kurz_time_parse_rfc3339(s + 1, strlen(s) - 2, &back) != 0 ||
                    back != (t == 0 ? 1 : t))
                        bad++;
        }
        CHECK_EQ_INT(bad, 0);
        kurz_buf_free(&b);
}

int main(void)
{
        RUN(test_escape_basic);
        RUN(test_escape_controls);
        RUN(test_escape_html);
        RUN(test_escape_utf8);
        RUN(test_escape_is_valid_json);
        RUN(test_escape_limit);
        RUN(test_time_format);
        RUN(test_time_parse);
        RUN(test_time_parse_invalid);
        RUN(test_time_round_trip);
        TEST_END("json");
}
