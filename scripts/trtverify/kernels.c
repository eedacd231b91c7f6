/* compare's passes over every element: one loop per backend and batch, one per pair and batch, one over the
 * reference for its output profile, and for logits one over a part of a batch's rows for every pair's softmax check.
 * kernels.py compiles this file on first use and calls it through ctypes; the definitions are metrics.py's, and
 * tests/test_kernels.py checks each figure against plain numpy.
 *
 * Each pass exists for float32 and float64 rows (float16 is widened to float32 by the caller: exact). Elements are
 * widened to double, which is exact, before any arithmetic. The caller owns every array (C order, native byte
 * order); a pass allocates only its row buffers and returns -1 when it cannot.
 *
 * Compiled with reassociation allowed (kernels.py's FLAGS), so that sums over a row run in SIMD lanes; nothing
 * assumes finite values (NaN and Inf keep their meaning) and no multiply-add is fused (a bound stays a bound).
 */
#define _POSIX_C_SOURCE 200809L /* newlocale, uselocale */
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* With GCC on x86-64 Linux, kernels.py links glibc's vector maths (libmvec) where it is there and defines
 * TRTVERIFY_MVEC: exp, declared a SIMD function, then takes two (baseline) or four (AVX2) elements of a row a call,
 * and the softmax pass runs in half the time it took with libm's, one element at a time (exp held the logits).
 * Its results differ from libm's by a few units in the last place (tests/test_kernels.py bounds them). */
#if defined(TRTVERIFY_MVEC) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((simd("notinbranch"))) double exp(double);
#endif

#define LANES 32   /* running maxima of the top-k search */
#define COPIES 4   /* copies of a pair's sketch counters (count_row); a power of two */
#define EXPONENT_32 0x7F800000u
#define EXPONENT_64 0x7FF0000000000000ull
/* The bits of a float32 or float64 as a signed integer that orders as the values do: the magnitude bits of a negative
 * value flipped. The mapping is its own inverse. */
#define ORDERED_32(i) ((i) ^ (((i) >> 31) & 0x7FFFFFFF))
#define ORDERED_64(i) ((i) ^ (((i) >> 63) & 0x7FFFFFFFFFFFFFFFll))

/* The scalar figures of pair_pass, in the order of kernels.py's constants. */
enum {
    DIFFERING, FIRST_DIFFERENCE, OUTSIDE, FINITE, ZEROS, SUM_ABS, MAX_ABS, MIN_ABS, SUM_REL, MAX_REL, MIN_POSITIVE,
    FIGURES
};

/* x86-64 machines differ in their vector units: with GCC the hot passes are built for AVX2 as well as the baseline,
 * and the loader picks one when the library is loaded (twice as fast on the pair pass). Elsewhere, and with clang,
 * whose older releases do not export cloned functions under their own names, the compiler's baseline. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(TRTVERIFY_NO_CLONES)
#define HOT __attribute__((target_clones("avx2", "default")))
#else
#define HOT
#endif

static inline double bits_to_double(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Whether class j of value v goes before class i of value w in a stable argsort of -row: a higher value first, and
 * of equal values (-0 == +0) the lower class. */
static inline int ahead(double v, int64_t j, double w, int64_t i) { return v > w || (v == w && j < i); }

/* Put class j of value v among the `filled` best so far (at most k kept, best first, in ahead's order, whatever the
 * order of the calls). Returns the new count. */
static inline int64_t insert(double v, int64_t j, int64_t k, int64_t filled, double *best, int64_t *top) {
    if (filled == k && !ahead(v, j, best[k - 1], top[k - 1])) return filled;
    int64_t p = filled < k ? filled : k - 1;
    while (p > 0 && ahead(v, j, best[p - 1], top[p - 1])) {
        if (p < k) {
            best[p] = best[p - 1];
            top[p] = top[p - 1];
        }
        p--;
    }
    best[p] = v;
    top[p] = j;
    return filled < k ? filled + 1 : k;
}

static inline double max2(double a, double b) { return b > a ? b : a; }

/* Everything that exists once per element type: T the element, U and S the unsigned and signed integers of its
 * width, E its exponent bits (all ones: NaN or Inf); ORDERED(i) maps the bits to a signed integer that orders as
 * the values do (ORDERED_32 or ORDERED_64). */
