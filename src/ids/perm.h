/* ids/perm.h - a keyed permutation of [0, 62^7): a Feistel network over 42
 * bits with cycle walking. Distinct counters give distinct codes, and
 * consecutive counters give unrelated-looking codes. Thread-safe after init. */
#ifndef KURZ_IDS_PERM_H
#define KURZ_IDS_PERM_H
#include <stdint.h>

#define KURZ_PERM_DOMAIN 3521614606208ULL /* 62^7 */

struct kurz_perm {
        uint8_t key[16];
};

void kurz_perm_init(struct kurz_perm *p, const uint8_t key[16]);
/* x must be < KURZ_PERM_DOMAIN; the result is too. */
uint64_t kurz_perm_apply(const struct kurz_perm *p, uint64_t x);
/* The inverse: the SQLite store keys a link by the counter of its code. */
uint64_t kurz_perm_invert(const struct kurz_perm *p, uint64_t y);
#endif
