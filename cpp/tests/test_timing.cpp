#include <cmath>

#include "check.h"
#include "trtverify/error.h"
#include "trtverify/timing.h"

using namespace trtverify;

TEST(percentiles_interpolate_like_numpy) {
    // numpy.percentile([1, 2, 3, 4], [0, 50, 90, 95, 99, 100]) == [1, 2.5, 3.7, 3.85, 3.97, 4]
    const std::vector<double> v = {1, 2, 3, 4};
    CHECK_EQ(percentile_linear(v, 0), 1.0);
    CHECK_EQ(percentile_linear(v, 50), 2.5);
    CHECK(std::fabs(percentile_linear(v, 90) - 3.7) < 1e-12);
    CHECK(std::fabs(percentile_linear(v, 95) - 3.85) < 1e-12);
    CHECK(std::fabs(percentile_linear(v, 99) - 3.97) < 1e-12);
    CHECK_EQ(percentile_linear(v, 100), 4.0);
    CHECK_EQ(percentile_linear({7}, 99), 7.0);
    CHECK_THROWS(percentile_linear({}, 50), "empty");
    CHECK_THROWS(percentile_linear(v, 101), "outside");
}

TEST(summarize_reports_every_statistic) {
    const LatencyStats s = summarize({5, 1, 4, 2, 3});
    CHECK_EQ(s.count, 5u);
    CHECK_EQ(s.mean, 3.0);
    CHECK_EQ(s.p50, 3.0);
    CHECK_EQ(s.min, 1.0);
    CHECK_EQ(s.max, 5.0);
    CHECK(std::fabs(s.p90 - 4.6) < 1e-12);
    CHECK_THROWS(summarize({}), "--iterations");
    CHECK_THROWS(summarize({1, NAN}), "invalid iteration time");
    CHECK_THROWS(summarize({-1}), "invalid iteration time");
}

TEST(throughput_is_samples_per_second_at_the_mean) {
    CHECK_EQ(throughput(32, 4.0), 8000.0);
    CHECK_THROWS(throughput(0, 1.0), "positive batch");
    CHECK_THROWS(throughput(1, 0.0), "positive batch");
}
