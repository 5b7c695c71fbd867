/* limit/clientip.h - who the client is: the TCP peer, or, only when the peer
 * is a configured trusted proxy, the right-most X-Forwarded-For address that
 * is not itself a trusted proxy. Immutable after parse: thread-safe. */
#ifndef KURZ_LIMIT_CLIENTIP_H
#define KURZ_LIMIT_CLIENTIP_H
#include <stddef.h>
#include <sys/socket.h>

#include "util/str.h"

struct kurz_proxies; /* opaque */

/* Parses a comma-separated list of addresses or CIDRs (IPv4 and IPv6), e.g.
 * "127.0.0.1,10.0.0.0/8,::1". An empty or NULL list trusts nobody. Returns 0 or
 * -EINVAL (with *out NULL); free with kurz_proxies_free(). */
int kurz_proxies_parse(const char *list, struct kurz_proxies **out);
void kurz_proxies_free(struct kurz_proxies *p);

#define KURZ_IP_STRLEN 46 /* INET6_ADDRSTRLEN */

/* Writes the client's address as text into out (NUL-terminated). xff is the
 * raw X-Forwarded-For header (may be empty). Malformed XFF entries are ignored
 * (the peer is used). Returns the length written. */
size_t kurz_client_ip(const struct kurz_proxies *p, const struct sockaddr_storage *peer,
                      struct kurz_str xff, char out[KURZ_IP_STRLEN]);
#endif
