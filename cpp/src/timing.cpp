#include "trtverify/timing.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "trtverify/error.h"

namespace trtverify {

double percentile_linear(const std::vector<double>& sorted, double q) {
    if (sorted.empty()) throw Error("percentile of an empty list");
    if (!(q >= 0 && q <= 100)) throw Error("percentile " + std::to_string(q) + " is outside [0, 100]");
    // numpy: virtual index (n - 1) * q/100, then _lerp(a, b, t), which computes from the nearer end for t >= 0.5.
    const double index = static_cast<double>(sorted.size() - 1) * (q / 100.0);
    const double below = std::floor(index);
    const auto i = static_cast<std::size_t>(below);
    const double t = index - below;
    if (i + 1 >= sorted.size()) return sorted.back();
    const double a = sorted[i], b = sorted[i + 1], diff = b - a;
    return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

LatencyStats summarize(const std::vector<double>& times_ms) {
    if (times_ms.empty()) throw Error("no timed iterations: --iterations must be at least 1");
    for (double t : times_ms)
        if (!std::isfinite(t) || t < 0) throw Error("invalid iteration time " + std::to_string(t) + " ms");
    std::vector<double> sorted(times_ms);
    std::sort(sorted.begin(), sorted.end());
    LatencyStats s;
    s.count = sorted.size();
    double sum = 0;
    for (double t : times_ms) sum += t;
    s.mean = sum / static_cast<double>(s.count);
    s.p50 = percentile_linear(sorted, 50);
    s.p90 = percentile_linear(sorted, 90);
    s.p95 = percentile_linear(sorted, 95);
    s.p99 = percentile_linear(sorted, 99);
    s.min = sorted.front();
    s.max = sorted.back();
    return s;
}

double throughput(std::size_t batch, double mean_ms) {
    if (batch < 1 || !(mean_ms > 0))
        throw Error("throughput needs a positive batch and mean latency, got batch " + std::to_string(batch) +
                    ", mean " + std::to_string(mean_ms) + " ms");
    return static_cast<double>(batch) * 1000.0 / mean_ms;
}

}  // namespace trtverify
