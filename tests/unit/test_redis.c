/* tests/unit/test_redis.c - the pure parts of the Redis client: CRC16 and key
 * slots (values checked against Redis 7's CLUSTER KEYSLOT), MOVED/ASK error
 * parsing, slot maps from canned CLUSTER SLOTS replies, the circuit breaker
 * state machine, and the L2 value encoding and TTL tiers. */
#include <errno.h>
#include <string.h>

#include "cache/l2.h"
#include "redis/client.h"
#include "redis/crc16.h"
#include "redis/reply.h"
#include "test.h"
#include "util/buf.h"

static unsigned slot(const char *k)
{
        return kurz_redis_key_slot(k, strlen(k));
}

static void test_crc16(void)
{
        CHECK_EQ_INT(kurz_crc16("123456789", 9), 0x31C3);
        CHECK_EQ_INT(kurz_crc16("", 0), 0);
        CHECK_EQ_INT(slot("foo"), 12182);
        CHECK_EQ_INT(slot("bar"), 5061);
        CHECK_EQ_INT(slot("somekey"), 11058);
}

static void test_hash_tags(void)
{
        CHECK_EQ_INT(slot("{user1000}.following"), 3443);
        CHECK_EQ_INT(slot("{user1000}.following"), slot("user1000"));
        /* An empty tag "{}" means: hash the whole key. */
        CHECK_EQ_INT(slot("foo{}{bar}"), 8363);
        /* The tag is between the first '{' and the first '}' after it. */
        CHECK_EQ_INT(slot("foo{{bar}}zap"), 4015);
        CHECK_EQ_INT(slot("foo{{bar}}zap"), slot("{bar"));
        /* No closing brace: the whole key. */
        CHECK_EQ_INT(slot("foo{bar"), kurz_crc16("foo{bar", 7) & 16383);
        /* kurz's link and tombstone keys share a slot. */
        CHECK_EQ_INT(slot("kurz:u:{abc}"), 7638);
        CHECK_EQ_INT(slot("kurz:u:{abc}"), slot("kurz:t:{abc}"));
}

static enum kurz_redis_err perr(const char *s, struct kurz_redis_redirect *r)
{
        memset(r, 0, sizeof(*r));
        return kurz_redis_parse_error(s, strlen(s), r);
}

static void test_redirect_errors(void)
{
        struct kurz_redis_redirect r;

        CHECK_EQ_INT(perr("MOVED 3999 127.0.0.1:6381", &r), KURZ_REDIS_ERR_MOVED);
        CHECK_EQ_INT(r.slot, 3999);
        CHECK_EQ_STR(r.addr.host, "127.0.0.1");
        CHECK_EQ_INT(r.addr.port, 6381);
        CHECK_EQ_INT(perr("ASK 16383 redis-2.example:7002", &r), KURZ_REDIS_ERR_ASK);
        CHECK_EQ_INT(r.slot, 16383);
        CHECK_EQ_STR(r.addr.host, "redis-2.example");
        CHECK_EQ_INT(perr("MOVED 1 ::1:7000", &r), KURZ_REDIS_ERR_MOVED);
        CHECK_EQ_STR(r.addr.host, "::1");
        CHECK_EQ_INT(perr("MOVED 1 [::1]:7000", &r), KURZ_REDIS_ERR_MOVED);
        CHECK_EQ_STR(r.addr.host, "::1");
        /* Redis 7 with an unknown endpoint: empty host, the caller fills in. */
        CHECK_EQ_INT(perr("MOVED 12 :7001", &r), KURZ_REDIS_ERR_MOVED);
        CHECK_EQ_STR(r.addr.host, "");
        CHECK_EQ_INT(r.addr.port, 7001);
        CHECK_EQ_INT(perr("TRYAGAIN Multiple keys request during rehashing of slot", &r),
                     KURZ_REDIS_ERR_TRYAGAIN);
        CHECK_EQ_INT(perr("CLUSTERDOWN The cluster is down", &r), KURZ_REDIS_ERR_CLUSTERDOWN);
        /* Malformed ones are plain errors, never a redirect to garbage. */
        CHECK_EQ_INT(perr("MOVED 16384 127.0.0.1:6381", &r), KURZ_REDIS_ERR_OTHER);
        CHECK_EQ_INT(perr("MOVED 12 127.0.0.1:0", &r), KURZ_REDIS_ERR_OTHER);
        CHECK_EQ_INT(perr("MOVED 12 127.0.0.1:65536", &r), KURZ_REDIS_ERR_OTHER);
        CHECK_EQ_INT(perr("MOVED 12 127.0.0.1", &r), KURZ_REDIS_ERR_OTHER);
        CHECK_EQ_INT(perr("MOVED x 127.0.0.1:1", &r), KURZ_REDIS_ERR_OTHER);
        CHECK_EQ_INT(perr("MOVED", &r), KURZ_REDIS_ERR_OTHER);
        CHECK_EQ_INT(perr("MOVEDX 1 a:1", &r), KURZ_REDIS_ERR_OTHER);
        CHECK_EQ_INT(perr("ERR unknown command", &r), KURZ_REDIS_ERR_OTHER);
        CHECK_EQ_INT(perr("", &r), KURZ_REDIS_ERR_OTHER);
}