#define PASSES(T, U, S, E, ORDERED, SUFFIX)                                                                            \
                                                                                                                       \
    /* Whether every value of a row is finite, from its bits: a branch-free test, so it runs in SIMD lanes. */         \
    static inline int finite_##SUFFIX(const T *row, int64_t c) {                                                       \
        const U *u = (const U *)row;                                                                                   \
        U bad = 0; /* in the elements' own width, so the loop is as wide as it can be */                               \
        for (int64_t j = 0; j < c; j++) bad |= (U)((u[j] & E) == E);                                                   \
        return bad == 0;                                                                                               \
    }                                                                                                                  \
                                                                                                                       \
    /* The k highest classes of a finite row, in the order of a stable argsort of -row. Element j is in lane           \
     * j % LANES, and the lanes' maxima are found in the row's own type in one pass that runs in SIMD lanes. The k     \
     * highest maxima are k distinct elements, so the row's k-th highest value is at least the k-th highest maximum,   \
     * T: only values >= T can be among the k best, and only the lanes whose maximum reaches T hold any (a handful of  \
     * the LANES). Their values >= T are put among the best in lane order, which insert's order makes the same as      \
     * class order. best and top hold the lanes' k highest maxima first, then the row's k best. */                     \
    static inline void top_k_##SUFFIX(const T *row, int64_t c, int64_t k, double *best, int64_t *top) {                \
        T m[LANES];                                                                                                    \
        int64_t lanes = c < LANES ? c : LANES, filled = 0, j = LANES;                                                  \
        for (int64_t q = 0; q < lanes; q++) m[q] = row[q];                                                             \
        if (lanes == LANES) {                                                                                          \
            for (; j + LANES <= c; j += LANES)                                                                         \
                for (int q = 0; q < LANES; q++) m[q] = row[j + q] > m[q] ? row[j + q] : m[q];                          \
            for (int q = 0; j < c; j++, q++) m[q] = row[j] > m[q] ? row[j] : m[q];                                     \
        }                                                                                                              \
        for (int64_t q = 0; q < lanes; q++) filled = insert((double)m[q], q, k, filled, best, top);                    \
        T threshold = filled == k ? (T)best[k - 1] : -INFINITY; /* a value of the row: exact in T */                   \
        filled = 0;                                                                                                    \
        for (int64_t q = 0; q < lanes; q++) {                                                                          \
            if (!(m[q] >= threshold)) continue;                                                                        \
            for (int64_t i = q; i < c; i += LANES)                                                                     \
                if (row[i] >= threshold) filled = insert((double)row[i], i, k, filled, best, top);                     \
        }                                                                                                              \
    }                                                                                                                  \
                                                                                                                       \
    /* Per row of x (n x c): whether every value is finite, and the k highest classes of a finite row (top, n x k);    \
     * rows with NaN or Inf are left to the caller. counts: the batch's NaN count, Inf count and the flat index of     \
     * its first non-finite element (-1: none). */                                                                     \
    HOT int64_t backend_pass_##SUFFIX(const T *x, int64_t n, int64_t c, int64_t k, int64_t *top,                       \
                                      uint8_t *finite_rows, int64_t *counts) {                                         \
        double *best = malloc(sizeof(double) * (size_t)(k + 1)); /* +1: never malloc(0) */                             \
        if (!best) return -1;                                                                                          \
        int64_t nan = 0, inf = 0, first = -1;                                                                          \
        for (int64_t r = 0; r < n; r++) {                                                                              \
            const T *row = x + r * c;                                                                                  \
            finite_rows[r] = (uint8_t)finite_##SUFFIX(row, c);                                                         \
            if (finite_rows[r]) {                                                                                      \
                top_k_##SUFFIX(row, c, k, best, top + r * k);                                                          \
                continue;                                                                                              \
            }                                                                                                          \
            for (int64_t j = 0; j < c; j++) {                                                                          \
                if (isfinite(row[j])) continue;                                                                        \
                if (isnan(row[j])) nan++; else inf++;                                                                  \
                if (first < 0) first = r * c + j;                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        counts[0] = nan, counts[1] = inf, counts[2] = first;                                                           \
        free(best);                                                                                                    \
        return 0;                                                                                                      \
    }                                                                                                                  \
                                                                                                                       \
    /* Two finite rows: |a - b| and the relative difference of each element into the row buffers, the row's sums       \
     * into `sums` (a.b, |a|^2, |b|^2, sum |a - b|, sum rel, differing bits), and the count of elements outside the    \
     * bound (returned). Branch-free, so the loop runs in SIMD lanes. */                                               \
    static inline int64_t finite_row_##SUFFIX(const T *a, const T *b, int64_t c, double rtol, double atol,             \
                                              double floor_, double *d_row, double *rel_row, double *sums) {           \
        const U *ua = (const U *)a, *ub = (const U *)b;                                                                \
        double s_dot = 0, s_a = 0, s_b = 0, s_abs = 0, s_rel = 0;                                                      \
        int64_t outside = 0, differing = 0;                                                                            \
        for (int64_t j = 0; j < c; j++) {                                                                              \
            double x = a[j], y = b[j];                                                                                 \
            double d = fabs(x - y), m = fabs(x);                                                                       \
            double rel = d / (m > floor_ ? m : floor_);                                                                \
            d_row[j] = d, rel_row[j] = rel;                                                                            \
            s_dot += x * y, s_a += x * x, s_b += y * y, s_abs += d, s_rel += rel;                                      \
            outside += d > rtol * m + atol;                                                                            \
            differing += ua[j] != ub[j];                                                                               \
        }                                                                                                              \
        sums[0] = s_dot, sums[1] = s_a, sums[2] = s_b, sums[3] = s_abs, sums[4] = s_rel, sums[5] = (double)differing;  \
        return outside;                                                                                                \
    }                                                                                                                  \
                                                                                                                       \
    /* A row with NaN, Inf or an overflowing difference, element by element: what is not finite is outside unless      \
     * equal, and is left out of the figures and the sketch (-1 in the row buffers); a.b, |a|^2 and |b|^2 into         \
     * `sums`. Returns where to look for the first difference (0, or past the row when one is already known). */       \
    static int64_t checked_row_##SUFFIX(const T *a, const T *b, int64_t c, double rtol, double atol, double floor_,    \
                                        double *d_row, double *rel_row, double *sums, double *out) {                   \
        const U *ua = (const U *)a, *ub = (const U *)b;                                                                \
        sums[0] = sums[1] = sums[2] = 0;                                                                               \
        for (int64_t j = 0; j < c; j++) {                                                                              \
            double x = a[j], y = b[j];                                                                                 \
            sums[0] += x * y, sums[1] += x * x, sums[2] += y * y;                                                      \
            int equal = ua[j] == ub[j] || (isnan(x) && isnan(y));                                                      \
            out[DIFFERING] += !equal;                                                                                  \
            double d = fabs(x - y), m = fabs(x);                                                                       \
            d_row[j] = rel_row[j] = -1.0;                                                                              \
            if (!(isfinite(d) && isfinite(m))) {                                                                       \
                out[OUTSIDE] += !equal;                                                                                \
                continue;                                                                                              \
            }                                                                                                          \
            double rel = d / (m > floor_ ? m : floor_);                                                                \
            d_row[j] = d, rel_row[j] = rel;                                                                            \
            out[FINITE] += 1, out[SUM_ABS] += d, out[SUM_REL] += rel;                                                  \
            out[OUTSIDE] += d > rtol * m + atol;                                                                       \
        }                                                                                                              \
        return out[FIRST_DIFFERENCE] < 0 ? 0 : c;                                                                      \
    }                                                                                                                  \
                                                                                                                       \
    /* One pair over one batch (n x c each); a is the reference. rows_finite: both rows are finite. Per element        \
     * d = |a - b| in double: counted in bucket bits(d) >> shift of `counts` (COPIES counters a key; exact zeros       \
     * apart) and in the sums, and outside when d > atol + rtol |a|; an element where d or |a| is not finite is        \
     * outside unless equal, and in no other figure. Per row: a.b, |a|^2 and |b|^2 (meaningful for finite rows).       \
     * The scalar figures go to out[FIGURES], which this pass initialises. */                                          \
    HOT int64_t pair_pass_##SUFFIX(const T *a, const T *b, int64_t n, int64_t c, const uint8_t *rows_finite,           \
                                   double rtol, double atol, double floor_, int64_t shift, int64_t *counts,            \
                                   double *dot, double *norm_a, double *norm_b, double *out) {                         \
        double *d_row = malloc(sizeof(double) * (size_t)(2 * c + 1)), sums[6]; /* +1: never malloc(0) */               \
        if (!d_row) return -1;                                                                                         \
        double *rel_row = d_row + c;                                                                                   \
        const U *ua = (const U *)a, *ub = (const U *)b;                                                                \
        for (int q = 0; q < FIGURES; q++) out[q] = 0;                                                                  \
        out[FIRST_DIFFERENCE] = -1, out[MIN_ABS] = out[MIN_POSITIVE] = INFINITY;                                       \
        for (int64_t r = 0; r < n; r++) {                                                                              \
            const T *ar = a + r * c, *br = b + r * c;                                                                  \
            int fast = rows_finite[r] != 0;                                                                            \
            int64_t first_at, outside = 0;                                                                             \
            if (fast) {                                                                                                \
                outside = finite_row_##SUFFIX(ar, br, c, rtol, atol, floor_, d_row, rel_row, sums);                    \
                fast = isfinite(sums[3]); /* float64 inputs near 1e308: a - b overflowed, take the checked path */     \
            }                                                                                                          \
            if (fast) {                                                                                                \
                out[DIFFERING] += sums[5], out[OUTSIDE] += (double)outside, out[FINITE] += (double)c;                  \
                out[SUM_ABS] += sums[3], out[SUM_REL] += sums[4];                                                      \
                first_at = sums[5] > 0 && out[FIRST_DIFFERENCE] < 0 ? 0 : c;                                           \
            } else {                                                                                                   \
                first_at = checked_row_##SUFFIX(ar, br, c, rtol, atol, floor_, d_row, rel_row, sums, out);             \
            }                                                                                                          \
            extremes_row(d_row, rel_row, c, out);                                                                      \
            dot[r] = sums[0], norm_a[r] = sums[1], norm_b[r] = sums[2];                                                \
            for (int64_t j = first_at; j < c; j++) { /* the batch's first differing element, looked for once */        \
                if (ua[r * c + j] != ub[r * c + j] && !(isnan(ar[j]) && isnan(br[j]))) {                               \
                    out[FIRST_DIFFERENCE] = (double)(r * c + j);                                                       \
                    break;                                                                                             \
                }                                                                                                      \
            }                                                                                                          \
            count_row(d_row, c, shift, counts);                                                                        \
        }                                                                                                              \
        free(d_row);                                                                                                   \
        return 0;                                                                                                      \
    }                                                                                                                  \
                                                                                                                       \
    /* The highest value of a finite row, kept in eight running maxima of the row's own type: their comparisons        \
     * overlap, where one chain of them waits on each one before (half of the softmax's time, 2026-12-06). The         \
     * maximum of finite values is the same in any order (+0 or -0: either shifts the row to the same values). */      \
    static inline double row_max_##SUFFIX(const T *row, int64_t c) {                                                   \
        double high = row[0];                                                                                          \
        int64_t j = 1;                                                                                                 \
        if (c >= 16) {                                                                                                 \
            T m[8];                                                                                                    \
            for (int q = 0; q < 8; q++) m[q] = row[q];                                                                 \
            for (j = 8; j + 8 <= c; j += 8)                                                                            \
                for (int q = 0; q < 8; q++) m[q] = row[j + q] > m[q] ? row[j + q] : m[q];                              \
            for (int q = 0; q < 8; q++) high = max2(high, m[q]);                                                       \
        }                                                                                                              \
        for (; j < c; j++) high = max2(high, row[j]);                                                                  \
        return high;                                                                                                   \
    }                                                                                                                  \
                                                                                                                       \
    /* outputs.softmax of one finite row into p (c doubles): shifted by its maximum, exponentiated (libmvec's          \
     * exp where it is linked, else libm's, which numpy calls) and multiplied by the sum's reciprocal (a division      \
     * of every element was a tenth of the softmax's time, 2026-12-06). The sum runs in SIMD lanes instead of numpy's  \
     * pairwise order, and the reciprocal adds a rounding, so a probability may differ from numpy's in its last few    \
     * bits. Not inlined: softmax_pass and softmax_outside call this one function, so they give the same bits. */      \
    HOT static void softmax_row_##SUFFIX(const T *row, int64_t c, double *p) {                                         \
        double high = row_max_##SUFFIX(row, c), sum = 0;                                                               \
        for (int64_t j = 0; j < c; j++) {                                                                              \
            p[j] = exp((double)row[j] - high);                                                                         \
            sum += p[j];                                                                                               \
        }                                                                                                              \
        double inverse = 1.0 / sum;                                                                                    \
        for (int64_t j = 0; j < c; j++) p[j] *= inverse;                                                               \
    }                                                                                                                  \
                                                                                                                       \
    /* The softmax of a batch whose rows are all finite (n x c) into out (n x c, double), a row at a time. */          \
    HOT void softmax_pass_##SUFFIX(const T *x, int64_t n, int64_t c, double *out) {                                    \
        for (int64_t r = 0; r < n; r++) softmax_row_##SUFFIX(x + r * c, c, out + r * c);                               \
    }                                                                                                                  \
                                                                                                                       \
    /* outputs.profile_reference's sums over the finite rows of a batch: per class the sum and the sum of squares,     \
     * the count of rows whose arg-max it is (the first maximum), and extremes = (lowest value, highest value,         \
     * largest |row sum - 1|), each updated in place. */                                                               \
    HOT void profile_pass_##SUFFIX(const T *x, int64_t n, int64_t c, double *total, double *squares,                   \
                                   int64_t *classes, double *extremes) {                                               \
        for (int64_t r = 0; r < n; r++) {                                                                              \
            const T *row = x + r * c;                                                                                  \
            if (!finite_##SUFFIX(row, c)) continue;                                                                    \
            /* lowest and highest as integer reductions over order-preserving keys of the bits (they vectorise;        \
             * floating-point ones must mind NaN and do not): flipping the magnitude bits of negative values makes     \
             * signed integers order as the values do. */                                                              \
            const S *bits = (const S *)row;                                                                            \
            double row_sum = 0;                                                                                        \
            S low = ORDERED(bits[0]), high = low;                                                                      \
            for (int64_t j = 0; j < c; j++) {                                                                          \
                double v = row[j];                                                                                     \
                total[j] += v, squares[j] += v * v, row_sum += v;                                                      \
                S key = ORDERED(bits[j]);                                                                              \
                low = key < low ? key : low, high = key > high ? key : high;                                           \
            }                                                                                                          \
            S low_bits = ORDERED(low), high_bits = ORDERED(high); /* the mapping is its own inverse */                 \
            T low_value, high_value;                                                                                   \
            memcpy(&low_value, &low_bits, sizeof low_value), memcpy(&high_value, &high_bits, sizeof high_value);       \
            S first = (S)c; /* the first class that holds the maximum, as a minimum over selects: it vectorises, where \
                             * a search that stops at the maximum tests one class at a time (a fifth of the pass).     \
                             * Indices in S, as wide as T: a float32 row of 2^31 classes would be 8 GB. */             \
            for (int64_t j = 0; j < c; j++) {                                                                          \
                S at = row[j] == high_value ? (S)j : (S)c;                                                             \
                first = at < first ? at : first;                                                                       \
            }                                                                                                          \
            classes[first]++;                                                                                          \
            extremes[0] = low_value < extremes[0] ? low_value : extremes[0];                                           \
            extremes[1] = high_value > extremes[1] ? high_value : extremes[1];                                         \
            extremes[2] = max2(extremes[2], fabs(row_sum - 1.0));                                                      \
        }                                                                                                              \
    }

/* The extremes and exact zeros of a row's differences, from the row buffers: the largest, the least (0 where one
 * is an exact zero) and the least positive one (the first of the sketch's buckets in use). Non-negative doubles
 * order as their bits do, so max and min are integer reductions, which vectorise (floating-point ones must mind
 * NaN, and do not); -1.0 (an element left out) has the sign bit set, so it is negative as a signed integer and in
 * none. */
static void extremes_row(const double *d_row, const double *rel_row, int64_t c, double *out) {
    const int64_t *d_bits = (const int64_t *)d_row, *rel_bits = (const int64_t *)rel_row;
    int64_t high = 0, rel_high = 0, zeros = 0, low = (int64_t)EXPONENT_64; /* +inf: above every difference */
    for (int64_t j = 0; j < c; j++) {
        int64_t key = d_bits[j];
        high = key > high ? key : high;
        int64_t kept = key > 0 ? key : (int64_t)EXPONENT_64;
        low = kept < low ? kept : low;
        rel_high = rel_bits[j] > rel_high ? rel_bits[j] : rel_high;
        zeros += key == 0;
    }
    out[ZEROS] += (double)zeros;
    out[MAX_ABS] = max2(out[MAX_ABS], bits_to_double((uint64_t)high));
    double positive = bits_to_double((uint64_t)low), least = zeros ? 0.0 : positive; /* +inf where there is none */
    out[MIN_POSITIVE] = positive < out[MIN_POSITIVE] ? positive : out[MIN_POSITIVE];
    out[MIN_ABS] = least < out[MIN_ABS] ? least : out[MIN_ABS];
    out[MAX_REL] = max2(out[MAX_REL], bits_to_double((uint64_t)rel_high));
}

/* A row's differences into the sketch's counters: each positive one in bucket bits(d) >> shift (exact zeros are
 * counted apart; -1.0, an element left out, is negative as a signed integer). Each bucket has COPIES counters side
 * by side and element j counts in copy j % COPIES, so that neighbours in one bucket do not wait on each other's
 * increment; the copies of the buckets in use share cache lines. */
static inline void count_row(const double *d_row, int64_t c, int64_t shift, int64_t *counts) {
    const int64_t *d_bits = (const int64_t *)d_row;
    int64_t j = 0;
    for (; j + COPIES <= c; j += COPIES) {
        for (int q = 0; q < COPIES; q++) {
            int64_t key = d_bits[j + q];
            if (key > 0) counts[((key >> shift) * COPIES) + q] += 1;
        }
    }
    for (int q = 0; j < c; j++, q++) {
        int64_t key = d_bits[j];
        if (key > 0) counts[((key >> shift) * COPIES) + q] += 1;
    }
}

PASSES(float, uint32_t, int32_t, EXPONENT_32, ORDERED_32, f32)
PASSES(double, uint64_t, int64_t, EXPONENT_64, ORDERED_64, f64)

/* Elements of two rows (float64, finite) with |a - b| > atol + rtol |a|. */
static inline int64_t outside_row(const double *a, const double *b, int64_t c, double rtol, double atol) {
    int64_t outside = 0;
    for (int64_t j = 0; j < c; j++) outside += fabs(a[j] - b[j]) > rtol * fabs(a[j]) + atol;
    return outside;
}

/* How far apart b_j - a_j can lie over two rows, each float32 or float64 (wide): the largest minus the least of the
 * differences, computed in the wider of the two types (each within half an ulp of its exact value), plus an ulp of
 * each, so that it is never below the exact spread. Where an element is NaN or Inf on either side, a difference is
 * NaN or +-Inf, and so is the spread. The extremes are integer reductions over keys of the bits that order as the
 * values do (ORDERED_32 and ORDERED_64, as in profile_pass), which vectorise. */
#define SPREAD(NAME, TA, TB, T, S, ORDER, ULP)                                                                         \
    static inline double NAME(const TA *a, const TB *b, int64_t c) {                                                   \
        if (c < 1) return 0.0;                                                                                         \
        T first = (T)b[0] - (T)a[0];                                                                                   \
        S low, high;                                                                                                   \
        memcpy(&low, &first, sizeof low);                                                                              \
        low = high = ORDER(low);                                                                                       \
        for (int64_t j = 1; j < c; j++) {                                                                              \
            T d = (T)b[j] - (T)a[j];                                                                                   \
            S key;                                                                                                     \
            memcpy(&key, &d, sizeof key);                                                                              \
            key = ORDER(key);                                                                                          \
            low = key < low ? key : low, high = key > high ? key : high;                                               \
        }                                                                                                              \
        low = ORDER(low), high = ORDER(high); /* the mapping is its own inverse */                                     \
        T lo, hi;                                                                                                      \
        memcpy(&lo, &low, sizeof lo), memcpy(&hi, &high, sizeof hi);                                                   \
        return ((double)hi - (double)lo) + ULP * (fabs((double)hi) + fabs((double)lo));                                \
    }
SPREAD(spread_ff, float, float, float, int32_t, ORDERED_32, 0x1p-23)
SPREAD(spread_fd, float, double, double, int64_t, ORDERED_64, 0x1p-52)
SPREAD(spread_df, double, float, double, int64_t, ORDERED_64, 0x1p-52)
SPREAD(spread_dd, double, double, double, int64_t, ORDERED_64, 0x1p-52)
#undef SPREAD

static inline double spread(const void *a, int wide_a, const void *b, int wide_b, int64_t c) {
    if (wide_a) return wide_b ? spread_dd(a, b, c) : spread_df(a, b, c);
    return wide_b ? spread_fd(a, b, c) : spread_ff(a, b, c);
}

/* The largest spread of b - a (as spread gives it) at which no element of two finite rows' softmaxes, as
 * softmax_row makes them, can be outside rtol and atol: -1 (none) where the bound below does not hold.
 *
 * The two log-sum-exps differ by a mean of the differences b_j - a_j (weighted by p_a), so with w their spread p_b,j /
 * p_a,j lies in [e^-w, e^w] and |p_a,j - p_b,j| <= p_a,j E, E = e^w - 1 (a shift of every logit by one constant
 * changes no probability, and w = 0). softmax_row's values are p (1 + e) with |e| <= 1e-9 for rows of at most 2^20
 * classes (the shift by the row's maximum is exact, or its error moves the exponent by under 745 ulp; exp is within a
 * few ulp, the sum of c positive terms within c ulp, the reciprocal and the product one each), except where exp
 * underflows: an absolute error below 2.3e-308, even flushed to zero (the sum is at least 1). Take E <= 0.9 s, s =
 * rtol + atol: as p_a,j <= 1, |p^_a - p^_b| <= p_a (E + e (2 + E)) <= p_a (0.9 s + 2e-9 + 1e-9 s), while rtol p^_a +
 * atol >= p_a (s - 1e-9 rtol). For s >= 1e-6 the second exceeds the first by over 0.09 s p_a, 45 times the errors
 * counted, so outside_row's comparison (rounded within a few ulp) finds no element outside; atol >= 1e-300 covers the
 * underflows. Hence w <= log1p(0.9 s), less a millionth for the rounding of log1p and of spread's last sums. It is
 * within a factor of two of the tightest such limit: at the fp32 softmax tolerance (rtol 1e-4, atol 1e-5), a class at
 * p = 0.25 raised by w against the rest is outside from w = 1.87e-4, 1.9 times this one. */
static double sure_inside_below(double rtol, double atol, int64_t c) {
    double s = rtol + atol;
    if (!(rtol >= 0 && atol >= 1e-300 && s >= 1e-6 && isfinite(s) && c <= ((int64_t)1 << 20))) return -1.0;
    return log1p(0.9 * s) * (1.0 - 1e-6);
}

/* Logits judged as the probabilities they stand for, over n rows of every backend at once: per pair q (backends
 * ends[2q] and ends[2q + 1], the first its reference) the elements of the rows finite in both whose softmaxes
 * (softmax_row) are further apart than tolerances[2q] (rtol) and tolerances[2q + 1] (atol), into outside[q].
 * A row whose logits' differences spread too little for any element to be outside (sure_inside_below) counts none,
 * as its softmaxes would have, without them: such rows go into proven[q], and a backend's row is made into its
 * softmax only where a pair still needs it. Backends that agree are the usual case, and there the exp was a
 * quarter of compare's time on logits (2026-12-06).
 * xs[b] is backend b's rows, float64 where wide[b], else float32. A few rows of every backend are made at a time,
 * into a buffer that stays in the core's cache while each pair compares them: softmaxes of whole batches, made once
 * and read by every pair, went to memory and back (32 MB a backend for 4,096 rows of 1,000 classes). */
#define SOFTMAX_TILE_BYTES (256 * 1024)
HOT int64_t softmax_outside(const void *const *xs, const uint8_t *wide, int64_t backends, int64_t n, int64_t c,
                            int64_t pairs, const int64_t *ends, const double *tolerances, int64_t *outside,
                            int64_t *proven) {
    int64_t rows = SOFTMAX_TILE_BYTES / (int64_t)sizeof(double) / (c * backends > 0 ? c * backends : 1);
    rows = rows < 1 ? 1 : rows > n ? (n > 0 ? n : 1) : rows;
    double *p = malloc(sizeof(double) * (size_t)(backends * rows * c + pairs + 1));
    uint8_t *finite = malloc((size_t)((2 * backends + pairs) * rows + 1));
    if (!p || !finite) {
        free(p), free(finite);
        return -1;
    }
    double *below = p + backends * rows * c;        /* per pair: sure_inside_below */
    uint8_t *needed = finite + backends * rows;     /* per backend and row: its softmax is needed */
    uint8_t *check = needed + backends * rows;      /* per pair and row: compared on the softmaxes */
    for (int64_t q = 0; q < pairs; q++) {
        outside[q] = proven[q] = 0;
        below[q] = sure_inside_below(tolerances[2 * q], tolerances[2 * q + 1], c);
    }
#define ROW(b, r) ((const void *)((const char *)xs[b] + (start + (r)) * c * (wide[b] ? 8 : 4)))
#define FINITE(b, r) (finite[(b) * rows + (r)] == 2 ? (finite[(b) * rows + (r)] = (uint8_t)(                           \
        wide[b] ? finite_f64(ROW(b, r), c) : finite_f32(ROW(b, r), c))) : finite[(b) * rows + (r)])
    for (int64_t start = 0; start < n; start += rows) {
        int64_t m = n - start < rows ? n - start : rows;
        memset(finite, 2, (size_t)(backends * rows));     /* 2: not looked at yet */
        memset(needed, 0, (size_t)(backends * rows));
        for (int64_t q = 0; q < pairs; q++) {
            int64_t a = ends[2 * q], b = ends[2 * q + 1];
            for (int64_t r = 0; r < m; r++) {
                /* NaN or Inf on either side makes the spread NaN or Inf, never below: proven rows are finite */
                int to_check = !(spread(ROW(a, r), wide[a], ROW(b, r), wide[b], c) <= below[q]);
                proven[q] += !to_check;
                to_check = to_check && FINITE(a, r) && FINITE(b, r);
                check[q * rows + r] = (uint8_t)to_check;
                if (to_check) needed[a * rows + r] = needed[b * rows + r] = 1;
            }
        }
        for (int64_t b = 0; b < backends; b++) {
            for (int64_t r = 0; r < m; r++) {
                if (!needed[b * rows + r]) continue;
                double *dst = p + (b * rows + r) * c;
                if (wide[b]) softmax_row_f64((const double *)ROW(b, r), c, dst);
                else softmax_row_f32((const float *)ROW(b, r), c, dst);
            }
        }
        for (int64_t q = 0; q < pairs; q++) {
            int64_t a = ends[2 * q], b = ends[2 * q + 1];
            for (int64_t r = 0; r < m; r++) {
                if (check[q * rows + r])
                    outside[q] += outside_row(p + (a * rows + r) * c, p + (b * rows + r) * c, c, tolerances[2 * q],
                                              tolerances[2 * q + 1]);
            }
        }
    }
