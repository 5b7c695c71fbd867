/* bench/zipf.c - rejection-inversion Zipf sampling. H is an integral of the
 * hat function x^-s; the helpers keep it accurate near s = 1, where the closed
 * form (x^(1-s) - 1) / (1 - s) would divide by almost zero. */
#include "zipf.h"

#include <errno.h>
#include <math.h>

/* log1p(x) / x, continuous at 0. */
static double helper1(double x)
{
        if (fabs(x) > 1e-8)
                return log1p(x) / x;
        return 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}

/* expm1(x) / x, continuous at 0. */
static double helper2(double x)
{
        if (fabs(x) > 1e-8)
                return expm1(x) / x;
        return 1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x));
}

static double h_integral(const struct kurz_zipf *z, double x)
{
        double log_x = log(x);

        return helper2((1.0 - z->s) * log_x) * log_x;
}

static double h(const struct kurz_zipf *z, double x)
{
        return exp(-z->s * log(x));
}

static double h_integral_inverse(const struct kurz_zipf *z, double x)
{
        double t = x * (1.0 - z->s);

        if (t < -1.0)
                t = -1.0; /* only reachable through rounding */
        return exp(helper1(t) * x);
}

int kurz_zipf_init(struct kurz_zipf *z, uint64_t n, double s)
{
        if (n == 0 || !(s >= 0.0 && s <= 10.0))
                return -EINVAL;
        z->n = n;
        z->s = s;
        z->h_x1 = h_integral(z, 1.5) - 1.0;
        z->h_n = h_integral(z, (double)n + 0.5);
        z->sv = 2.0 - h_integral_inverse(z, h_integral(z, 2.5) - h(z, 2.0));
        return 0;
}

uint64_t kurz_zipf_next(const struct kurz_zipf *z, struct kurz_rng *r)
{
        double u, x, k;

        if (z->s == 0.0 || z->n == 1)
                return kurz_rng_below(r, z->n);
        for (;;) {
                /* u is uniform in (h_x1, h_n]. */
                u = z->h_n + kurz_rng_double(r) * (z->h_x1 - z->h_n);
                x = h_integral_inverse(z, u);
                k = floor(x + 0.5);
                if (k < 1.0)
                        k = 1.0;
                else if (k > (double)z->n)
                        k = (double)z->n;
                if (k - x <= z->sv || u >= h_integral(z, k + 0.5) - h(z, k))
                        return (uint64_t)k - 1;
        }
}
