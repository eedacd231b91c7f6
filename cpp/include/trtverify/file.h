// Whole-file reads and atomic writes: a failed write never leaves a plausible-looking file behind.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace trtverify {

// Throws Error when the file cannot be opened or is larger than max_bytes.
std::vector<unsigned char> read_file(const std::string& path, std::uint64_t max_bytes);

// Writes to a temporary file beside `path` and renames it onto `path` once everything is written.
void write_file_atomic(const std::string& path, const void* data, std::size_t size);

}  // namespace trtverify