#undef FINITE
#undef ROW
    free(p), free(finite);
    return 0;
}

/* Decimal integers for per_sample.csv, written at p; returns the end. */
static char *put_int(char *p, int64_t v) {
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v; /* INT64_MIN too */
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *p++ = '-';
    while (n) *p++ = digits[--n];
    return p;
}

/* 5^k for k <= 31, the largest over 64 bits: with a 53-bit mantissa, every product fits in 125 bits. */
__extension__ typedef unsigned __int128 u128;
#define P5_27 7450580596923828125ull
static const u128 POW5[32] = {
    1ull, 5ull, 25ull, 125ull, 625ull, 3125ull, 15625ull, 78125ull, 390625ull, 1953125ull, 9765625ull,
    48828125ull, 244140625ull, 1220703125ull, 6103515625ull, 30517578125ull, 152587890625ull, 762939453125ull,
    3814697265625ull, 19073486328125ull, 95367431640625ull, 476837158203125ull, 2384185791015625ull,
    11920928955078125ull, 59604644775390625ull, 298023223876953125ull, 1490116119384765625ull, P5_27,
    (u128)P5_27 * 5, (u128)P5_27 * 25, (u128)P5_27 * 125, (u128)P5_27 * 625};

/* The nine significant digits of v, a positive normal double given by its bits, rounded as printf's "%.9g" rounds
 * them (the exact value, to nearest, ties to even), as q in [1e8, 1e9) and the decimal exponent x, v ~ q 10^(x - 8),
 * computed exactly: v = m 2^e2, so v 10^(8-x) = m 5^k 2^(e2+k) with k = 8 - x, an integer product and a shift.
 * Returns 0 where that product would not fit in 128 bits (v >= 1e9 or v < 1e-23), for printf to write. */
