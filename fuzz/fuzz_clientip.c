/* fuzz/fuzz_clientip.c - the trusted-proxy list parser and the client
 * address taken from X-Forwarded-For. Input: the proxy list, a NUL, one
 * byte choosing the TCP peer, then the X-Forwarded-For value. Invariants:
 * the result is the peer's or one of the XFF entries' address, printed as
 * inet_ntop prints it, and an untrusted peer is never overridden. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limit/clientip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "fuzz_clientip: invariant failed: %s\n", #cond);           \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

static void make_peer(uint8_t sel, struct sockaddr_storage *ss, char text[KURZ_IP_STRLEN])
{
        static const char *const peers[] = {"127.0.0.1", "10.1.2.3",    "203.0.113.9",
                                            "::1",       "2001:db8::7", "::ffff:10.1.2.3",
                                            "fe80::1",   "0.0.0.0"};
        const char *t = peers[sel % 8];
        struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

        memset(ss, 0, sizeof(*ss));
        if (strchr(t, ':')) {
                a6->sin6_family = AF_INET6;
                inet_pton(AF_INET6, t, &a6->sin6_addr);
        } else {
                a4->sin_family = AF_INET;
                inet_pton(AF_INET, t, &a4->sin_addr);
        }
        snprintf(text, KURZ_IP_STRLEN, "%s", strncmp(t, "::ffff:", 7) == 0 ? t + 7 : t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const uint8_t *nul = memchr(data, '\0', size);
        struct kurz_proxies *p = NULL, *none = NULL;
        struct sockaddr_storage peer;
        char peer_text[KURZ_IP_STRLEN], out[KURZ_IP_STRLEN], *list, *xff;
        struct in6_addr a6;
        struct in_addr a4;
        size_t llen, xlen, n;

        if (!nul || nul + 1 == data + size)
                return 0;
        llen = (size_t)(nul - data);
        list = malloc(llen + 1);
        memcpy(list, data, llen + 1);
        make_peer(nul[1], &peer, peer_text);
        xlen = size - llen - 2;
        xff = malloc(xlen ? xlen : 1);
        memcpy(xff, nul + 2, xlen);

        CHECK(kurz_proxies_parse("", &none) == 0);
        if (kurz_proxies_parse(list, &p) < 0) {
                CHECK(p == NULL);
                goto out_free;
        }
        memset(out, 'x', sizeof(out));
        n = kurz_client_ip(p, &peer, (struct kurz_str){xff, xlen}, out);
        CHECK(n < KURZ_IP_STRLEN && strlen(out) == n && n > 0);
        CHECK(inet_pton(AF_INET, out, &a4) == 1 || inet_pton(AF_INET6, out, &a6) == 1);
        /* Not the peer: then a trusted proxy said so in X-Forwarded-For. */
        if (strcmp(out, peer_text) != 0)
                CHECK(xlen > 0 && llen > 0);
        /* Trusting nobody, the peer is the client whatever XFF says. */
        n = kurz_client_ip(none, &peer, (struct kurz_str){xff, xlen}, out);
        CHECK(strcmp(out, peer_text) == 0);
        kurz_proxies_free(p);
out_free:
        kurz_proxies_free(none);
        free(list);
        free(xff);
        return 0;
}
