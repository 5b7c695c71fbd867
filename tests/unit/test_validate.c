/* tests/unit/test_validate.c - target URL checks (a table of URLs that must
 * pass and that must be refused, with the parts a valid one yields), the
 * same-origin test, custom aliases and code syntax. */
#include <stdlib.h>

#include "test.h"
#include "util/validate.h"

#define MAX 5000

struct good_url {
        const char *url;
        const char *scheme;
        const char *host;
        unsigned port;
};

static const struct good_url good[] = {
    {"http://example.com", "http", "example.com", 80},
    {"https://example.com/", "https", "example.com", 443},
    {"HTTP://Example.COM", "HTTP", "Example.COM", 80},
    {"HtTpS://EXAMPLE.com/Path", "HtTpS", "EXAMPLE.com", 443},
    {"http://example.com:8080/a?b=c#d", "http", "example.com", 8080},
    {"http://example.com:1", "http", "example.com", 1},
    {"http://example.com:65535/", "http", "example.com", 65535},
    {"https://example.com?q=1", "https", "example.com", 443},
    {"https://example.com#frag", "https", "example.com", 443},
    {"http://[::1]:8080/", "http", "::1", 8080},
    {"http://[::1]", "http", "::1", 80},
    {"https://[2001:db8::1]/x", "https", "2001:db8::1", 443},
    {"http://[::ffff:192.0.2.1]/", "http", "::ffff:192.0.2.1", 80},
    {"http://127.0.0.1:3000/", "http", "127.0.0.1", 3000},
    {"http://192.168.1.255", "http", "192.168.1.255", 80},
    {"http://example.com./", "http", "example.com.", 80},
    {"http://xn--bcher-kva.example/", "http", "xn--bcher-kva.example", 80},
    {"http://my_host.example/", "http", "my_host.example", 80},
    {"http://a.b-c.d~e/", "http", "a.b-c.d~e", 80},
    {"http://localhost", "http", "localhost", 80},
    {"http://ex%41mple.com/", "http", "ex%41mple.com", 80},
    {"https://example.com/p@th/%E2%82%AC?a=b&c=[d]|{e}", "https", "example.com", 443},
    {"https://example.com/a/..;/b'\"<>\\^`", "https", "example.com", 443},
    {"http://1.example/", "http", "1.example", 80},
    {"http://example.123abc/", "http", "example.123abc", 80},
};

struct bad_url {
        const char *url;
        size_t len;      /* 0: strlen */
        const char *why; /* a word the message must contain */
};

static const struct bad_url bad[] = {
    {"", 0, "empty"},
    {"ftp://example.com/", 0, "http"},
    {"javascript:alert(1)", 0, "http"},
    {"javascript://example.com/%0aalert(1)", 0, "http"},
    {"data:text/html,<script>", 0, "http"},
    {"mailto:a@b.c", 0, "http"},
    {"http:/example.com", 0, "http"},
    {"http:example.com", 0, "http"},
    {"//example.com", 0, "http"},
    {"example.com", 0, "http"},
    {" http://example.com", 0, "http"},
    {"httpx://example.com", 0, "http"},
    {"http://", 0, "host"},
    {"https://", 0, "host"},
    {"http:///path", 0, "host"},
    {"http://?q", 0, "host"},
    {"http://:80/", 0, "host"},
    {"http://exa mple.com/", 0, "spaces"},
    {"http://example.com/a b", 0, "spaces"},
    {"http://example.com/\r\nSet-Cookie: x", 0, "control"},
    {"http://example.com/\n", 0, "control"},
    {"http://example.com/\ta", 0, "control"},
    {"http://example.com/\0evil", 24, "control"},
    {"http://example.com/\x7f", 0, "control"},
    {"http://example.com/\x01", 0, "control"},
    {"http://bücher.example/", 0, "ASCII"},
    {"http://example.com/\xe2\x82\xac", 0, "ASCII"},
    {"http://example.com/\xff", 0, "ASCII"},
    {"http://user:pass@example.com/", 0, "user name"},
    {"http://user@example.com/", 0, "user name"},
    {"http://@example.com/", 0, "user name"},
    {"https://paypal.com@evil.example/", 0, "user name"},
    {"http://evil.example\\@good.example/", 0, "user name"},
    {"http://example.com:0/", 0, "port"},
    {"http://example.com:65536/", 0, "port"},
    {"http://example.com:abc/", 0, "port"},
    {"http://example.com:/", 0, "port"},
    {"http://example.com:-1/", 0, "port"},
    {"http://example.com:100000/", 0, "port"},
    {"http://example.com:80:80/", 0, "port"},
    {"http://[::1]:0/", 0, "port"},
    {"http://[::1]:/", 0, "port"},
    {"http://-example.com/", 0, "host"},
    {"http://example.com-/", 0, "host"},
    {"http://.example.com/", 0, "host"},
    {"http://example..com/", 0, "host"},
    {"http://example.com../", 0, "host"},
    {"http://./", 0, "host"},
    {"http://exa<mple.com/", 0, "host"},
    {"http://exa\\mple.com/", 0, "host"},
    {"http://ex%4mple.com/", 0, "host"},
    {"http://example.com%/", 0, "host"},
    {"http://[::1/", 0, "IP"},
    {"http://[]/", 0, "IP"},
    {"http://[::g]/", 0, "IP"},
    {"http://[fe80::1%25eth0]/", 0, "IP"},
    {"http://[::1]x/", 0, "host"},
    {"http://256.1.1.1/", 0, "IP"},
    {"http://1.2.3/", 0, "IP"},
    {"http://127.1/", 0, "IP"},
    {"http://2130706433/", 0, "IP"},
    {"http://0x7f.0.0.1/", 0, "IP"},
    {"http://010.0.0.1/", 0, "IP"},
    {"http://1.2.3.4.5/", 0, "IP"},
};

