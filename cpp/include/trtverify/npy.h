// The .npy format (numpy's NEP 1): versions 1.0, 2.0 and 3.0, plain numeric dtypes, either byte order, C order.
//
// The reader trusts nothing in the file: every header field is parsed strictly, sizes are multiplied with overflow
// checks and compared with max_bytes before anything is allocated, and the data must fill the file exactly.
// Every failure is a trtverify::Error with one line naming the file and what is wrong with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "trtverify/array.h"

namespace trtverify {

struct NpyReadOptions {
    std::uint64_t max_bytes = std::uint64_t{16} << 30;  // refuse arrays larger than this (16 GiB)
    std::uint64_t max_header_bytes = 1 << 20;           // numpy's own headers are under 100 bytes
};

struct NpyHeader {
    int major_version = 1;
    DType dtype = DType::Float32;
    bool big_endian = false;  // as stored in the file; arrays returned by the reader are always native
    std::vector<std::uint64_t> shape;
    std::size_t data_offset = 0;   // bytes before the data
    std::uint64_t data_bytes = 0;  // product of shape * itemsize
};

// Parses the prefix of a .npy file: magic, version, header length and header dict. `size` may be the whole file
// or just its beginning; throws when the header does not fit in it. `what` names the source in messages.
NpyHeader parse_npy_header(const unsigned char* data, std::size_t size, const std::string& what,
                           const NpyReadOptions& options = {});

Array parse_npy(const unsigned char* data, std::size_t size, const std::string& what = "<memory>",
                const NpyReadOptions& options = {});
Array read_npy(const std::string& path, const NpyReadOptions& options = {});

// Version 1.0 (2.0 if the header needs more than 65535 bytes), little-endian, C order, header padded to 64 bytes.
std::vector<unsigned char> encode_npy(const Array& array);
// Written under a temporary name in the target's directory and renamed into place when complete.
void write_npy(const std::string& path, const Array& array);

}  // namespace trtverify
