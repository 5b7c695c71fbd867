/* bench/test_bench.c - unit tests of kurz-bench's parts that a wrong number
 * would silently come from: histogram error bounds and percentiles, the Zipf
 * sampler's distribution and determinism, and response-head parsing. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "hdr.h"
#include "httpc.h"
#include "test.h"
#include "zipf.h"

static void test_hdr_relative_error(void)
{
        struct kurz_rng r;
        uint64_t v, hi, prev_hi = 0;
        unsigned i, idx, prev_idx = 0;
        bool ok = true, mono = true;

        kurz_rng_seed(&r, 42);
        for (i = 0; i < 200000; i++) {
                /* log-uniform over 1 ns .. 60 s */
                v = (uint64_t)exp(kurz_rng_double(&r) * log(60e9));
                hi = kurz_hdr_bucket_high(kurz_hdr_index(v));
                if (hi < v || (double)(hi - v) > (double)v / 128.0 + 1.0)
                        ok = false;
        }
        CHECK(ok);
        for (v = 1; v < 1000000; v = v + 1 + v / 50) {
                idx = kurz_hdr_index(v);
                hi = kurz_hdr_bucket_high(idx);
                if (idx < prev_idx || hi < prev_hi)
                        mono = false;
                prev_idx = idx;
                prev_hi = hi;
        }
        CHECK(mono);
        CHECK_EQ_INT(kurz_hdr_index(KURZ_HDR_MAX_NS * 4), KURZ_HDR_BUCKETS - 1);
        CHECK_EQ_INT(kurz_hdr_index(KURZ_HDR_MAX_NS - 1), KURZ_HDR_BUCKETS - 1);
        CHECK_EQ_INT(kurz_hdr_bucket_high(kurz_hdr_index(100)), 100);
}

static bool close_to(double got, double want, double rel)
{
        return fabs(got - want) <= rel * want;
}

static void test_hdr_percentiles(void)
{
        static struct kurz_hdr a, b;
        uint64_t i;

        kurz_hdr_reset(&a);
        kurz_hdr_reset(&b);
        CHECK_EQ_INT(kurz_hdr_percentile(&a, 99), 0);
        /* 1..10000 us, each once */
        for (i = 1; i <= 10000; i++)
                kurz_hdr_record(i <= 5000 ? &a : &b, i * 1000);
        kurz_hdr_merge(&a, &b);
        CHECK_EQ_INT(a.count, 10000);
        CHECK_EQ_INT(a.min, 1000);
        CHECK_EQ_INT(a.max, 10000000);
        CHECK(close_to((double)kurz_hdr_percentile(&a, 50), 5000e3, 0.01));
        CHECK(close_to((double)kurz_hdr_percentile(&a, 99), 9900e3, 0.01));
        CHECK(close_to((double)kurz_hdr_percentile(&a, 99.9), 9990e3, 0.01));
        CHECK_EQ_INT(kurz_hdr_percentile(&a, 100), 10000000);
        CHECK(close_to(kurz_hdr_mean(&a), 5000.5e3, 1e-9));
        /* A single outlier shows up at p99.99 but not at p99. */
        kurz_hdr_record(&a, 30ull * 1000000000);
        CHECK(kurz_hdr_percentile(&a, 99) < 11000000);
        CHECK_EQ_INT(kurz_hdr_percentile(&a, 100), 30ull * 1000000000);
}

/* Empirical frequencies of the first ranks against the exact Zipf pmf. */
static bool zipf_matches(uint64_t n, double s, unsigned draws)
{
        struct kurz_zipf z;
        struct kurz_rng r;
        unsigned counts[5] = {0}, i;
        uint64_t k;
        double h = 0, p, sd;
        bool ok = true;

        if (kurz_zipf_init(&z, n, s) < 0)
                return false;
        kurz_rng_seed(&r, 7);
        for (i = 0; i < draws; i++) {
                k = kurz_zipf_next(&z, &r);
                if (k >= n)
                        return false;
                if (k < 5)
                        counts[k]++;
        }
        for (k = 1; k <= n; k++)
                h += pow((double)k, -s);
        for (i = 0; i < 5 && i < n; i++) {
                p = pow((double)(i + 1), -s) / h;
                sd = sqrt(draws * p * (1 - p));
                if (fabs(counts[i] - draws * p) > 5 * sd + 1) {
                        fprintf(stderr, "  n %lu s %.2f rank %u: %u draws, expected %.0f\n",
                                (unsigned long)n, s, i, counts[i], draws * p);
                        ok = false;
                }
        }
        return ok;
}

static void test_zipf_distribution(void)
{
        CHECK(zipf_matches(10, 0.0, 1000000));
        CHECK(zipf_matches(100, 0.5, 1000000));
        CHECK(zipf_matches(1000, 0.8, 1000000));
        CHECK(zipf_matches(1000, 0.99, 1000000));
        CHECK(zipf_matches(1000000, 1.0, 2000000));
        CHECK(zipf_matches(1000000, 1.01, 1000000));
        CHECK(zipf_matches(50, 1.5, 1000000));
        CHECK(zipf_matches(1000, 2.0, 1000000));
        CHECK(zipf_matches(3, 1.0, 1000000));
        CHECK(zipf_matches(1, 1.0, 1000));
}

