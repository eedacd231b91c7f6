// libFuzzer target for the .npy reader: any input either parses or throws trtverify::Error with a one-line message;
// anything else (a crash, a sanitizer report, another exception, a leak) is a bug. What parses must survive the
// float32 conversion and an encode/parse round trip unchanged.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "trtverify/error.h"
#include "trtverify/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    trtverify::NpyReadOptions options;
    options.max_bytes = 1 << 20;  // keep each run small; the limit check itself is what is exercised
    options.max_header_bytes = 1 << 16;
    trtverify::Array a;
    try {
        a = trtverify::parse_npy(data, size, "fuzz.npy", options);
    } catch (const trtverify::Error& e) {
        if (std::strchr(e.what(), '\n')) std::abort();  // messages are one line
        return 0;
    }
    const auto floats = trtverify::to_float32(a);
    if (floats.size() != a.count()) std::abort();
    const auto encoded = trtverify::encode_npy(a);
    const trtverify::Array b = trtverify::parse_npy(encoded.data(), encoded.size(), "re-encoded", options);
    if (b.dtype != a.dtype || b.shape != a.shape || b.bytes != a.bytes) std::abort();
    return 0;
}
