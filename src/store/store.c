/* store/store.c - helpers shared by every store backend: freeing what the
 * backends hand out. The backends themselves live in sqlite.c and pg.c. */
#include "store/store.h"

#include <stdlib.h>

void kurz_store_links_free(struct kurz_link *links, size_t n)
{
        if (!links)
                return;
        for (size_t i = 0; i < n; i++)
                free(links[i].url);
        free(links);
}