static int nine_digits(uint64_t bits, uint32_t *digits, int *exponent) {
    uint64_t m = (bits & 0xFFFFFFFFFFFFFull) | (1ull << 52);
    int e2 = (int)((bits >> 52) & 0x7FF) - 1075;
    int x = (int)floor(log10(bits_to_double(bits))); /* a guess, off by one next to powers of ten: mended below */
    for (int tries = 0; tries < 3; tries++) {
        int k = 8 - x, shift = -(e2 + k);
        if (k < 0 || k > 31 || shift <= 0 || shift >= 128) return 0;
        u128 exact = m * POW5[k], q = exact >> shift, rest = exact - (q << shift), half = (u128)1 << (shift - 1);
        if (q >= 1000000000u) {
            x++;
        } else if (q < 100000000u) {
            x--;
        } else {
            q += rest > half || (rest == half && (q & 1));
            if (q == 1000000000u) { /* 999999999.5 rounds to 1e9: one digit fewer after the point */
                q = 100000000u;
                x++;
            }
            *digits = (uint32_t)q;
            *exponent = x;
            return 1;
        }
    }
    return 0;
}

/* The digits d[0 .. kept) at p with the point after the first `whole` of them, none when no digit follows it. */
static char *put_point(char *p, const char *d, int whole, int kept) {
    memcpy(p, d, (size_t)whole);
    p += whole;
    if (kept > whole) {
        *p++ = '.';
        memcpy(p, d + whole, (size_t)(kept - whole));
        p += kept - whole;
    }
    return p;
}

