/* limit/shared.c - the Redis-backed sliding-window limiter. */
#include "limit/shared.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "redis/cluster.h"

#define KEY_MAX 192

/* KEYS[1] current window, KEYS[2] previous; ARGV[1] limit, ARGV[2] weight of
 * the previous window in 1/1000, ARGV[3] TTL of a window key (ms). Returns
 * {allowed, current, previous}. The previous window's share is rounded up:
 * rounded down, a client that used its whole limit just before a window
 * boundary got one more request just after it. */
static const char TAKE_LUA[] =
    "local cur=tonumber(redis.call('GET',KEYS[1]) or '0') "
    "local prev=tonumber(redis.call('GET',KEYS[2]) or '0') "
    "if cur+math.ceil(prev*tonumber(ARGV[2])/1000)>=tonumber(ARGV[1]) then "
    "return {0,cur,prev} end "
    "redis.call('INCR',KEYS[1]) redis.call('PEXPIRE',KEYS[1],ARGV[3]) "
    "return {1,cur+1,prev}";

int kurz_shared_limit_take(struct kurz_redis *r, const char *scope, struct kurz_str client,
                           unsigned limit, unsigned window_ms, uint64_t now_ms,
                           unsigned *retry_after_s)
{
        uint64_t win, into, weight;
        char k1[KEY_MAX], k2[KEY_MAX], lim[16], w[24], ttl[24];
        int n1, n2, rc;
        redisReply *rep;

        if (!limit || !window_ms)
                return 1;
        if (client.len > 64)
                client.len = 64;
        win = now_ms / window_ms;
        into = now_ms % window_ms;
        weight = (uint64_t)(window_ms - into) * 1000 / window_ms;
        n1 = snprintf(k1, sizeof(k1), "kurz:rl:%s:{%.*s}:%" PRIu64, scope, (int)client.len,
                      client.p, win);
        n2 = snprintf(k2, sizeof(k2), "kurz:rl:%s:{%.*s}:%" PRIu64, scope, (int)client.len,
                      client.p, win - 1);
        if (n1 <= 0 || n2 <= 0 || n1 >= KEY_MAX || n2 >= KEY_MAX)
                return -EINVAL;
        snprintf(lim, sizeof(lim), "%u", limit);
        snprintf(w, sizeof(w), "%" PRIu64, weight);
        snprintf(ttl, sizeof(ttl), "%" PRIu64, (uint64_t)window_ms * 2 + 1000);
        {
                const char *argv[8] = {"EVAL", TAKE_LUA, "2", k1, k2, lim, w, ttl};
                size_t lens[8] = {4,          sizeof(TAKE_LUA) - 1, 1,         (size_t)n1,
                                  (size_t)n2, strlen(lim),          strlen(w), strlen(ttl)};
                rc = kurz_redis_command(r, k1, (size_t)n1, 8, argv, lens, &rep);
        }
        if (rc < 0)
                return rc;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
            rep->element[0]->type != REDIS_REPLY_INTEGER ||
            rep->element[2]->type != REDIS_REPLY_INTEGER) {
                freeReplyObject(rep);
                return -EPROTO;
        }
        rc = rep->element[0]->integer == 1;
        if (!rc && retry_after_s) {
                /* Until the previous window's weight has fallen enough, or at
                 * the latest until the next window starts. */
                long long cur = rep->element[1]->integer, prev = rep->element[2]->integer;
                uint64_t wait_ms = window_ms - into;

                if (cur + 1 < (long long)limit && prev > 0) {
                        /* need ceil(prev*(window-into-t)/window) < limit-cur,
                         * that is prev*(window-into-t)/window <= limit-cur-1 */
                        uint64_t keep = (uint64_t)(limit - 1 - (unsigned long long)cur) *
                                        window_ms / (uint64_t)prev;
                        uint64_t left = window_ms - into;
                        wait_ms = left > keep ? left - keep : 0;
                }
                *retry_after_s = (unsigned)((wait_ms + 999) / 1000);
                if (*retry_after_s == 0)
                        *retry_after_s = 1;
        }
        freeReplyObject(rep);
        return rc;
}
