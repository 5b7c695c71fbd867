/* ids/perm.c - the keyed permutation behind compact codes: a 6-round
 * balanced Feistel network over 42 bits (two 21-bit halves), made a
 * permutation of [0, 62^7) by cycle walking. */
#include "ids/perm.h"

#include <string.h>

#include "util/hash.h"

/*
 * Why this is a bijection by construction: each Feistel round maps (L, R) to
 * (R, L ^ F(R)), which is undone by (L', R') -> (R' ^ F(L'), L') whatever F
 * is, so the network is a permutation of [0, 2^42). 62^7 < 2^42 (about 80 %
 * of it), and cycle walking - applying the network again while the result is
 * >= 62^7 - restricts it to a permutation of [0, 62^7): following x's cycle
 * must come back to x, which is in range, so the walk ends, and two inputs in
 * range never meet because the walk from each only crosses out-of-range
 * points. Expected steps: 2^42 / 62^7 ~= 1.25.
 *
 * The round function is SipHash-2-4 under the store's secret key of the
 * round number and the half, keeping its low 21 bits: without the key,
 * consecutive counters give codes that look unrelated.
 */

#define PERM_HALF_BITS 21
#define PERM_HALF_MASK ((UINT64_C(1) << PERM_HALF_BITS) - 1)
#define PERM_BITS_MASK ((UINT64_C(1) << (2 * PERM_HALF_BITS)) - 1)
#define PERM_ROUNDS    6

static uint64_t round_fn(const struct kurz_perm *p, unsigned round, uint64_t half)
{
        uint8_t msg[8];
        uint64_t m = (uint64_t)round << 32 | half;

        for (int i = 0; i < 8; i++)
                msg[i] = (uint8_t)(m >> (8 * i));
        return kurz_siphash(p->key, msg, sizeof(msg)) & PERM_HALF_MASK;
}

static uint64_t feistel(const struct kurz_perm *p, uint64_t x)
{
        uint64_t l = x >> PERM_HALF_BITS, r = x & PERM_HALF_MASK, t;

        for (unsigned i = 0; i < PERM_ROUNDS; i++) {
                t = l ^ round_fn(p, i, r);
                l = r;
                r = t;
        }
        return l << PERM_HALF_BITS | r;
}

static uint64_t feistel_inverse(const struct kurz_perm *p, uint64_t y)
{
        uint64_t l = y >> PERM_HALF_BITS, r = y & PERM_HALF_MASK, t;

        for (unsigned i = PERM_ROUNDS; i-- > 0;) {
                t = r ^ round_fn(p, i, l);
                r = l;
                l = t;
        }
        return l << PERM_HALF_BITS | r;
}

void kurz_perm_init(struct kurz_perm *p, const uint8_t key[16])
{
        memcpy(p->key, key, sizeof(p->key));
}

uint64_t kurz_perm_apply(const struct kurz_perm *p, uint64_t x)
{
        /* Out of contract (x >= 62^7): keep to 42 bits so the walk still ends
         * and the result is still in range. */
        x &= PERM_BITS_MASK;
        do
                x = feistel(p, x);
        while (x >= KURZ_PERM_DOMAIN);
        return x;
}

uint64_t kurz_perm_invert(const struct kurz_perm *p, uint64_t y)
{
        y &= PERM_BITS_MASK;
        do
                y = feistel_inverse(p, y);
        while (y >= KURZ_PERM_DOMAIN);
        return y;
}
