#include <cmath>
#include <cstring>
#include <limits>

#include "check.h"
#include "trtverify/csv.h"
#include "trtverify/error.h"

using namespace trtverify;

namespace {

Array parse(const std::string& text) { return parse_csv(text, "CSV file t.csv"); }

}  // namespace

TEST(csv_reads_the_pipeline_format) {
    const Array a = parse("# trtverify-csv 1 shape=2,2,1 dtype=float32\n0.5,-1\n3.25,1e-45\n");
    CHECK(a.dtype == DType::Float32);
    CHECK(a.shape == (std::vector<std::uint64_t>{2, 2, 1}));
    CHECK_EQ(a.at<float>(1), -1.0f);
    CHECK_EQ(a.at<float>(3), std::numeric_limits<float>::denorm_min());
    const Array b = parse("# trtverify-csv 1 shape=3 dtype=int64\n-9223372036854775808\n0\n9223372036854775807\n");
    CHECK_EQ(b.at<std::int64_t>(0), INT64_MIN);
    CHECK_EQ(b.at<std::int64_t>(2), INT64_MAX);
    const Array c = parse("# trtverify-csv 1 shape=0,4 dtype=float32\n");
    CHECK_EQ(c.count(), 0u);
}

TEST(csv_parses_float32_like_numpy_double_then_round) {
    // Just above the midpoint between 1 and the next float32: strtof rounds up, numpy (double, then float) gets 1.
    const Array a = parse("# trtverify-csv 1 shape=1 dtype=float32\n1.000000059604644775390625001\n");
    CHECK_EQ(check::bits_of(a.at<float>(0)), 0x3f800000u);
}

TEST(csv_tolerates_what_loadtxt_tolerates) {
    const Array a = parse("# trtverify-csv 1 shape=2,2 dtype=float32\r\n 1 , +2.5 \r\n\n# a comment\n3,4 # tail\n");
    CHECK_EQ(a.at<float>(1), 2.5f);
    CHECK_EQ(a.at<float>(3), 4.0f);
    const Array b = parse("# trtverify-csv 1 shape=3 dtype=float64\nnan\n-inf\nInf\n");
    CHECK(std::isnan(b.at<double>(0)));
    CHECK_EQ(b.at<double>(1), -std::numeric_limits<double>::infinity());
    const Array c = parse("# trtverify-csv 1 shape=3 dtype=bool\n0\n1\n-2\n");
    CHECK_EQ(int(c.bytes[2]), 1);
    const Array d = parse("# trtverify-csv 1 shape=1 dtype=float32\n1e39\n");  // overflows float32: inf, as numpy
    CHECK(std::isinf(d.at<float>(0)));
}

TEST(csv_rejects_bad_headers) {
    CHECK_THROWS(parse(""), "header line");
    CHECK_THROWS(parse("1,2\n"), "lacks the '# trtverify-csv 1");
    CHECK_THROWS(parse("# trtverify-csv 1 dtype=float32\n"), "no shape=");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=2\n"), "no dtype=");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=2,x dtype=float32\n"), "comma-separated");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=2, dtype=float32\n"), "comma-separated");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=-2 dtype=float32\n"), "comma-separated");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=2 dtype=complex64\n"), "unsupported dtype 'complex64'");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=4294967296,4294967296 dtype=float32\n"), "larger than the limit");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=0,4294967296,4294967296 dtype=float32\n"), "larger than the limit");
}

TEST(csv_checks_rows_and_widths_against_the_header) {
    CHECK_THROWS(parse("# trtverify-csv 1 shape=3,2 dtype=float32\n1,2\n3,4\n"),
                 "has 2 rows of 2 values; its header promises 3 rows of 2: the file is truncated or was edited");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=1,2 dtype=float32\n1,2\n3,4\n"), "more than the 1 rows");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=2,2 dtype=float32\n1,2\n3\n"), "line 3 has 1 values");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=2,2 dtype=float32\n1,2,3\n"), "line 2 has more than 2 values");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=1,2 dtype=float32\n1,\n"), "line 2, value 2: '' is not a float32");
}

TEST(csv_rejects_values_loadtxt_rejects) {
    CHECK_THROWS(parse("# trtverify-csv 1 shape=1 dtype=float32\nabc\n"), "'abc' is not a float32 number");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=1 dtype=float32\n0x10\n"), "not a float32");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=1 dtype=float32\nnan(1)\n"), "not a float32");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=1 dtype=float32\n1e\n"), "not a float32");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=1 dtype=int8\n128\n"), "not an int8");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=1 dtype=int8\n1.0\n"), "not an int8");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=1 dtype=uint8\n-1\n"), "not an uint8");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=1 dtype=uint64\n18446744073709551616\n"), "not an uint64");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=1 dtype=int64\n9223372036854775808\n"), "not an int64");
    CHECK_THROWS(parse("# trtverify-csv 1 shape=1 dtype=int32\n1-2\n"), "not an int32");
    CHECK(parse("# trtverify-csv 1 shape=1 dtype=uint64\n18446744073709551615\n").at<std::uint64_t>(0) == ~0ull);
    CHECK(parse("# trtverify-csv 1 shape=1 dtype=int8\n-128\n").at<std::int8_t>(0) == -128);
}

TEST(csv_writes_what_python_writes) {
    const Array a = make_float32({2, 3}, {0.1f, -0.0f, 1e-45f, NAN, -INFINITY, 16777217.0f});
    CHECK_EQ(encode_csv(a),
             "# trtverify-csv 1 shape=2,3 dtype=float32\n0.100000001,-0,1.40129846e-45\nnan,-inf,16777216\n");
    Array n = make_float32({1}, {0});
    const std::uint32_t negative_nan = 0xffc00000u;
    std::memcpy(n.bytes.data(), &negative_nan, 4);
    CHECK_EQ(encode_csv(n), "# trtverify-csv 1 shape=1 dtype=float32\nnan\n");
    Array b = make_array(DType::Bool, {2});
    b.bytes[0] = 1;
    CHECK_EQ(encode_csv(b), "# trtverify-csv 1 shape=2 dtype=bool\n1\n0\n");
    CHECK_THROWS(encode_csv(make_array(DType::Float32, {})), "0-dimensional");
}

TEST(csv_round_trips_float32_bit_for_bit) {
    std::vector<float> values;
    for (std::uint32_t b = 0; b < 0xffffffffu - 9999991u; b += 9999991u) {  // a spread over every bit pattern
        float f;
        std::memcpy(&f, &b, 4);
        if (!std::isnan(f)) values.push_back(f);
    }
    const Array a = make_float32({values.size()}, values);
    const Array c = parse_csv(encode_csv(a));
    CHECK(c.bytes == a.bytes);
}
