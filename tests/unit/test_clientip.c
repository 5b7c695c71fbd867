/* tests/unit/test_clientip.c - which address is the client: X-Forwarded-For
 * is believed only from trusted proxies, read right to left, and garbage in it
 * never lets a client choose its own address. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "limit/clientip.h"
#include "test.h"

static struct sockaddr_storage peer(const char *text)
{
        struct sockaddr_storage ss;

        memset(&ss, 0, sizeof(ss));
        if (strchr(text, ':')) {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

                in6->sin6_family = AF_INET6;
                inet_pton(AF_INET6, text, &in6->sin6_addr);
        } else {
                struct sockaddr_in *in = (struct sockaddr_in *)&ss;

                in->sin_family = AF_INET;
                inet_pton(AF_INET, text, &in->sin_addr);
        }
        return ss;
}

static char out[KURZ_IP_STRLEN];

static const char *client(const struct kurz_proxies *p, const char *peer_text, const char *xff)
{
        struct sockaddr_storage ss = peer(peer_text);
        size_t n = kurz_client_ip(p, &ss, kurz_str_c(xff), out);

        if (n != strlen(out))
                return "(bad length)";
        return out;
}

static void test_parse(void)
{
        struct kurz_proxies *p;

        CHECK_EQ_INT(kurz_proxies_parse("127.0.0.1,10.0.0.0/8, ::1 ,fd00::/8", &p), 0);
        CHECK(p != NULL);
        kurz_proxies_free(p);
        CHECK_EQ_INT(kurz_proxies_parse("", &p), 0);
        kurz_proxies_free(p);
        CHECK_EQ_INT(kurz_proxies_parse(NULL, &p), 0);
        kurz_proxies_free(p);
        CHECK_EQ_INT(kurz_proxies_parse("10.0.0.0/33", &p), -EINVAL);
        CHECK(p == NULL);
        CHECK_EQ_INT(kurz_proxies_parse("10.0.0.0/", &p), -EINVAL);
        CHECK_EQ_INT(kurz_proxies_parse("10.0.0.0/8x", &p), -EINVAL);
        CHECK_EQ_INT(kurz_proxies_parse("::/129", &p), -EINVAL);
        CHECK_EQ_INT(kurz_proxies_parse("localhost", &p), -EINVAL);
        CHECK_EQ_INT(kurz_proxies_parse("127.0.0.1,bogus", &p), -EINVAL);
        CHECK(p == NULL);
}

static void test_untrusted_peer(void)
{
        struct kurz_proxies *p;

        CHECK_EQ_INT(kurz_proxies_parse("10.0.0.0/8", &p), 0);
        /* A client talking to us directly cannot claim another address. */
        CHECK_EQ_STR(client(p, "203.0.113.7", "1.2.3.4"), "203.0.113.7");
        CHECK_EQ_STR(client(p, "203.0.113.7", ""), "203.0.113.7");
        /* Nobody is trusted with an empty list. */
        kurz_proxies_free(p);
        CHECK_EQ_INT(kurz_proxies_parse("", &p), 0);
        CHECK_EQ_STR(client(p, "10.1.1.1", "1.2.3.4"), "10.1.1.1");
        CHECK_EQ_STR(client(NULL, "10.1.1.1", "1.2.3.4"), "10.1.1.1");
        kurz_proxies_free(p);
}

static void test_trusted_chain(void)
{
        struct kurz_proxies *p;

        CHECK_EQ_INT(kurz_proxies_parse("10.0.0.0/8,192.168.1.1", &p), 0);
        CHECK_EQ_STR(client(p, "10.0.0.5", "198.51.100.9"), "198.51.100.9");
        /* The right-most untrusted address; what is left of it may be forged. */
        CHECK_EQ_STR(client(p, "10.0.0.5", "6.6.6.6, 198.51.100.9"), "198.51.100.9");
        /* Trusted hops are skipped. */
        CHECK_EQ_STR(client(p, "10.0.0.5", "6.6.6.6, 198.51.100.9, 192.168.1.1, 10.9.9.9"),
                     "198.51.100.9");
        CHECK_EQ_STR(client(p, "10.0.0.5", " 198.51.100.9 ,10.2.3.4"), "198.51.100.9");
        /* Only proxies all the way: the left-most one is the client. */
        CHECK_EQ_STR(client(p, "10.0.0.5", "10.7.7.7,10.8.8.8"), "10.7.7.7");
        /* No header: the proxy itself. */
        CHECK_EQ_STR(client(p, "10.0.0.5", ""), "10.0.0.5");
        /* 192.168.1.2 is not the trusted 192.168.1.1. */
        CHECK_EQ_STR(client(p, "192.168.1.2", "1.2.3.4"), "192.168.1.2");
        kurz_proxies_free(p);
}

