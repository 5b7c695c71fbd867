/* util/hash.c - SipHash-2-4, written from the reference description by
 * Aumasson and Bernstein ("SipHash: a fast short-input PRF", 2012), and the
 * fixed-key kurz_hash built on it. Portable: bytes are read little-endian
 * whatever the host order, so stored hashes agree across machines. */
#include "util/hash.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

/* The key of kurz_hash. Its values are stored (URL dedupe indexes) and used to
 * pick shards, so it must NEVER change: changing it orphans every stored hash.
 * It is not a secret; it only has to be fixed. (The ASCII of
 * "kurz-url-hash-v1".) */
static const uint8_t kurz_hash_key[16] = {'k', 'u', 'r', 'z', '-', 'u', 'r', 'l',
                                          '-', 'h', 'a', 's', 'h', '-', 'v', '1'};

static inline uint64_t rotl64(uint64_t x, unsigned b)
{
        return (x << b) | (x >> (64 - b));
}

static inline uint64_t load_le64(const uint8_t *p)
{
        return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
               (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
               (uint64_t)p[7] << 56;
}

#define SIPROUND                                                                                   \
        do {                                                                                       \
                v0 += v1;                                                                          \
                v1 = rotl64(v1, 13);                                                               \
                v1 ^= v0;                                                                          \
                v0 = rotl64(v0, 32);                                                               \
                v2 += v3;                                                                          \
                v3 = rotl64(v3, 16);                                                               \
                v3 ^= v2;                                                                          \
                v0 += v3;                                                                          \
                v3 = rotl64(v3, 21);                                                               \
                v3 ^= v0;                                                                          \
                v2 += v1;                                                                          \
                v1 = rotl64(v1, 17);                                                               \
                v1 ^= v2;                                                                          \
                v2 = rotl64(v2, 32);                                                               \
        } while (0)

uint64_t kurz_siphash(const uint8_t key[16], const void *data, size_t len)
{
        const uint8_t *p = data;
        size_t i, full = len & ~(size_t)7;
        uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
        uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
        uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
        uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
        uint64_t v3 = k1 ^ 0x7465646279746573ULL;
        uint64_t m, b = (uint64_t)len << 56;

        for (i = 0; i < full; i += 8) {
                m = load_le64(p + i);
                v3 ^= m;
                SIPROUND;
                SIPROUND;
                v0 ^= m;
        }
        /* The last 0-7 bytes, with the length in the top byte. (No pointer
         * arithmetic when len is 0: data may then be NULL.) */
        if (len & 7)
                p += full;
        switch (len & 7) {
        case 7:
                b |= (uint64_t)p[6] << 48;
                /* fall through */
        case 6:
                b |= (uint64_t)p[5] << 40;
                /* fall through */
        case 5:
                b |= (uint64_t)p[4] << 32;
                /* fall through */
        case 4:
                b |= (uint64_t)p[3] << 24;
                /* fall through */
        case 3:
                b |= (uint64_t)p[2] << 16;
                /* fall through */
        case 2:
                b |= (uint64_t)p[1] << 8;
                /* fall through */
        case 1:
                b |= (uint64_t)p[0];
                break;
        case 0:
                break;
        }
        v3 ^= b;
        SIPROUND;
        SIPROUND;
        v0 ^= b;
        v2 ^= 0xff;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        SIPROUND;
        return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t kurz_hash(const void *data, size_t len)
{
        return kurz_siphash(kurz_hash_key, data, len);
}

void kurz_hash_random_key(uint8_t key[16])
{
        struct timespec ts;
        uint64_t a, b;

        if (getrandom(key, 16, 0) == 16)
                return;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        a = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32);
        b = (uint64_t)(uintptr_t)key ^ (a * 0x9e3779b97f4a7c15ull);
        memcpy(key, &a, 8);
        memcpy(key + 8, &b, 8);
}
