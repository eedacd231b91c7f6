#include <cmath>
#include <cstring>
#include <limits>

#include "check.h"
#include "trtverify/array.h"
#include "trtverify/error.h"

using namespace trtverify;

TEST(dtype_names_and_sizes) {
    CHECK_EQ(std::string(dtype_name(DType::Float16)), "float16");
    CHECK_EQ(itemsize(DType::Int64), 8u);
    CHECK(dtype_from_name("uint8") == DType::UInt8);
    CHECK(dtype_from_name("bool") == DType::Bool);
    CHECK(!dtype_from_name("complex64"));
    CHECK(dtype_from_kind('f', 2) == DType::Float16);
    CHECK(!dtype_from_kind('f', 3));
    CHECK(!dtype_from_kind('c', 8));
}

TEST(shape_repr_matches_python_tuples) {
    CHECK_EQ(shape_repr({}), "()");
    CHECK_EQ(shape_repr({5}), "(5,)");
    CHECK_EQ(shape_repr({3, 4}), "(3, 4)");
}

TEST(checked_nbytes_detects_overflow) {
    CHECK(checked_nbytes({1ull << 40, 1ull << 30}, 8) == std::nullopt);
    CHECK(checked_nbytes({1ull << 40, 1ull << 40, 0}, 4) == std::nullopt);
    CHECK_EQ(checked_nbytes({3, 4}, 4).value(), 48u);
    CHECK_EQ(checked_nbytes({}, 8).value(), 8u);
    CHECK_EQ(checked_nbytes({0, 7}, 8).value(), 0u);
    CHECK(checked_nbytes({0, 1ull << 32, 1ull << 32}, 1) == std::nullopt);  // as numpy: "array is too big"
    CHECK_THROWS(make_array(DType::Float64, {1ull << 62, 4}), "too large");
}

TEST(half_to_float_known_values) {
    CHECK_EQ(half_to_float(0x3c00), 1.0f);
    CHECK_EQ(half_to_float(0xc000), -2.0f);
    CHECK_EQ(half_to_float(0x7bff), 65504.0f);
    CHECK_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));
    CHECK_EQ(half_to_float(0x03ff), std::ldexp(1023.0f, -24));
    CHECK_EQ(half_to_float(0x7c00), std::numeric_limits<float>::infinity());
    CHECK_EQ(check::bits_of(half_to_float(0x8000)), 0x80000000u);
    CHECK_EQ(check::bits_of(half_to_float(0x7e00)), 0x7fc00000u);
    CHECK_EQ(check::bits_of(half_to_float(0x7c01)), 0x7f802000u);  // the payload is kept, as numpy keeps it
}

TEST(double_to_half_rounds_to_nearest_even) {
    CHECK_EQ(double_to_half(1.0), 0x3c00);
    CHECK_EQ(double_to_half(1.0 + std::ldexp(1.0, -11)), 0x3c00);      // halfway: to even (down)
    CHECK_EQ(double_to_half(1.0 + 3 * std::ldexp(1.0, -11)), 0x3c02);  // halfway: to even (up)
    CHECK_EQ(double_to_half(1.0 + std::ldexp(1.0, -11) + 1e-12), 0x3c01);
    CHECK_EQ(double_to_half(65504.0), 0x7bff);
    CHECK_EQ(double_to_half(65519.99), 0x7bff);
    CHECK_EQ(double_to_half(65520.0), 0x7c00);  // rounds up into Inf
    CHECK_EQ(double_to_half(1e300), 0x7c00);
    CHECK_EQ(double_to_half(-1e300), 0xfc00);
    CHECK_EQ(double_to_half(std::ldexp(1.0, -24)), 0x0001);
    CHECK_EQ(double_to_half(std::ldexp(1.0, -25)), 0x0000);           // halfway to the smallest subnormal: even
    CHECK_EQ(double_to_half(std::ldexp(1.5, -25)), 0x0001);
    CHECK_EQ(double_to_half(std::ldexp(3.0, -25)), 0x0002);           // 1.5 units: to even (up)
    CHECK_EQ(double_to_half(std::ldexp(1023.5, -24)), 0x0400);        // the largest subnormal rounds up to normal
    CHECK_EQ(double_to_half(-0.0), 0x8000);
    CHECK_EQ(double_to_half(1e-300), 0x0000);
    CHECK_EQ(double_to_half(std::nan("")) & 0x7e00, 0x7e00);
}

TEST(every_half_round_trips_through_float) {
    for (std::uint32_t h = 0; h <= 0xffff; ++h) {
        const auto back = double_to_half(half_to_float(static_cast<std::uint16_t>(h)));
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {  // NaN: the CPU quietens a signalling NaN on the way
            if ((back & 0xfe00) != (h & 0x8000) + 0x7e00 || (back & 0x1ff) != (h & 0x1ff)) CHECK_EQ(back, h | 0x200);
            continue;
        }
        if (back != h) {
            CHECK_EQ(back, h);
            break;
        }
    }
}

TEST(to_float32_converts_every_dtype) {
    Array a = make_array(DType::Int64, {3});
    const std::int64_t v[] = {-5, (1ll << 53) + 1, INT64_MAX};
    std::memcpy(a.bytes.data(), v, sizeof v);
    auto f = to_float32(a);
    CHECK_EQ(f[0], -5.0f);
    CHECK_EQ(f[1], 9007199254740992.0f);
    CHECK_EQ(f[2], 9223372036854775807.0f);
    Array b = make_array(DType::Bool, {2});
    b.bytes[1] = 1;
    f = to_float32(b);
    CHECK_EQ(f[0], 0.0f);
    CHECK_EQ(f[1], 1.0f);
    Array d = make_array(DType::Float64, {1});
    const double x = 0.1;
    std::memcpy(d.bytes.data(), &x, 8);
    CHECK_EQ(to_float32(d)[0], 0.1f);
    Array h = make_array(DType::Float16, {1});
    h.bytes = {0x00, 0x3c};
    if (host_is_little_endian()) CHECK_EQ(to_float32(h)[0], 1.0f);
}

TEST(byteswap_reverses_each_item) {
    unsigned char data[] = {1, 2, 3, 4, 5, 6, 7, 8};
    byteswap_items(data, 2, 4);
    const unsigned char want[] = {4, 3, 2, 1, 8, 7, 6, 5};
    CHECK(std::memcmp(data, want, 8) == 0);
}
