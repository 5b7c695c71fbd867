/* bench/hdr.h - a high-dynamic-range latency histogram for kurz-bench: log-linear
 * buckets over 1 ns .. ~68 s with at most 1/128 (< 0.8 %) relative error, fixed
 * size (30 KiB), so recording is O(1) and never allocates. */
#ifndef KURZ_BENCH_HDR_H
#define KURZ_BENCH_HDR_H
#include <stdint.h>

/* Values are recorded in nanoseconds. Values at or above KURZ_HDR_MAX_NS are
 * clamped into the last bucket (but max() still reports the true maximum). */
#define KURZ_HDR_SUB_BITS 7
#define KURZ_HDR_SUB      (1u << KURZ_HDR_SUB_BITS)
#define KURZ_HDR_EXP_MAX  36 /* values below 2^36 ns (68.7 s) are resolved */
#define KURZ_HDR_BUCKETS  (KURZ_HDR_SUB + (KURZ_HDR_EXP_MAX - KURZ_HDR_SUB_BITS) * KURZ_HDR_SUB)
#define KURZ_HDR_MAX_NS   ((uint64_t)1 << KURZ_HDR_EXP_MAX)

/* A plain value type: zero-initialise (or kurz_hdr_reset) before use. Not
 * thread-safe; each thread records into its own and kurz_hdr_merge() adds them. */
struct kurz_hdr {
        uint64_t count;
        uint64_t min;
        uint64_t max;
        long double sum;
        uint64_t buckets[KURZ_HDR_BUCKETS];
};

void kurz_hdr_reset(struct kurz_hdr *h);

/* Records one value (ns). */
void kurz_hdr_record(struct kurz_hdr *h, uint64_t ns);

/* Adds every count of src to dst. */
void kurz_hdr_merge(struct kurz_hdr *dst, const struct kurz_hdr *src);

/* Returns the smallest recorded bucket upper bound v such that at least q
 * (0..100) percent of the values are <= v; the true value is within 1/128 below
 * it. q >= 100 returns the exact maximum; an empty histogram returns 0. */
uint64_t kurz_hdr_percentile(const struct kurz_hdr *h, double q);

/* Mean of the recorded values in ns (0 when empty). */
double kurz_hdr_mean(const struct kurz_hdr *h);

/* Bucket index of a value, and the inclusive upper bound of a bucket: exposed
 * for the unit tests and for dumping the distribution. */
unsigned kurz_hdr_index(uint64_t ns);
uint64_t kurz_hdr_bucket_high(unsigned idx);
#endif