/* A 3-master reply as Redis 7 sends it (node ids included). */
static const char SLOTS3[] = "*3\r\n"
                             "*4\r\n:0\r\n:5460\r\n"
                             "*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$4\r\nidA0\r\n"
                             "*3\r\n$9\r\n127.0.0.1\r\n:7004\r\n$4\r\nidA1\r\n"
                             "*4\r\n:5461\r\n:10922\r\n"
                             "*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$4\r\nidB0\r\n"
                             "*3\r\n$9\r\n127.0.0.1\r\n:7005\r\n$4\r\nidB1\r\n"
                             "*4\r\n:10923\r\n:16383\r\n"
                             "*3\r\n$0\r\n\r\n:7002\r\n$4\r\nidC0\r\n"
                             "*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$4\r\nidC1\r\n";

static struct kurz_redis_slotmap map;

static void test_slot_map(void)
{
        int n = kurz_redis_slots_parse_resp(SLOTS3, sizeof(SLOTS3) - 1, "10.0.0.9", &map);
        const struct kurz_redis_node_info *a, *b, *c;

        CHECK_EQ_INT(n, 16384);
        CHECK_EQ_INT(map.nnodes, 6);
        a = &map.nodes[map.owner[0]];
        b = &map.nodes[map.owner[5461]];
        c = &map.nodes[map.owner[16383]];
        CHECK_EQ_INT(a->addr.port, 7000);
        CHECK(a->master);
        CHECK_EQ_INT(map.nodes[map.owner[5460]].addr.port, 7000);
        CHECK_EQ_INT(b->addr.port, 7001);
        CHECK_EQ_INT(map.nodes[map.owner[10922]].addr.port, 7001);
        CHECK_EQ_INT(c->addr.port, 7002);
        /* An empty host means the node that was asked. */
        CHECK_EQ_STR(c->addr.host, "10.0.0.9");
        CHECK_EQ_INT(map.nodes[map.owner[slot("foo")]].addr.port, 7002);
}

static void test_slot_map_partial_and_bad(void)
{
        static const char partial[] = "*1\r\n*3\r\n:100\r\n:199\r\n*2\r\n$1\r\nh\r\n:1\r\n";
        static const char *bad[] = {
            "+OK\r\n",                                             /* not an array */
            "*1\r\n*3\r\n:200\r\n:100\r\n*2\r\n$1\r\nh\r\n:1\r\n", /* start > end */
            "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n", /* slot out of range */
            "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n",     /* port 0 */
            "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:70000\r\n", /* port too big */
            "*1\r\n*2\r\n:0\r\n:1\r\n",                            /* no master */
            "*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nh\r\n",           /* no port */
            "*1\r\n*3\r\n:0\r\n",                                  /* incomplete */
            "*0\r\n+extra\r\n",                                    /* trailing bytes */
        };

        CHECK_EQ_INT(kurz_redis_slots_parse_resp(partial, sizeof(partial) - 1, "x", &map), 100);
        CHECK_EQ_INT(map.owner[99], KURZ_REDIS_NO_NODE);
        CHECK_EQ_INT(map.owner[200], KURZ_REDIS_NO_NODE);
        CHECK_EQ_STR(map.nodes[map.owner[150]].addr.host, "h");
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                CHECK_EQ_INT(kurz_redis_slots_parse_resp(bad[i], strlen(bad[i]), "x", &map),
                             -EPROTO);
}

