/* redis/reply.c - MOVED/ASK error parsing and CLUSTER SLOTS slot maps. */
#include "redis/reply.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <string.h>

static bool has_prefix(const char *s, size_t len, const char *p)
{
        size_t n = strlen(p);

        return len >= n && memcmp(s, p, n) == 0 && (len == n || s[n] == ' ');
}

/* Parses a decimal number of at most 9 digits; false when none or too long. */
static bool parse_uint(const char *s, size_t len, unsigned long *out)
{
        unsigned long v = 0;

        if (len == 0 || len > 9)
                return false;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (unsigned long)(s[i] - '0');
        }
        *out = v;
        return true;
}

/* "host:port", "[v6]:port" or a bare "v6:port" (port after the last ':'). */
static bool parse_addr(const char *s, size_t len, struct kurz_redis_addr *a)
{
        const char *colon = NULL;
        unsigned long port;
        size_t hlen;

        for (size_t i = len; i > 0; i--) {
                if (s[i - 1] == ':') {
                        colon = s + i - 1;
                        break;
                }
        }
        if (!colon)
                return false;
        hlen = (size_t)(colon - s);
        if (!parse_uint(colon + 1, len - hlen - 1, &port) || port == 0 || port > 65535)
                return false;
        if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
                s++;
                hlen -= 2;
        }
        if (hlen >= sizeof(a->host) || memchr(s, ' ', hlen) || memchr(s, '\0', hlen))
                return false;
        memcpy(a->host, s, hlen);
        a->host[hlen] = '\0';
        a->port = (unsigned)port;
        return true;
}

enum kurz_redis_err kurz_redis_parse_error(const char *s, size_t len,
                                           struct kurz_redis_redirect *out)
{
        enum kurz_redis_err kind;
        const char *p, *sp;
        unsigned long slot;
        size_t rest;

        if (has_prefix(s, len, "TRYAGAIN"))
                return KURZ_REDIS_ERR_TRYAGAIN;
        if (has_prefix(s, len, "CLUSTERDOWN"))
                return KURZ_REDIS_ERR_CLUSTERDOWN;
        if (has_prefix(s, len, "MOVED"))
                kind = KURZ_REDIS_ERR_MOVED;
        else if (has_prefix(s, len, "ASK"))
                kind = KURZ_REDIS_ERR_ASK;
        else
                return KURZ_REDIS_ERR_OTHER;
        p = s + (kind == KURZ_REDIS_ERR_MOVED ? 6 : 4);
        if (p > s + len)
                return KURZ_REDIS_ERR_OTHER;
        rest = len - (size_t)(p - s);
        sp = memchr(p, ' ', rest);
        if (!sp || !parse_uint(p, (size_t)(sp - p), &slot) || slot >= KURZ_REDIS_SLOTS)
                return KURZ_REDIS_ERR_OTHER;
        rest -= (size_t)(sp - p) + 1;
        if (!parse_addr(sp + 1, rest, &out->addr))
                return KURZ_REDIS_ERR_OTHER;
        out->slot = (unsigned)slot;
        return kind;
}

/* Adds (or finds) a node; returns its index or -1 when the table is full. */
static int node_index(struct kurz_redis_slotmap *map, const struct kurz_redis_addr *a, bool master)
{
        for (unsigned i = 0; i < map->nnodes; i++) {
                if (map->nodes[i].addr.port == a->port &&
                    strcmp(map->nodes[i].addr.host, a->host) == 0) {
                        map->nodes[i].master |= master;
                        return (int)i;
                }
        }
        if (map->nnodes >= KURZ_REDIS_MAX_NODES)
                return -1;
        map->nodes[map->nnodes].addr = *a;
        map->nodes[map->nnodes].master = master;
        return (int)map->nnodes++;
}

/* [host, port, ...] -> a. */
static bool node_addr(const redisReply *n, const char *default_host, struct kurz_redis_addr *a)
{
        const redisReply *h, *p;

        if (n->type != REDIS_REPLY_ARRAY || n->elements < 2)
                return false;
        h = n->element[0];
        p = n->element[1];
        if (!h || !p || h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_INTEGER ||
            p->integer <= 0 || p->integer > 65535)
                return false;
        if (h->len == 0 || (h->len == 1 && h->str[0] == '?')) {
                size_t dl = strlen(default_host);
                if (dl >= sizeof(a->host))
                        return false;
                memcpy(a->host, default_host, dl + 1);
        } else {
                if (h->len >= sizeof(a->host) || memchr(h->str, '\0', h->len))
                        return false;
                memcpy(a->host, h->str, h->len);
                a->host[h->len] = '\0';
        }
        a->port = (unsigned)p->integer;
        return true;
}

