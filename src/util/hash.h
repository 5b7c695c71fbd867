/* util/hash.h - SipHash-2-4 (keyed, for the code permutation and hash tables
 * fed by clients) and a fixed-key 64-bit hash of URLs for dedupe indexes.
 * Pure functions, thread-safe. */
#ifndef KURZ_UTIL_HASH_H
#define KURZ_UTIL_HASH_H
#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of data under a 16-byte key. */
uint64_t kurz_siphash(const uint8_t key[16], const void *data, size_t len);
/* Stable hash of bytes with a fixed key: the same on every process, build and
 * machine, so it may be stored (URL dedupe) and used for sharding. */
uint64_t kurz_hash(const void *data, size_t len);
/* Fills key with 16 random bytes for keying in-memory hash tables fed by
 * clients. Falls back to clock-derived bytes when getrandom fails: such a key
 * only hardens probe chains, so a weak one degrades gracefully. Thread-safe. */
void kurz_hash_random_key(uint8_t key[16]);
#endif