/* v as Python's "%.9g" writes it, at p; returns the end. NaN is "nan" whatever its sign bit (C would write "-nan").
 * The sign, zero, Inf and NaN are read from the bits: the library is compiled with -fno-signed-zeros. */
static char *put_g9(char *p, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint64_t magnitude = bits & ~(1ull << 63);
    if (magnitude > EXPONENT_64) return memcpy(p, "nan", 3), p + 3;
    if (bits >> 63) *p++ = '-';
    if (magnitude == EXPONENT_64) return memcpy(p, "inf", 3), p + 3;
    if (magnitude == 0) return *p++ = '0', p;
    uint32_t q;
    int x;
    if (magnitude < (1ull << 52) || !nine_digits(magnitude, &q, &x)) /* subnormal, or out of range */
        return p + snprintf(p, 24, "%.9g", fabs(v));
    char d[9];
    for (int i = 8; i >= 0; i--, q /= 10) d[i] = (char)('0' + q % 10);
    int kept = 9; /* %g drops the trailing zeros, and the point with them */
    while (kept > 1 && d[kept - 1] == '0') kept--;
    if (x < -4 || x >= 9) { /* style e: d.dddde-XX */
        p = put_point(p, d, 1, kept);
        *p++ = 'e';
        *p++ = x < 0 ? '-' : '+';
        int ax = x < 0 ? -x : x;
        if (ax < 10) *p++ = '0';
        return put_int(p, ax);
    }
    if (x < 0) { /* 0.000ddd */
        memcpy(p, "0.0000", (size_t)(1 - x));
        p += 1 - x;
        memcpy(p, d, (size_t)kept);
        return p + kept;
    }
    return put_point(p, d, x + 1, kept); /* style f: the integer part is the first x + 1 digits */
}