static void test_breaker(void)
{
        struct kurz_redis_breaker b;
        bool probe;

        kurz_redis_breaker_init(&b, 100, 400);
        CHECK(kurz_redis_breaker_allow(&b, 0, &probe));
        CHECK(!probe);
        /* One failure opens it: fail fast for the backoff. */
        kurz_redis_breaker_failure(&b, 1000);
        CHECK_EQ_INT(b.state, KURZ_BREAKER_OPEN);
        CHECK_EQ_INT(b.opens, 1);
        CHECK(!kurz_redis_breaker_allow(&b, 1000, NULL));
        CHECK(!kurz_redis_breaker_allow(&b, 1099, NULL));
        /* A straggler's failure while open does not extend it. */
        kurz_redis_breaker_failure(&b, 1050);
        CHECK_EQ_INT(b.open_until_ms, 1100);
        /* After it: exactly one probe. */
        CHECK(kurz_redis_breaker_allow(&b, 1100, &probe));
        CHECK(probe);
        CHECK(!kurz_redis_breaker_allow(&b, 1101, &probe));
        CHECK(!probe);
        /* The probe fails: open again, twice as long. */
        kurz_redis_breaker_failure(&b, 1110);
        CHECK_EQ_INT(b.state, KURZ_BREAKER_OPEN);
        CHECK_EQ_INT(b.open_until_ms, 1310);
        CHECK(kurz_redis_breaker_allow(&b, 1310, &probe) && probe);
        kurz_redis_breaker_failure(&b, 1310);
        CHECK_EQ_INT(b.open_until_ms, 1710); /* 400: the maximum */
        CHECK(kurz_redis_breaker_allow(&b, 1710, &probe) && probe);
        kurz_redis_breaker_failure(&b, 1710);
        CHECK_EQ_INT(b.open_until_ms, 2110); /* stays at the maximum */
        /* A successful probe closes it and resets the backoff. */
        CHECK(kurz_redis_breaker_allow(&b, 2110, &probe) && probe);
        kurz_redis_breaker_success(&b);
        CHECK_EQ_INT(b.state, KURZ_BREAKER_CLOSED);
        CHECK(kurz_redis_breaker_allow(&b, 2111, &probe) && !probe);
        kurz_redis_breaker_failure(&b, 3000);
        CHECK_EQ_INT(b.open_until_ms, 3100);
        CHECK_EQ_INT(b.opens, 2);
}

static void test_l2_value(void)
{
        struct kurz_buf b = {0};
        struct kurz_str url;
        int64_t e;

        CHECK_EQ_INT(kurz_l2_encode(&b, 1767225600, "https://x.example/a b", 21), 0);
        CHECK_EQ_INT(kurz_l2_decode(b.p, b.len, &e, &url), 0);
        CHECK(e == 1767225600);
        CHECK(url.len == 21 && memcmp(url.p, "https://x.example/a b", 21) == 0);
        kurz_buf_free(&b);
        CHECK_EQ_INT(kurz_l2_decode("0 https://a", 11, &e, &url), 0);
        CHECK(e == 0);
        CHECK_EQ_INT(kurz_l2_decode("12", 2, &e, &url), -EINVAL);
        CHECK_EQ_INT(kurz_l2_decode("12 ", 3, &e, &url), -EINVAL);
        CHECK_EQ_INT(kurz_l2_decode(" https://a", 10, &e, &url), -EINVAL);
        CHECK_EQ_INT(kurz_l2_decode("-1 https://a", 12, &e, &url), -EINVAL);
        CHECK_EQ_INT(kurz_l2_decode("99999999999999999999 https://a", 30, &e, &url), -EINVAL);
}

static void test_l2_tiers(void)
{
        struct kurz_l2_tier t[KURZ_L2_MAX_TIERS];

        CHECK_EQ_INT(kurz_l2_parse_tiers("10=10m,100=15m,1000=30m", t, KURZ_L2_MAX_TIERS), 3);
        CHECK(t[0].min_hits == 10 && t[0].ttl_ms == 600000);
        CHECK(t[2].min_hits == 1000 && t[2].ttl_ms == 1800000);
        CHECK_EQ_INT(kurz_l2_parse_tiers("off", t, KURZ_L2_MAX_TIERS), 0);
        CHECK_EQ_INT(kurz_l2_parse_tiers("100=1m,10=2m", t, KURZ_L2_MAX_TIERS), -EINVAL);
        CHECK_EQ_INT(kurz_l2_parse_tiers("10", t, KURZ_L2_MAX_TIERS), -EINVAL);
        CHECK_EQ_INT(kurz_l2_parse_tiers("10=0", t, KURZ_L2_MAX_TIERS), -EINVAL);
        CHECK_EQ_INT(kurz_l2_parse_tiers("x=1m", t, KURZ_L2_MAX_TIERS), -EINVAL);
}

int main(void)
{
        RUN(test_crc16);
        RUN(test_hash_tags);
        RUN(test_redirect_errors);
        RUN(test_slot_map);
        RUN(test_slot_map_partial_and_bad);
        RUN(test_breaker);
        RUN(test_l2_value);
        RUN(test_l2_tiers);
        TEST_END("redis");
}
