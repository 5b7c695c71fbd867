/* redis/crc16.h - the key hash of Redis Cluster: CRC16 (XMODEM: polynomial
 * 0x1021, initial value 0) of the key, or of its {hash tag}, modulo 16384.
 * Pure functions, thread-safe. */
#ifndef KURZ_REDIS_CRC16_H
#define KURZ_REDIS_CRC16_H
#include <stddef.h>
#include <stdint.h>

#define KURZ_REDIS_SLOTS 16384

/* CRC16-XMODEM of len bytes; "123456789" gives 0x31C3. */
uint16_t kurz_crc16(const void *buf, size_t len);

/* The cluster slot (0..16383) of key. When the key holds a '{' followed later
 * by a '}' with at least one byte between them, only the bytes between the
 * first '{' and the first '}' after it are hashed (the hash tag), so that
 * "kurz:u:{abc}" and "kurz:t:{abc}" live in the same slot. */
unsigned kurz_redis_key_slot(const char *key, size_t len);
#endif