int kurz_redis_slots_parse(const struct redisReply *r, const char *default_host,
                           struct kurz_redis_slotmap *map)
{
        int covered = 0;

        for (size_t i = 0; i < KURZ_REDIS_SLOTS; i++)
                map->owner[i] = KURZ_REDIS_NO_NODE;
        map->nnodes = 0;
        if (!r || r->type != REDIS_REPLY_ARRAY)
                return -EPROTO;
        for (size_t i = 0; i < r->elements; i++) {
                const redisReply *e = r->element[i];
                struct kurz_redis_addr a;
                long long from, to;
                int master;

                if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 3 || !e->element[0] ||
                    !e->element[1] || !e->element[2] ||
                    e->element[0]->type != REDIS_REPLY_INTEGER ||
                    e->element[1]->type != REDIS_REPLY_INTEGER)
                        return -EPROTO;
                from = e->element[0]->integer;
                to = e->element[1]->integer;
                if (from < 0 || to < from || to >= KURZ_REDIS_SLOTS)
                        return -EPROTO;
                if (!node_addr(e->element[2], default_host, &a))
                        return -EPROTO;
                master = node_index(map, &a, true);
                if (master < 0)
                        return -EPROTO;
                for (size_t k = 3; k < e->elements; k++) {
                        struct kurz_redis_addr ra;
                        if (!e->element[k] || !node_addr(e->element[k], default_host, &ra))
                                return -EPROTO;
                        if (node_index(map, &ra, false) < 0)
                                return -EPROTO;
                }
                for (long long s = from; s <= to; s++) {
                        if (map->owner[s] == KURZ_REDIS_NO_NODE)
                                covered++;
                        map->owner[s] = (uint16_t)master;
                }
        }
        return covered;
}

/* hiredis 0.14 allocates an array reply's element pointers from its count
 * before any element arrives, so "*600000000\r\n" alone asks for 4.8 GB
 * (found by fuzz_redis). Walks the element headers and refuses a count the
 * rest of buf cannot hold: every element takes at least 3 bytes. What it
 * does not understand it leaves to hiredis. */
static bool resp_counts_fit(const char *buf, size_t len)
{
        size_t i = 0;

        while (i < len) {
                const char *nl = memchr(buf + i, '\n', len - i);
                size_t next, rest;
                long long n = 0;
                bool neg = false;
                char type = buf[i];

                if (!nl)
                        return true; /* incomplete: hiredis refuses it */
                next = (size_t)(nl - buf) + 1;
                if (type != '*' && type != '$') {
                        i = next;
                        continue;
                }
                for (size_t k = i + 1; k < next - 2; k++) {
                        if (k == i + 1 && buf[k] == '-') {
                                neg = true;
                                continue;
                        }
                        if (buf[k] < '0' || buf[k] > '9' || n > 1000000000000LL)
                                return true; /* malformed: hiredis refuses it */
                        n = n * 10 + (buf[k] - '0');
                }
                rest = len - next;
                if (type == '*') {
                        if (!neg && (unsigned long long)n > rest / 3)
                                return false;
                        i = next;
                } else if (neg || (unsigned long long)n + 2 > rest) {
                        i = neg ? next : len;
                } else {
                        i = next + (size_t)n + 2;
                }
        }
        return true;
}

int kurz_redis_slots_parse_resp(const char *buf, size_t len, const char *default_host,
                                struct kurz_redis_slotmap *map)
{
        redisReader *rd;
        void *reply = NULL;
        int rc = -EPROTO;

        if (!resp_counts_fit(buf, len))
                return -EPROTO;
        rd = redisReaderCreate();
        if (!rd)
                return -ENOMEM;
        if (redisReaderFeed(rd, buf, len) != REDIS_OK)
                goto out_free_reader;
        if (redisReaderGetReply(rd, &reply) != REDIS_OK || !reply)
                goto out_free_reader;
        /* Exactly one reply: trailing bytes are an error. */
        if (rd->pos != rd->len)
                goto out_free_reply;
        rc = kurz_redis_slots_parse(reply, default_host, map);
out_free_reply:
        freeReplyObject(reply);
out_free_reader:
        redisReaderFree(rd);
        return rc;
}
