// Latency statistics, computed exactly as scripts/trtverify/benchstats.py computes them with numpy: percentiles by
// numpy's default "linear" method (interpolation between the two nearest ranks, with numpy's own lerp), so the
// C++ and Python rows of a benchmark agree to the last bit on the percentiles.
#pragma once

#include <cstddef>
#include <vector>

namespace trtverify {

struct LatencyStats {
    double mean = 0, p50 = 0, p90 = 0, p95 = 0, p99 = 0, min = 0, max = 0;
    std::size_t count = 0;
};

// q in [0, 100]; `sorted` ascending and non-empty.
double percentile_linear(const std::vector<double>& sorted, double q);

// Throws Error for an empty list or a negative or non-finite time.
LatencyStats summarize(const std::vector<double>& times_ms);

// Samples per second when each call handles `batch` samples in `mean_ms` milliseconds.
double throughput(std::size_t batch, double mean_ms);

}  // namespace trtverify
