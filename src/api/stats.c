/* api/stats.c - the stats service: GET /api/v1/stats/url/{code} (one link's
 * clicks from the daily rollup) and GET /api/v1/stats/platform (totals from
 * the store's maintained counters). Both run on the blocking pool and never
 * scan raw rows, so they stay fast with millions of links and clicks. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_int.h"
#include "util/json.h"

struct stats_job {
        struct kurz_service *s;
        char code[KURZ_CODE_MAX + 1];
        size_t code_len;
        int64_t now;
        int32_t today;
        int rc;
        struct kurz_link_stats link;
        struct kurz_platform_stats platform;
};

static void store_failed(struct kurz_service *s, struct kurz_http_exchange *x)
{
        struct kurz_http_header h = {KURZ_STR_LIT("Retry-After"), KURZ_STR_LIT("1")};

        kurz_metrics_add(s->metrics, KURZ_METRICS_SHARED, KURZ_C_STORE_ERROR, 1);
        kurz_api_error(s, x, KURZ_ROUTE_STATS, 503, "SERVICE_UNAVAILABLE",
                       "the link store is unavailable; retry shortly", NULL, &h, 1);
}

static void not_found(struct kurz_service *s, struct kurz_http_exchange *x, const char *code,
                      size_t len)
{
        struct kurz_buf extra = {0};

        kurz_buf_puts(&extra, ",\"shortCode\":");
        kurz_json_escape(&extra, code, len);
        kurz_api_error(s, x, KURZ_ROUTE_STATS, 404, "URL_NOT_FOUND", "short URL not found", extra.p,
                       NULL, 0);
        kurz_buf_free(&extra);
}

static struct stats_job *job_new(struct kurz_service *s)
{
        struct stats_job *j = calloc(1, sizeof(*j));

        if (!j)
                return NULL;
        j->s = s;
        j->now = kurz_api_now_s();
        j->today = (int32_t)(j->now / 86400);
        return j;
}

/* "YYYY-MM-DD" of a day number (days since 1970-01-01, UTC). */
static int put_date(struct kurz_buf *b, int32_t day)
{
        time_t t = (time_t)day * 86400;
        struct tm tm;

        if (!gmtime_r(&t, &tm))
                return -ERANGE;
        return kurz_buf_printf(b, "\"%04d-%02d-%02d\"", tm.tm_year + 1900, tm.tm_mon + 1,
                               tm.tm_mday);
}

static void link_work(void *arg)
{
        struct stats_job *j = arg;
        struct kurz_store *st = j->s->store;

        if (!st->ops->stats_link) {
                j->rc = -ENOSYS;
                return;
        }
        j->rc = st->ops->stats_link(st, j->code, j->code_len, j->today, &j->link);
}

static void link_done(struct kurz_http_exchange *x, void *arg)
{
        struct stats_job *j = arg;
        struct kurz_service *s = j->s;
        const struct kurz_link_stats *l = &j->link;
        struct kurz_buf b = {0};
        int rc = 0;

        if (j->rc == KURZ_E_NOTFOUND) {
                not_found(s, x, j->code, j->code_len);
                goto out;
        }
        if (j->rc < 0) {
                store_failed(s, x);
                goto out;
        }
        rc |= kurz_buf_puts(&b, "{\"success\":true,\"shortCode\":");
        rc |= kurz_json_escape(&b, j->code, j->code_len);
        rc |= kurz_buf_printf(&b,
                              ",\"totalClicks\":%" PRId64 ",\"clicksToday\":%" PRId64
                              ",\"clicksThisWeek\":%" PRId64 ",\"clicksThisMonth\":%" PRId64,
                              l->total_clicks, l->clicks_today, l->clicks_week, l->clicks_month);
        rc |= kurz_buf_puts(&b, ",\"firstClickAt\":");
        rc |= kurz_json_time(&b, l->first_click);
        rc |= kurz_buf_puts(&b, ",\"lastClickAt\":");
        rc |= kurz_json_time(&b, l->last_click);
        rc |= kurz_buf_puts(&b, ",\"clickTimeline\":[");
        for (size_t i = 0; i < l->ndays; i++) {
                rc |= kurz_buf_puts(&b, i ? ",{\"date\":" : "{\"date\":");
                rc |= put_date(&b, l->timeline[i].day);
                rc |= kurz_buf_printf(&b, ",\"clicks\":%" PRId64 "}", l->timeline[i].clicks);
        }
        rc |= kurz_buf_puts(&b, "]}");
        if (rc)
                kurz_api_error(s, x, KURZ_ROUTE_STATS, 500, "INTERNAL_SERVER_ERROR",
                               "out of memory", NULL, NULL, 0);
        else
                kurz_api_json(s, x, KURZ_ROUTE_STATS, 200, &b, NULL, 0);
out:
        free(j->link.timeline);
        kurz_buf_free(&b);
        free(j);
}

void kurz_api_stats_link(struct kurz_service *s, struct kurz_http_exchange *x, struct kurz_str code)
{
        struct stats_job *j;

        if (s->read_limit && !kurz_api_rate_ok(s, x, s->read_limit, KURZ_ROUTE_STATS))
                return;
        if (!kurz_code_syntax_ok(code) || code.len > KURZ_CODE_MAX) {
                not_found(s, x, code.p, code.len > KURZ_CODE_MAX ? 0 : code.len);
                return;
        }
        j = job_new(s);
        if (!j) {
                store_failed(s, x);
                return;
        }
        memcpy(j->code, code.p, code.len);
        j->code_len = code.len;
        if (kurz_http_offload(x, link_work, link_done, j) < 0) {
                free(j);
                store_failed(s, x);
        }
}

static void platform_work(void *arg)
{
        struct stats_job *j = arg;
        struct kurz_store *st = j->s->store;

        if (!st->ops->stats_platform) {
                j->rc = -ENOSYS;
                return;
        }
        j->rc = st->ops->stats_platform(st, j->now, j->today, &j->platform);
}

static void platform_done(struct kurz_http_exchange *x, void *arg)
{
        struct stats_job *j = arg;
        struct kurz_service *s = j->s;
        const struct kurz_platform_stats *p = &j->platform;
        struct kurz_buf b = {0};
        int rc = 0;

        if (j->rc < 0) {
                store_failed(s, x);
                goto out;
        }
        rc |= kurz_buf_printf(&b,
                              "{\"success\":true,\"totalUrls\":%" PRId64 ",\"totalClicks\":%" PRId64
                              ",\"clicksToday\":%" PRId64 ",\"activeUrls\":%" PRId64
                              ",\"lastUpdated\":",
                              p->total_urls, p->total_clicks, p->clicks_today, p->active_urls);
        rc |= kurz_json_time(&b, j->now);
        rc |= kurz_buf_puts(&b, "}");
        if (rc)
                kurz_api_error(s, x, KURZ_ROUTE_STATS, 500, "INTERNAL_SERVER_ERROR",
                               "out of memory", NULL, NULL, 0);
        else
                kurz_api_json(s, x, KURZ_ROUTE_STATS, 200, &b, NULL, 0);
out:
        kurz_buf_free(&b);
        free(j);
}

void kurz_api_stats_platform(struct kurz_service *s, struct kurz_http_exchange *x)
{
        struct stats_job *j;

        if (s->read_limit && !kurz_api_rate_ok(s, x, s->read_limit, KURZ_ROUTE_STATS))
                return;
        j = job_new(s);
        if (!j) {
                store_failed(s, x);
                return;
        }
        if (kurz_http_offload(x, platform_work, platform_done, j) < 0) {
                free(j);
                store_failed(s, x);
        }
}