static void test_good_urls(void)
{
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                struct kurz_url_parts parts;
                const char *err = kurz_url_check(kurz_str_c(good[i].url), MAX, &parts);
                if (err) {
                        fprintf(stderr, "  refused %s: %s\n", good[i].url, err);
                        CHECK(err == NULL);
                        continue;
                }
                CHECK(kurz_str_eq_lit(parts.scheme, good[i].scheme));
                if (!kurz_str_eq_lit(parts.host, good[i].host))
                        fprintf(stderr, "  %s: host \"%.*s\"\n", good[i].url, (int)parts.host.len,
                                parts.host.p);
                CHECK(kurz_str_eq_lit(parts.host, good[i].host));
                CHECK_EQ_INT(parts.port, good[i].port);
        }
        /* parts may be NULL */
        CHECK(kurz_url_check(KURZ_STR_LIT("http://example.com/"), MAX, NULL) == NULL);
}

static void test_bad_urls(void)
{
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct kurz_str u = {bad[i].url, bad[i].len ? bad[i].len : strlen(bad[i].url)};
                const char *err = kurz_url_check(u, MAX, NULL);
                if (!err) {
                        fprintf(stderr, "  accepted bad URL #%zu %s\n", i, bad[i].url);
                        CHECK(err != NULL);
                        continue;
                }
                /* The message names the field and says what is wrong. */
                CHECK(strstr(err, "originalUrl") != NULL);
                if (!strstr(err, bad[i].why)) {
                        fprintf(stderr, "  #%zu %s: \"%s\" lacks \"%s\"\n", i, bad[i].url, err,
                                bad[i].why);
                        CHECK(strstr(err, bad[i].why) != NULL);
                }
        }
}

static void test_length_limit(void)
{
        char *u = malloc(5002);
        const char *err;

        CHECK(u != NULL);
        if (!u)
                return;
        memcpy(u, "https://example.com/", 20);
        memset(u + 20, 'a', 5002 - 20);
        CHECK(kurz_url_check((struct kurz_str){u, 5000}, 5000, NULL) == NULL);
        err = kurz_url_check((struct kurz_str){u, 5001}, 5000, NULL);
        CHECK(err != NULL && strstr(err, "too long") != NULL);
        CHECK(kurz_url_check((struct kurz_str){u, 20}, 19, NULL) != NULL);
        free(u);
}

