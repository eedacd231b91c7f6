// The pipeline's CSV exchange format, as scripts/trtverify/io.py writes and reads it:
//
//   # trtverify-csv 1 shape=1797,8,8,1 dtype=float32
//   v,v,v,...        one line per sample (prod(shape[1:]) values, C order); a 1-d array has one value per line
//
// Floats are written with %.9g (float16/float32) or %.17g (float64), integers and bools with %d, so a file
// round-trips bit for bit. The reader converts text exactly as numpy.loadtxt does (a float32 is parsed as a double
// and then rounded, not parsed directly: the two can differ by one ulp on hand-written inputs), skips blank lines
// and '#' comments like loadtxt, and checks every row's width and the row count against the header.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "trtverify/array.h"

namespace trtverify {

inline constexpr const char* kCsvMagic = "# trtverify-csv 1";

struct CsvReadOptions {
    std::uint64_t max_bytes = std::uint64_t{16} << 30;  // refuse files (and arrays) larger than this
};

Array parse_csv(std::string_view text, const std::string& what = "CSV", const CsvReadOptions& options = {});
Array read_csv(const std::string& path, const CsvReadOptions& options = {});

std::string encode_csv(const Array& array);
void write_csv(const std::string& path, const Array& array);  // atomic, like write_npy

}  // namespace trtverify
