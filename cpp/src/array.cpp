#include "trtverify/array.h"

#include <utility>

#include "trtverify/error.h"

namespace trtverify {

Error::Error(const std::string& message) : std::runtime_error(message) {}

namespace {

struct DTypeInfo {
    DType dtype;
    const char* name;
    char kind;
    std::size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::Bool, "bool", 'b', 1},       {DType::Int8, "int8", 'i', 1},       {DType::Int16, "int16", 'i', 2},
    {DType::Int32, "int32", 'i', 4},     {DType::Int64, "int64", 'i', 8},     {DType::UInt8, "uint8", 'u', 1},
    {DType::UInt16, "uint16", 'u', 2},   {DType::UInt32, "uint32", 'u', 4},   {DType::UInt64, "uint64", 'u', 8},
    {DType::Float16, "float16", 'f', 2}, {DType::Float32, "float32", 'f', 4}, {DType::Float64, "float64", 'f', 8},
};

const DTypeInfo& info(DType dtype) {
    for (const auto& d : kDTypes)
        if (d.dtype == dtype) return d;
    throw Error("internal error: unknown dtype");
}

}  // namespace

std::size_t itemsize(DType dtype) { return info(dtype).size; }
char kind(DType dtype) { return info(dtype).kind; }
const char* dtype_name(DType dtype) { return info(dtype).name; }

std::optional<DType> dtype_from_name(const std::string& name) {
    for (const auto& d : kDTypes)
        if (name == d.name) return d.dtype;
    return std::nullopt;
}

std::optional<DType> dtype_from_kind(char kind_letter, std::size_t size) {
    for (const auto& d : kDTypes)
        if (d.kind == kind_letter && d.size == size) return d.dtype;
    return std::nullopt;
}

std::uint64_t Array::count() const {
    std::uint64_t n = 1;
    for (auto d : shape) n *= d;  // make_array and the readers checked that this cannot overflow
    return n;
}

std::optional<std::uint64_t> checked_nbytes(const std::vector<std::uint64_t>& shape, std::size_t item_size) {
    // Like numpy, the non-zero dimensions must multiply without overflow even when another one is zero: then no
    // partial product (a row width, count()) can overflow either. Found by fuzz_csv: shape=0,2**32,2**32.
    std::uint64_t n = item_size;
    bool empty = false;
    for (auto d : shape) {
        if (d == 0) empty = true;
        else if (__builtin_mul_overflow(n, d, &n)) return std::nullopt;
    }
    return empty ? 0 : n;
}

Array make_array(DType dtype, std::vector<std::uint64_t> shape) {
    auto n = checked_nbytes(shape, itemsize(dtype));
    if (!n || *n > SIZE_MAX) throw Error("array of shape " + shape_repr(shape) + " is too large to allocate");
    Array a;
    a.dtype = dtype;
    a.shape = std::move(shape);
    a.bytes.assign(static_cast<std::size_t>(*n), 0);
    return a;
}

Array make_float32(std::vector<std::uint64_t> shape, const std::vector<float>& values) {
    Array a = make_array(DType::Float32, std::move(shape));
    if (a.count() != values.size())
        throw Error("make_float32: shape " + shape_repr(a.shape) + " does not hold " + std::to_string(values.size()) +
                    " values");
    if (!values.empty()) std::memcpy(a.bytes.data(), values.data(), a.bytes.size());
    return a;
}

std::string shape_repr(const std::vector<std::uint64_t>& shape) {
    std::string s = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + (shape.size() == 1 ? ",)" : ")");
}

bool host_is_little_endian() {
    const std::uint16_t one = 1;
    unsigned char first;
    std::memcpy(&first, &one, 1);
    return first == 1;
}

void byteswap_items(unsigned char* data, std::size_t count, std::size_t item_size) {
    if (item_size < 2) return;
    for (std::size_t i = 0; i < count; ++i) {
        unsigned char* p = data + i * item_size;
        for (std::size_t a = 0, b = item_size - 1; a < b; ++a, --b) std::swap(p[a], p[b]);
    }
}

float half_to_float(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exp = (h >> 10) & 0x1fu;
    std::uint32_t mant = h & 0x3ffu;
    std::uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);  // Inf, or NaN with its payload kept (as numpy does)
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {  // subnormal half: a normal float
        std::uint32_t shifts = 0;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            ++shifts;
        }
        bits = sign | ((113 - shifts) << 23) | ((mant & 0x3ffu) << 13);
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