static void test_zipf_tail_and_seed(void)
{
        struct kurz_zipf z;
        struct kurz_rng a, b;
        unsigned i, same = 1, high = 0;
        uint64_t x;

        CHECK_EQ_INT(kurz_zipf_init(&z, 0, 1.0), -EINVAL);
        CHECK_EQ_INT(kurz_zipf_init(&z, 10, -0.1), -EINVAL);
        CHECK_EQ_INT(kurz_zipf_init(&z, 1000, 1.0), 0);
        kurz_rng_seed(&a, 99);
        kurz_rng_seed(&b, 99);
        for (i = 0; i < 100000; i++) {
                x = kurz_zipf_next(&z, &a);
                if (x != kurz_zipf_next(&z, &b))
                        same = 0;
                if (x >= 500)
                        high++;
        }
        CHECK(same);
        /* P(rank >= 500 of 1000, s = 1) = (H_1000 - H_500) / H_1000 = 0.0924 */
        CHECK(high > 8800 && high < 9700);
}

static void test_httpc_parse(void)
{
        static const char two[] = "HTTP/1.1 302 Found\r\nLocation: https://x/\r\n"
                                  "content-length: 0\r\n\r\n"
                                  "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n"
                                  "Connection: keep-alive, Close\r\n\r\nnope!";
        struct kurz_httpc_resp r;
        size_t first = strstr(two, "HTTP/1.1 404") - two, i;
        bool ok = true;

        CHECK_EQ_INT(kurz_httpc_parse(two, sizeof(two) - 1, false, &r), 1);
        CHECK_EQ_INT(r.status, 302);
        CHECK_EQ_INT(r.head_len, first);
        CHECK_EQ_INT(r.body_len, 0);
        CHECK(!r.close);
        CHECK_EQ_INT(kurz_httpc_parse(two + first, sizeof(two) - 1 - first, false, &r), 1);
        CHECK_EQ_INT(r.status, 404);
        CHECK_EQ_INT(r.body_len, 5);
        CHECK(r.close);
        /* Every strict prefix of a head asks for more bytes. */
        for (i = 0; i < first; i++)
                if (kurz_httpc_parse(two, i, false, &r) != 0)
                        ok = false;
        CHECK(ok);
}

static void test_httpc_edge_cases(void)
{
        struct kurz_httpc_resp r;

#define P(s, head) kurz_httpc_parse(s, sizeof(s) - 1, head, &r)
        CHECK_EQ_INT(P("HTTP/1.1 200 OK\r\n\r\n", false), -EPROTO); /* body of unknown size */
        CHECK_EQ_INT(P("HTTP/1.1 200 OK\r\n\r\n", true), 1);        /* HEAD has none */
        CHECK_EQ_INT(P("HTTP/1.1 204 No Content\r\n\r\n", false), 1);
        CHECK_EQ_INT(r.body_len, 0);
        CHECK_EQ_INT(P("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false), -ENOTSUP);
        CHECK_EQ_INT(P("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", false),
                     -EPROTO);
        CHECK_EQ_INT(P("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", false), -EPROTO);
        CHECK_EQ_INT(P("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", false), -EPROTO);
        CHECK_EQ_INT(P("HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", false), -EPROTO);
        CHECK_EQ_INT(P("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", false), -EPROTO);
        CHECK_EQ_INT(P("SSH-2.0-OpenSSH", false), -EPROTO);
        CHECK_EQ_INT(P("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", false), 1);
        CHECK(r.close);
        CHECK_EQ_INT(
            P("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n", false), 1);
        CHECK(!r.close);
        CHECK_EQ_INT(P("HTTP/1.1 100 Continue\r\n\r\n", false), 1);
        CHECK_EQ_INT(r.status, 100);
        CHECK_EQ_INT(P("HTTP/1.1 201\r\nContent-Length:  12 \r\n\r\n", false), 1);
        CHECK_EQ_INT(r.body_len, 12);
#undef P
}

static void test_json_str(void)
{
        static const char body[] = "{\"success\":true, \"shortUrl\":\"http://h/abc\","
                                   " \"shortCode\" : \"aB3_x-9\",\"n\":1}";
        size_t len = 0;
        const char *v;

        v = kurz_httpc_json_str(body, sizeof(body) - 1, "shortCode", &len);
        CHECK(v != NULL);
        CHECK_EQ_INT(len, 7);
        CHECK(v && memcmp(v, "aB3_x-9", 7) == 0);
        CHECK(kurz_httpc_json_str(body, sizeof(body) - 1, "n", &len) == NULL);
        CHECK(kurz_httpc_json_str(body, sizeof(body) - 1, "missing", &len) == NULL);
        CHECK(kurz_httpc_json_str(body, 40, "shortCode", &len) == NULL); /* truncated */
}

int main(void)
{
        RUN(test_hdr_relative_error);
        RUN(test_hdr_percentiles);
        RUN(test_zipf_distribution);
        RUN(test_zipf_tail_and_seed);
        RUN(test_httpc_parse);
        RUN(test_httpc_edge_cases);
        RUN(test_json_str);
        TEST_END("bench");
}
