// Whole-file reads and atomic writes: a failed write never leaves a plausible-looking file behind.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace trtverify {

// A regular file open for reading, closed when this goes out of scope. Throws Error naming the path when it cannot be
// opened or is not a regular file (a directory, a FIFO: nothing whose size can be trusted).
class InputFile {
public:
    explicit InputFile(const std::string& path);
    ~InputFile();
    InputFile(const InputFile&) = delete;
    InputFile& operator=(const InputFile&) = delete;
    std::FILE* get() const { return f_; }
    std::uint64_t size() const { return size_; }

private:
    std::FILE* f_;
    std::uint64_t size_ = 0;
};

// Throws Error when the file cannot be opened or is larger than max_bytes.
std::vector<unsigned char> read_file(const std::string& path, std::uint64_t max_bytes);

// Writes to a temporary file beside `path` and renames it onto `path` once everything is written.
void write_file_atomic(const std::string& path, const void* data, std::size_t size);

}  // namespace trtverify