static int64_t csv_row_max(int64_t backends) {
    return 2 * 21 + backends * (2 + 20 + 24) + 1; /* separators, 20 characters an integer, 24 a confidence */
}

/* The bytes csv_rows may need for n rows: the caller's buffer. */
int64_t csv_capacity(int64_t n, int64_t backends) {
    return n * csv_row_max(backends);
}

/* per_sample.csv's rows for samples start .. start + n - 1: "index,label", then per backend ",class,confidence",
 * each number as Python's "%d" and "%.9g" write it. classes and confidence are backends x n, row-major. Numbers are
 * written by put_int and put_g9, without printf (which took 0.07 s of compare's 1.4 s of CPU on 0.8 GB of
 * predictions); the few confidences outside [1e-23, 1e9) go to printf, in the C locale whatever the process's, so
 * the decimal point is always ".". Returns the bytes written into out, -1 when they would not fit in cap, -2 when
 * the C locale cannot be had. */
int64_t csv_rows(int64_t start, int64_t n, const int64_t *labels, int64_t backends, const int64_t *classes,
                 const double *confidence, char *out, int64_t cap) {
    const int64_t row_max = csv_row_max(backends);
    locale_t c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (c_locale == (locale_t)0) return -2;
    locale_t previous = uselocale(c_locale); /* this thread only */
    char *p = out;
    int64_t r = 0;
    for (; r < n && cap - (p - out) >= row_max; r++) {
        p = put_int(p, start + r);
        *p++ = ',';
        p = put_int(p, labels[r]);
        for (int64_t b = 0; b < backends; b++) {
            *p++ = ',';
            p = put_int(p, classes[b * n + r]);
            *p++ = ',';
            p = put_g9(p, confidence[b * n + r]);
        }
        *p++ = '\n';
    }
    uselocale(previous);
    freelocale(c_locale);
    return r == n ? p - out : -1;
}

/* The figures' order and the sizes the caller must match, checked by kernels.py when it loads the library. */
int64_t layout(int64_t what) {
    switch (what) {
    case 0: return FIGURES;
    case 1: return COPIES;
    default: return -1;
    }
}
