/* limit/clientip.c - the client address behind trusted proxies: a parsed
 * list of CIDRs, and a right-to-left walk of X-Forwarded-For that stops at
 * the first hop we do not trust (everything left of it may be forged). IPv4
 * peers seen through an IPv6 socket (::ffff:a.b.c.d) count as IPv4. */
#include "limit/clientip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PROXIES_MAX 1024 /* entries in the trusted list */

/* An address in either family: IPv4 in the first 4 bytes. */
struct ip {
        int family; /* AF_INET or AF_INET6 */
        uint8_t b[16];
};

struct cidr {
        struct ip net;
        unsigned bits;
};

struct kurz_proxies {
        size_t n;
        struct cidr list[];
};

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* ::ffff:a.b.c.d becomes a.b.c.d. */
static void unmap(struct ip *ip)
{
        if (ip->family == AF_INET6 && memcmp(ip->b, v4mapped_prefix, 12) == 0) {
                memmove(ip->b, ip->b + 12, 4);
                memset(ip->b + 4, 0, 12);
                ip->family = AF_INET;
        }
}

/* Parses an address (no brackets, no port, no zone). */
static bool parse_ip(const char *p, size_t len, struct ip *out)
{
        char tmp[INET6_ADDRSTRLEN];

        if (len == 0 || len >= sizeof(tmp))
                return false;
        memcpy(tmp, p, len);
        tmp[len] = '\0';
        memset(out, 0, sizeof(*out));
        if (inet_pton(AF_INET, tmp, out->b) == 1) {
                out->family = AF_INET;
                return true;
        }
        if (inet_pton(AF_INET6, tmp, out->b) == 1) {
                out->family = AF_INET6;
                unmap(out);
                return true;
        }
        return false;
}

static bool is_space(char c)
{
        return c == ' ' || c == '\t';
}

static void trim(const char **p, size_t *len)
{
        while (*len && is_space(**p)) {
                (*p)++;
                (*len)--;
        }
        while (*len && is_space((*p)[*len - 1]))
                (*len)--;
}

/* "addr" or "addr/bits". */
static int parse_cidr(const char *p, size_t len, struct cidr *out)
{
        const char *slash = memchr(p, '/', len);
        size_t alen = slash ? (size_t)(slash - p) : len;
        bool mapped;
        unsigned max;

        if (!parse_ip(p, alen, &out->net))
                return -EINVAL;
        /* Was it written as ::ffff:a.b.c.d? Then its prefix counts 96 more. */
        mapped = out->net.family == AF_INET && memchr(p, ':', alen) != NULL;
        max = out->net.family == AF_INET ? 32 : 128;
        out->bits = max;
        if (slash) {
                const char *d = slash + 1;
                size_t dlen = len - alen - 1;
                unsigned v = 0;

                if (dlen == 0 || dlen > 3)
                        return -EINVAL;
                for (size_t i = 0; i < dlen; i++) {
                        if (d[i] < '0' || d[i] > '9')
                                return -EINVAL;
                        v = v * 10 + (unsigned)(d[i] - '0');
                }
                if (mapped) {
                        if (v < 96 || v > 128)
                                return -EINVAL;
                        v -= 96;
                }
                if (v > max)
                        return -EINVAL;
                out->bits = v;
        }
        return 0;
}

static bool cidr_match(const struct cidr *c, const struct ip *ip)
{
        unsigned full = c->bits / 8, rest = c->bits % 8;

        if (c->net.family != ip->family)
                return false;
        if (memcmp(c->net.b, ip->b, full) != 0)
                return false;
        if (rest) {
                uint8_t mask = (uint8_t)(0xff << (8 - rest));

                return (c->net.b[full] & mask) == (ip->b[full] & mask);
        }
        return true;
}

static bool trusted(const struct kurz_proxies *p, const struct ip *ip)
{
        if (!p)
                return false;
        for (size_t i = 0; i < p->n; i++)
                if (cidr_match(&p->list[i], ip))
                        return true;
        return false;
}

int kurz_proxies_parse(const char *list, struct kurz_proxies **out)
{
        struct kurz_proxies *p;
        size_t n = 1, len;
        const char *s;
        int rc;

        *out = NULL;
        if (!list)
                list = "";
        len = strlen(list);
        for (s = list; *s; s++)
                n += *s == ',';
        if (n > PROXIES_MAX)
                return -EINVAL;
        p = malloc(sizeof(*p) + n * sizeof(p->list[0]));
        if (!p)
                return -ENOMEM;
        p->n = 0;
        for (s = list; s <= list + len;) {
                const char *comma = memchr(s, ',', (size_t)(list + len - s));
                const char *end = comma ? comma : list + len;
                const char *item = s;
                size_t ilen = (size_t)(end - s);

                trim(&item, &ilen);
                if (ilen) { /* empty items ("a,,b", a trailing comma) are skipped */
                        rc = parse_cidr(item, ilen, &p->list[p->n]);
                        if (rc < 0)
                                goto out_free_p;
                        p->n++;
                }
                s = end + 1;
        }
        *out = p;
        return 0;

out_free_p:
        free(p);
        return rc;
}

void kurz_proxies_free(struct kurz_proxies *p)
{
        free(p);
}

static size_t ip_text(const struct ip *ip, char out[KURZ_IP_STRLEN])
{
        if (!inet_ntop(ip->family, ip->b, out, KURZ_IP_STRLEN)) {
                out[0] = '\0';
                return 0;
        }
        return strlen(out);
}

size_t kurz_client_ip(const struct kurz_proxies *p, const struct sockaddr_storage *peer,
                      struct kurz_str xff, char out[KURZ_IP_STRLEN])
{
        struct ip hop, ip;
        size_t end;

        memset(&hop, 0, sizeof(hop));
        if (peer->ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *)peer;

                hop.family = AF_INET;
                memcpy(hop.b, &in->sin_addr, 4);
        } else if (peer->ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)peer;

                hop.family = AF_INET6;
                memcpy(hop.b, &in6->sin6_addr, 16);
                unmap(&hop);
        } else {
                out[0] = '\0'; /* not an IP peer (a unix socket): no address */
                return 0;
        }

        /* hop is the nearest address we have reached; while it is a trusted
         * proxy, believe what it says about the address before it. */
        end = xff.len;
        while (trusted(p, &hop) && end > 0) {
                size_t start = end;
                const char *item;
                size_t ilen;

                while (start > 0 && xff.p[start - 1] != ',')
                        start--;
                item = xff.p + start;
                ilen = end - start;
                trim(&item, &ilen);
                if (!parse_ip(item, ilen, &ip))
                        break; /* garbage: keep the last hop we could trust */
                hop = ip;
                end = start ? start - 1 : 0;
        }
        return ip_text(&hop, out);
}