static void test_garbage(void)
{
        struct kurz_proxies *p;

        CHECK_EQ_INT(kurz_proxies_parse("10.0.0.0/8", &p), 0);
        CHECK_EQ_STR(client(p, "10.0.0.5", "not-an-ip"), "10.0.0.5");
        /* A garbage hop stops the walk at the last trusted one. */
        CHECK_EQ_STR(client(p, "10.0.0.5", "1.2.3.4, garbage, 10.3.3.3"), "10.3.3.3");
        CHECK_EQ_STR(client(p, "10.0.0.5", "1.2.3.4,,"), "10.0.0.5");
        CHECK_EQ_STR(client(p, "10.0.0.5", ","), "10.0.0.5");
        CHECK_EQ_STR(client(p, "10.0.0.5", "1.2.3.4:8080"), "10.0.0.5");
        CHECK_EQ_STR(client(p, "10.0.0.5", "999.1.1.1"), "10.0.0.5");
        CHECK_EQ_STR(
            client(p, "10.0.0.5", "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb"),
            "10.0.0.5");
        CHECK_EQ_STR(client(p, "10.0.0.5", "1.2.3.4\x01"), "10.0.0.5");
        kurz_proxies_free(p);
}

static void test_ipv6(void)
{
        struct kurz_proxies *p;

        CHECK_EQ_INT(kurz_proxies_parse("::1,fd00::/8", &p), 0);
        CHECK_EQ_STR(client(p, "::1", "2001:db8::1"), "2001:db8::1");
        /* Canonical text. */
        CHECK_EQ_STR(client(p, "fd12::1", "2001:DB8:0:0:0:0:0:2, fd99::3"), "2001:db8::2");
        CHECK_EQ_STR(client(p, "fe80::1", "2001:db8::1"), "fe80::1");
        CHECK_EQ_STR(client(p, "::1", "203.0.113.1"), "203.0.113.1");
        kurz_proxies_free(p);
}

static void test_mapped(void)
{
        struct kurz_proxies *p;

        CHECK_EQ_INT(kurz_proxies_parse("127.0.0.1", &p), 0);
        /* An IPv4 peer on a dual-stack socket matches the IPv4 entry... */
        CHECK_EQ_STR(client(p, "::ffff:127.0.0.1", "198.51.100.1"), "198.51.100.1");
        /* ...and is printed as plain IPv4. */
        CHECK_EQ_STR(client(p, "::ffff:203.0.113.5", "198.51.100.1"), "203.0.113.5");
        /* Mapped addresses in the header are IPv4 too. */
        CHECK_EQ_STR(client(p, "127.0.0.1", "::ffff:198.51.100.2"), "198.51.100.2");
        CHECK_EQ_STR(client(p, "127.0.0.1", "198.51.100.3, ::ffff:127.0.0.1"), "198.51.100.3");
        kurz_proxies_free(p);

        /* A mapped CIDR in the list means the IPv4 range. */
        CHECK_EQ_INT(kurz_proxies_parse("::ffff:10.0.0.0/104", &p), 0);
        CHECK_EQ_STR(client(p, "10.4.4.4", "198.51.100.1"), "198.51.100.1");
        CHECK_EQ_STR(client(p, "11.4.4.4", "198.51.100.1"), "11.4.4.4");
        kurz_proxies_free(p);
}

int main(void)
{
        RUN(test_parse);
        RUN(test_untrusted_peer);
        RUN(test_trusted_chain);
        RUN(test_garbage);
        RUN(test_ipv6);
        RUN(test_mapped);
        TEST_END("clientip");
}