static void test_host_length(void)
{
        char u[400];
        int n;

        /* A 63-character label is fine, 64 is not. */
        n = snprintf(u, sizeof(u), "http://%.63s.com/",
                     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        CHECK(kurz_url_check((struct kurz_str){u, (size_t)n}, MAX, NULL) == NULL);
        n = snprintf(u, sizeof(u), "http://%.64s.com/",
                     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        CHECK(kurz_url_check((struct kurz_str){u, (size_t)n}, MAX, NULL) != NULL);
        /* A 300-character host is not a DNS name. */
        memcpy(u, "http://", 7);
        for (int i = 0; i < 300; i++)
                u[7 + i] = (i % 10 == 9) ? '.' : 'a';
        u[307] = 'a';
        CHECK(kurz_url_check((struct kurz_str){u, 308}, MAX, NULL) != NULL);
}

static struct kurz_url_parts parts_of(const char *url)
{
        struct kurz_url_parts p = {{NULL, 0}, {NULL, 0}, 0};

        CHECK(kurz_url_check(kurz_str_c(url), MAX, &p) == NULL);
        return p;
}

static void test_same_origin(void)
{
        struct kurz_url_parts a = parts_of("https://Kurz.Example/abc");
        struct kurz_url_parts b = parts_of("https://kurz.example./");
        struct kurz_url_parts c = parts_of("https://kurz.example:443/");
        struct kurz_url_parts d = parts_of("https://kurz.example:8443/");
        struct kurz_url_parts e = parts_of("https://evil-kurz.example/");
        struct kurz_url_parts f = parts_of("http://kurz.example/");
        struct kurz_url_parts g = parts_of("https://kurz.exampl/");
        struct kurz_url_parts h = parts_of("http://[::1]:8080/");
        struct kurz_url_parts i = parts_of("http://[::1]:8080/x");

        CHECK(kurz_url_same_origin(&a, &b)); /* case and trailing dot */
        CHECK(kurz_url_same_origin(&a, &c)); /* explicit default port */
        CHECK(!kurz_url_same_origin(&a, &d));
        CHECK(!kurz_url_same_origin(&a, &e));
        CHECK(!kurz_url_same_origin(&a, &f)); /* 443 vs 80 */
        CHECK(!kurz_url_same_origin(&a, &g));
        CHECK(kurz_url_same_origin(&h, &i));
        CHECK(!kurz_url_same_origin(&a, &h));
}

static void test_alias(void)
{
        static const char *const ok[] = {"abc",  "my-link", "My_Link_2024", "a-_",
                                         "API2", "apis",    "healthy",      "x0x"};
        static const char *const reserved[] = {
            "api",    "API",   "Api",    "health", "HEALTH", "metrics", "admin", "Admin",
            "static", "stats", "assets", "www",    "WWW",    "app",     "login", "logout",
            "about",  "help",  "docs",   "create", "lookup", "urls",    "new",   "NEW"};
        char long_alias[66];
        const char *err;

        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                err = kurz_alias_check(kurz_str_c(ok[i]));
                if (err)
                        fprintf(stderr, "  refused alias %s: %s\n", ok[i], err);
                CHECK(err == NULL);
        }
        for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
                err = kurz_alias_check(kurz_str_c(reserved[i]));
                if (!err)
                        fprintf(stderr, "  accepted reserved alias %s\n", reserved[i]);
                CHECK(err != NULL && strstr(err, "reserved") != NULL);
        }
        /* Length 3..64. */
        CHECK(kurz_alias_check(KURZ_STR_LIT("ab")) != NULL);
        CHECK(kurz_alias_check(KURZ_STR_LIT("")) != NULL);
        CHECK(kurz_alias_check(KURZ_STR_LIT("ui")) != NULL);
        memset(long_alias, 'a', sizeof(long_alias));
        CHECK(kurz_alias_check((struct kurz_str){long_alias, 64}) == NULL);
        err = kurz_alias_check((struct kurz_str){long_alias, 65});
        CHECK(err != NULL && strstr(err, "64") != NULL);
        /* Characters. */
        CHECK(kurz_alias_check(KURZ_STR_LIT("a.b")) != NULL);
        CHECK(kurz_alias_check(KURZ_STR_LIT("a/b")) != NULL);
        CHECK(kurz_alias_check(KURZ_STR_LIT("a b")) != NULL);
        CHECK(kurz_alias_check(KURZ_STR_LIT("abc%20")) != NULL);
        CHECK(kurz_alias_check(KURZ_STR_LIT("caf\xc3\xa9")) != NULL);
        CHECK(kurz_alias_check((struct kurz_str){"ab\0c", 4}) != NULL);
        CHECK(kurz_alias_check(KURZ_STR_LIT("robots.txt")) != NULL);
        CHECK(kurz_alias_check(KURZ_STR_LIT("favicon.ico")) != NULL);
        err = kurz_alias_check(KURZ_STR_LIT("a?b"));
        CHECK(err != NULL && strstr(err, "alias") != NULL);
}

static void test_code_syntax(void)
{
        char s[66];

        CHECK(kurz_code_syntax_ok(KURZ_STR_LIT("a")));
        CHECK(kurz_code_syntax_ok(KURZ_STR_LIT("aZ09_-")));
        CHECK(kurz_code_syntax_ok(KURZ_STR_LIT("0000000")));
        CHECK(!kurz_code_syntax_ok(KURZ_STR_LIT("")));
        CHECK(!kurz_code_syntax_ok(KURZ_STR_LIT("a.b")));
        CHECK(!kurz_code_syntax_ok(KURZ_STR_LIT("a/b")));
        CHECK(!kurz_code_syntax_ok(KURZ_STR_LIT("%41")));
        CHECK(!kurz_code_syntax_ok(KURZ_STR_LIT("favicon.ico")));
        CHECK(!kurz_code_syntax_ok((struct kurz_str){"ab\0", 3}));
        memset(s, 'x', sizeof(s));
        CHECK(kurz_code_syntax_ok((struct kurz_str){s, 64}));
        CHECK(!kurz_code_syntax_ok((struct kurz_str){s, 65}));
}

int main(void)
{
        RUN(test_good_urls);
        RUN(test_bad_urls);
        RUN(test_length_limit);
        RUN(test_host_length);
        RUN(test_same_origin);
        RUN(test_alias);
        RUN(test_code_syntax);
        TEST_END("validate");
}
