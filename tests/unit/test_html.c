/* tests/unit/test_html.c - the HTML escaping, URL encoding and form decoding
 * that stand between user input and the web pages (api/html.c). */
#include <errno.h>
#include <stdlib.h>

#include "api/html.h"
#include "test.h"

static char *esc(const char *p, size_t len)
{
        struct kurz_buf b = {0};

        if (kurz_html_escape(&b, p, len) < 0)
                return NULL;
        return b.p; /* NUL-terminated, caller frees */
}

static void test_escape_markup(void)
{
        const char in[] = "x\"><img src=x onerror=window.__pwned=1>&'</script>";
        char *o = esc(in, sizeof(in) - 1);

        CHECK_EQ_STR(o, "x&quot;&gt;&lt;img src=x onerror=window.__pwned=1&gt;&amp;&#39;&lt;"
                        "/script&gt;");
        free(o);
        o = esc("plain https://example.com/?a=1", 30);
        CHECK_EQ_STR(o, "plain https://example.com/?a=1");
        free(o);
}

static void test_escape_controls_and_utf8(void)
{
        const char in[] = "a\tb\nc\rd\x01\x7f\xc3\xa9\xe2\x82\xac\xff\xc0\xaf\xed\xa0\x80z";
        char *o = esc(in, sizeof(in) - 1);

        /* tab/LF/CR as references; other controls, 0xff, an overlong '/'
         * and a surrogate become U+FFFD; é and € stay. */
        CHECK_EQ_STR(o, "a&#9;b&#10;c&#13;d\xef\xbf\xbd\xef\xbf\xbd\xc3\xa9\xe2\x82\xac"
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                        "z");
        free(o);
        o = esc("a\0b", 3);
        CHECK_EQ_STR(o, "a\xef\xbf\xbd"
                        "b");
        free(o);
        /* A truncated sequence at the end. */
        o = esc("ok\xe2\x82", 4);
        CHECK_EQ_STR(o, "ok\xef\xbf\xbd\xef\xbf\xbd");
        free(o);
        o = esc(NULL, 0);
        CHECK(o != NULL && o[0] == '\0');
        free(o);
}

static void test_urlencode(void)
{
        struct kurz_buf b = {0};

        CHECK_EQ_INT(kurz_html_urlencode(&b, "http://h:1/a b?&\"<~._-", 22), 0);
        CHECK_EQ_STR(b.p, "http%3A%2F%2Fh%3A1%2Fa%20b%3F%26%22%3C~._-");
        kurz_buf_free(&b);
}

static void test_form_get(void)
{
        struct kurz_str f = KURZ_STR_LIT("alias=&url=https%3A%2F%2Fx.org%2F%3Fa%3D1+2&u%72l=no"
                                         "&flag&expiry=7d");
        struct kurz_buf v = {0};

        CHECK_EQ_INT(kurz_html_form_get(f, "url", &v, 100), 1);
        CHECK_EQ_STR(v.p, "https://x.org/?a=1 2"); /* the first occurrence wins */
        CHECK_EQ_INT(kurz_html_form_get(f, "alias", &v, 100), 1);
        CHECK_EQ_INT(v.len, 0);
        CHECK_EQ_INT(kurz_html_form_get(f, "flag", &v, 100), 1);
        CHECK_EQ_INT(v.len, 0);
        CHECK_EQ_INT(kurz_html_form_get(f, "expiry", &v, 100), 1);
        CHECK_EQ_STR(v.p, "7d");
        CHECK_EQ_INT(kurz_html_form_get(f, "missing", &v, 100), 0);
        CHECK_EQ_INT(kurz_html_form_get(f, "url", &v, 5), -E2BIG);
        CHECK_EQ_INT(kurz_html_form_get(KURZ_STR_LIT("url=%4"), "url", &v, 100), -EINVAL);
        CHECK_EQ_INT(kurz_html_form_get(KURZ_STR_LIT("url=%zz"), "url", &v, 100), -EINVAL);
        CHECK_EQ_INT(kurz_html_form_get(KURZ_STR_LIT("url=a%00b"), "url", &v, 100), 1);
        CHECK_EQ_INT(v.len, 3);
        CHECK(v.p[1] == '\0');
        /* A name with a decoded match via escapes. */
        CHECK_EQ_INT(kurz_html_form_get(KURZ_STR_LIT("%75rl=yes"), "url", &v, 100), 1);
        CHECK_EQ_STR(v.p, "yes");
        CHECK_EQ_INT(kurz_html_form_get((struct kurz_str){"", 0}, "url", &v, 100), 0);
        kurz_buf_free(&v);
}

int main(void)
{
        RUN(test_escape_markup);
        RUN(test_escape_controls_and_utf8);
        RUN(test_urlencode);
        RUN(test_form_get);
        TEST_END("html");
}
