#include "trtverify/file.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trtverify/error.h"

namespace trtverify {

InputFile::InputFile(const std::string& path) : f_(std::fopen(path.c_str(), "rb")) {
    if (!f_) throw Error(path + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    if (fstat(fileno(f_), &st) != 0 || !S_ISREG(st.st_mode)) {
        std::fclose(f_);
        throw Error(path + ": not a regular file");
    }
    size_ = static_cast<std::uint64_t>(st.st_size);
}

InputFile::~InputFile() { std::fclose(f_); }

std::vector<unsigned char> read_file(const std::string& path, std::uint64_t max_bytes) {
    const InputFile file(path);
    if (file.size() > max_bytes)
        throw Error(path + ": " + std::to_string(file.size()) + " bytes, more than the limit of " +
                    std::to_string(max_bytes));
    std::vector<unsigned char> data(static_cast<std::size_t>(file.size()));
    if (!data.empty() && std::fread(data.data(), 1, data.size(), file.get()) != data.size())
        throw Error(path + ": read error: " + std::strerror(errno));
    return data;
}

void write_file_atomic(const std::string& path, const void* data, std::size_t size) {
    const auto slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
    const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    std::string tmp = dir + "." + name + ".XXXXXX.tmp";
    const int fd = mkstemps(tmp.data(), 4);
    if (fd < 0) throw Error(path + ": cannot create a temporary file beside it: " + std::strerror(errno));
    auto fail = [&](const std::string& what) {
        const std::string reason = std::strerror(errno);
        ::close(fd);
        ::unlink(tmp.c_str());
        throw Error(path + ": " + what + ": " + reason);
    };
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t done = 0; done < size;) {
        const ssize_t n = ::write(fd, p + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail("write failed");
        done += static_cast<std::size_t>(n);
    }
    if (::fchmod(fd, 0644) != 0) fail("chmod failed");
    if (::close(fd) != 0) {
        const std::string reason = std::strerror(errno);
        ::unlink(tmp.c_str());
        throw Error(path + ": close failed: " + reason);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string reason = std::strerror(errno);
        ::unlink(tmp.c_str());
        throw Error(path + ": cannot rename the finished temporary file into place: " + reason);
    }
}

}  // namespace trtverify
