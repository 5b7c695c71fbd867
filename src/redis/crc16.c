/* redis/crc16.c - CRC16 and the key slot of Redis Cluster (see the cluster
 * specification, "Keys distribution model"). Bitwise: keys are short. */
#include "redis/crc16.h"

#include <string.h>

uint16_t kurz_crc16(const void *buf, size_t len)
{
        const unsigned char *p = buf;
        uint16_t crc = 0;

        for (size_t i = 0; i < len; i++) {
                crc ^= (uint16_t)(p[i] << 8);
                for (int k = 0; k < 8; k++)
                        crc =
                            (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
        }
        return crc;
}

unsigned kurz_redis_key_slot(const char *key, size_t len)
{
        const char *open = len ? memchr(key, '{', len) : NULL;

        if (open) {
                size_t from = (size_t)(open - key) + 1;
                const char *close = memchr(key + from, '}', len - from);

                if (close && close > key + from)
                        return kurz_crc16(key + from, (size_t)(close - (key + from))) &
                               (KURZ_REDIS_SLOTS - 1);
        }
        return kurz_crc16(key, len) & (KURZ_REDIS_SLOTS - 1);
}
