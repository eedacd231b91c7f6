// The one exception type of the library: a one-line message saying what is wrong and, where it helps, what to do.
#pragma once

#include <stdexcept>
#include <string>

namespace trtverify {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message);
};

// A command-line mistake: the program prints it with its usage hint and exits 2 instead of 1.
class UsageError : public Error {
public:
    using Error::Error;
};

}  // namespace trtverify
