/* bench/zipf.h - seeded pseudo-random numbers and a Zipf(s) sampler over ranks
 * 0..n-1 for kurz-bench. The sampler is rejection-inversion (Hoermann and
 * Derflinger 1996): O(1) memory and expected time, exact for every s >= 0. */
#ifndef KURZ_BENCH_ZIPF_H
#define KURZ_BENCH_ZIPF_H
#include <stdint.h>

/* splitmix64: tiny, fast and good enough for workload draws; the same seed gives
 * the same sequence on every machine, which is what lets two runs (kurz-bench
 * run and kurz-bench lru-sim) replay one trace. Not thread-safe: one per thread. */
struct kurz_rng {
        uint64_t s;
};

static inline void kurz_rng_seed(struct kurz_rng *r, uint64_t seed)
{
        r->s = seed;
}

static inline uint64_t kurz_rng_next(struct kurz_rng *r)
{
        uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double kurz_rng_double(struct kurz_rng *r)
{
        return (double)(kurz_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n), n > 0 (Lemire's multiply-shift; bias < n / 2^64). */
static inline uint64_t kurz_rng_below(struct kurz_rng *r, uint64_t n)
{
        return (uint64_t)(((unsigned __int128)kurz_rng_next(r) * n) >> 64);
}

/* Immutable after kurz_zipf_init(), so one may be shared by threads that each
 * draw with their own kurz_rng. */
struct kurz_zipf {
        uint64_t n;
        double s;
        double h_x1; /* H(1.5) - 1 */
        double h_n;  /* H(n + 0.5) */
        double sv;   /* squeeze bound */
};

/* n >= 1 ranks, exponent 0 <= s <= 10 (s = 0 is uniform). Returns 0 or -EINVAL. */
int kurz_zipf_init(struct kurz_zipf *z, uint64_t n, double s);

/* Draws a rank in [0, n): rank 0 is the most popular, P(rank k) ~ (k+1)^-s. */
uint64_t kurz_zipf_next(const struct kurz_zipf *z, struct kurz_rng *r);
#endif
