// libFuzzer target for the CSV reader: any input either parses or throws trtverify::Error with a one-line message.
// What parses must read back the same after encode_csv (NaN stays NaN; its sign and payload are not kept by text).
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "trtverify/csv.h"
#include "trtverify/error.h"

namespace {

bool same(const trtverify::Array& a, const trtverify::Array& b) {
    if (a.dtype != b.dtype || a.shape != b.shape || a.bytes.size() != b.bytes.size()) return false;
    if (trtverify::kind(a.dtype) != 'f') return a.bytes == b.bytes;
    const std::size_t size = trtverify::itemsize(a.dtype);
    for (std::size_t i = 0; i < a.count(); ++i) {
        const bool nan_a = std::isnan(trtverify::element_as_double(a, i));
        const bool nan_b = std::isnan(trtverify::element_as_double(b, i));
        if (nan_a != nan_b || (!nan_a && std::memcmp(&a.bytes[i * size], &b.bytes[i * size], size) != 0)) return false;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    trtverify::CsvReadOptions options;
    options.max_bytes = 1 << 20;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    trtverify::Array a;
    try {
        a = trtverify::parse_csv(text, "fuzz.csv", options);
    } catch (const trtverify::Error& e) {
        if (std::strchr(e.what(), '\n')) std::abort();
        return 0;
    }
    if (a.shape.empty()) std::abort();
    const trtverify::Array b = trtverify::parse_csv(trtverify::encode_csv(a), "re-encoded", options);
    if (!same(a, b)) std::abort();
    return 0;
}