namespace {

// sig >> shift, rounded to nearest, ties to even (shift in 1..63).
std::uint64_t shift_round_even(std::uint64_t sig, unsigned shift) {
    const std::uint64_t q = sig >> shift;
    const std::uint64_t rem = sig & ((std::uint64_t{1} << shift) - 1);
    const std::uint64_t half = std::uint64_t{1} << (shift - 1);
    return (rem > half || (rem == half && (q & 1))) ? q + 1 : q;
}

}  // namespace

std::uint16_t double_to_half(double value) {
    std::uint64_t b;
    std::memcpy(&b, &value, sizeof b);
    const auto sign = static_cast<std::uint16_t>((b >> 48) & 0x8000u);
    const int exp = static_cast<int>((b >> 52) & 0x7ffu);
    const std::uint64_t mant = b & 0xfffffffffffffull;
    if (exp == 0x7ff) {
        if (mant == 0) return sign | 0x7c00u;
        auto payload = static_cast<std::uint16_t>(mant >> 42);
        return sign | 0x7c00u | (payload ? payload : 0x200u);  // keep it a NaN when the payload's top bits are 0
    }
    const int e = exp - 1023;
    if (e >= 16) return sign | 0x7c00u;
    if (e < -25) return sign;  // below half the smallest subnormal: rounds to zero
    if (e < -14) {             // subnormal half: units of 2**-24
        const std::uint64_t sig = mant | (std::uint64_t{1} << 52);
        return static_cast<std::uint16_t>(sign | shift_round_even(sig, static_cast<unsigned>(28 - e)));
    }
    // Normal half; a rounding carry moves into the exponent, and from exponent 30 into Inf, as it should.
    const std::uint64_t rounded = shift_round_even(mant, 42);
    return static_cast<std::uint16_t>(sign | ((static_cast<std::uint64_t>(e + 15) << 10) + rounded));
}

std::vector<float> to_float32(const Array& a) {
    const std::size_t n = static_cast<std::size_t>(a.count());
    std::vector<float> out(n);
    switch (a.dtype) {
        case DType::Bool:
            for (std::size_t i = 0; i < n; ++i) out[i] = a.bytes[i] ? 1.0f : 0.0f;
            break;
        case DType::Int8: for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(a.at<std::int8_t>(i)); break;
        case DType::Int16: for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(a.at<std::int16_t>(i)); break;
        case DType::Int32: for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(a.at<std::int32_t>(i)); break;
        case DType::Int64: for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(a.at<std::int64_t>(i)); break;
        case DType::UInt8: for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(a.at<std::uint8_t>(i)); break;
        case DType::UInt16: for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(a.at<std::uint16_t>(i)); break;
        case DType::UInt32: for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(a.at<std::uint32_t>(i)); break;
        case DType::UInt64: for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(a.at<std::uint64_t>(i)); break;
        case DType::Float16: for (std::size_t i = 0; i < n; ++i) out[i] = half_to_float(a.at<std::uint16_t>(i)); break;
        case DType::Float32: if (n) std::memcpy(out.data(), a.bytes.data(), n * 4); break;
        case DType::Float64: for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(a.at<double>(i)); break;
    }
    return out;
}

double element_as_double(const Array& a, std::size_t i) {
    switch (a.dtype) {
        case DType::Bool: return a.bytes[i] ? 1.0 : 0.0;
        case DType::Int8: return a.at<std::int8_t>(i);
        case DType::Int16: return a.at<std::int16_t>(i);
        case DType::Int32: return a.at<std::int32_t>(i);
        case DType::Int64: return static_cast<double>(a.at<std::int64_t>(i));
        case DType::UInt8: return a.at<std::uint8_t>(i);
        case DType::UInt16: return a.at<std::uint16_t>(i);
        case DType::UInt32: return a.at<std::uint32_t>(i);
        case DType::UInt64: return static_cast<double>(a.at<std::uint64_t>(i));
        case DType::Float16: return half_to_float(a.at<std::uint16_t>(i));
        case DType::Float32: return a.at<float>(i);
        case DType::Float64: return a.at<double>(i);
    }
    return 0.0;
}

}  // namespace trtverify
