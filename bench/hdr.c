/* bench/hdr.c - log-linear latency histogram. A value v >= 128 with highest set
 * bit e lands in the bucket of its top 8 bits, so every bucket spans at most
 * 1/128 of its lower bound; values below 128 ns get one bucket each. */
#include "hdr.h"

#include <math.h>
#include <string.h>

void kurz_hdr_reset(struct kurz_hdr *h)
{
        memset(h, 0, sizeof(*h));
}

unsigned kurz_hdr_index(uint64_t ns)
{
        unsigned e;

        if (ns < KURZ_HDR_SUB)
                return (unsigned)ns;
        if (ns >= KURZ_HDR_MAX_NS)
                return KURZ_HDR_BUCKETS - 1;
        e = 63u - (unsigned)__builtin_clzll(ns);
        return KURZ_HDR_SUB + (e - KURZ_HDR_SUB_BITS) * KURZ_HDR_SUB +
               (unsigned)((ns >> (e - KURZ_HDR_SUB_BITS)) - KURZ_HDR_SUB);
}

uint64_t kurz_hdr_bucket_high(unsigned idx)
{
        unsigned k, sub;

        if (idx < KURZ_HDR_SUB)
                return idx;
        if (idx >= KURZ_HDR_BUCKETS)
                idx = KURZ_HDR_BUCKETS - 1;
        k = (idx - KURZ_HDR_SUB) / KURZ_HDR_SUB;
        sub = (idx - KURZ_HDR_SUB) % KURZ_HDR_SUB;
        return (((uint64_t)KURZ_HDR_SUB + sub) << k) + ((uint64_t)1 << k) - 1;
}

void kurz_hdr_record(struct kurz_hdr *h, uint64_t ns)
{
        if (h->count == 0 || ns < h->min)
                h->min = ns;
        if (ns > h->max)
                h->max = ns;
        h->count++;
        h->sum += (long double)ns;
        h->buckets[kurz_hdr_index(ns)]++;
}

void kurz_hdr_merge(struct kurz_hdr *dst, const struct kurz_hdr *src)
{
        unsigned i;

        if (src->count == 0)
                return;
        if (dst->count == 0 || src->min < dst->min)
                dst->min = src->min;
        if (src->max > dst->max)
                dst->max = src->max;
        dst->count += src->count;
        dst->sum += src->sum;
        for (i = 0; i < KURZ_HDR_BUCKETS; i++)
                dst->buckets[i] += src->buckets[i];
}

uint64_t kurz_hdr_percentile(const struct kurz_hdr *h, double q)
{
        uint64_t target, seen = 0, v;
        unsigned i;

        if (h->count == 0)
                return 0;
        if (q >= 100.0)
                return h->max;
        if (q < 0.0)
                q = 0.0;
        target = (uint64_t)ceil(q / 100.0 * (double)h->count);
        if (target < 1)
                target = 1;
        if (target > h->count)
                target = h->count;
        for (i = 0; i < KURZ_HDR_BUCKETS; i++) {
                seen += h->buckets[i];
                if (seen >= target) {
                        v = kurz_hdr_bucket_high(i);
                        if (v > h->max)
                                v = h->max;
                        if (v < h->min)
                                v = h->min;
                        return v;
                }
        }
        return h->max;
}

double kurz_hdr_mean(const struct kurz_hdr *h)
{
        if (h->count == 0)
                return 0.0;
        return (double)(h->sum / (long double)h->count);
}
