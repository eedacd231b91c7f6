// A small test framework: TEST(name) { CHECK(...); CHECK_EQ(a, b); CHECK_THROWS(expr, "part of the message"); }
// A failed check reports file:line and the values, and the test goes on; main() runs every test (or those whose
// names contain argv[1]) and exits 1 if any check failed.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace check {

// A float's bit pattern, for checks that must tell -0 from 0 or one NaN payload from another.
inline std::uint32_t bits_of(float f) {
    std::uint32_t b;
    std::memcpy(&b, &f, sizeof b);
    return b;
}

struct Test {
    const char* name;
    std::function<void()> fn;
};

inline std::vector<Test>& registry() {
    static std::vector<Test> tests;
    return tests;
}

// The second command-line argument: a directory of fixture files, for the tests that read them.
inline std::string& fixture_dir() {
    static std::string dir;
    return dir;
}

// What a data-driven test is looking at (a file name), printed with each failure.
inline std::string& context() {
    static std::string what;
    return what;
}

inline int& failures() {
    static int n = 0;
    return n;
}

struct Registrar {
    Registrar(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

inline void fail(const char* file, int line, const std::string& message) {
    ++failures();
    std::fprintf(stderr, "%s:%d: FAILED: %s%s\n", file, line, message.c_str(),
                 context().empty() ? "" : (" [" + context() + "]").c_str());
}

template <class T>
std::string show(const T& value) {
    std::ostringstream s;
    if constexpr (std::is_same_v<T, unsigned char> || std::is_same_v<T, signed char>) s << static_cast<int>(value);
    else s << value;
    return s.str();
}

inline int run_all(int argc, char** argv) {
    const char* filter = argc > 1 ? argv[1] : "";
    if (argc > 2) fixture_dir() = argv[2];
    int ran = 0, failed_tests = 0;
    for (const auto& t : registry()) {
        if (!std::strstr(t.name, filter)) continue;
        const int before = failures();
        try {
            t.fn();
        } catch (const std::exception& e) {
            fail(t.name, 0, std::string("unexpected exception: ") + e.what());
        }
        ++ran;
        if (failures() != before) {
            ++failed_tests;
            std::fprintf(stderr, "  in test %s\n", t.name);
        }
    }
    std::printf("%d tests, %d failed, %d failed checks\n", ran, failed_tests, failures());
    return ran == 0 || failures() ? 1 : 0;
}

}  // namespace check

#define CHECK_CAT2(a, b) a##b
#define CHECK_CAT(a, b) CHECK_CAT2(a, b)
#define TEST(name)                                                 \
    static void name();                                            \
    static const check::Registrar CHECK_CAT(reg_, name)(#name, name); \
    static void name()

#define CHECK(cond) \
    do { if (!(cond)) check::fail(__FILE__, __LINE__, "CHECK(" #cond ")"); } while (0)

#define CHECK_EQ(a, b)                                                                                       \
    do {                                                                                                     \
        const auto check_a_ = (a); /* copies: (a) may refer into a temporary */ \
        const auto check_b_ = (b);                                                                          \
        if (!(check_a_ == check_b_))                                                                         \
            check::fail(__FILE__, __LINE__,                                                                  \
                        "CHECK_EQ(" #a ", " #b "): " + check::show(check_a_) + " != " + check::show(check_b_)); \
    } while (0)

// expr must throw a std::exception whose message contains `part`.
#define CHECK_THROWS(expr, part)                                                                              \
    do {                                                                                                      \
        bool check_threw_ = false;                                                                            \
        try {                                                                                                 \
            (void)(expr);                                                                                     \
        } catch (const std::exception& check_e_) {                                                           \
            check_threw_ = true;                                                                              \
            if (!std::strstr(check_e_.what(), part))                                                         \
                check::fail(__FILE__, __LINE__,                                                               \
                            std::string("CHECK_THROWS(" #expr "): message '") + check_e_.what() +            \
                                "' lacks '" + (part) + "'");                                                  \
            else if (std::strchr(check_e_.what(), '\n'))                                                     \
                check::fail(__FILE__, __LINE__, std::string("message is not one line: ") + check_e_.what()); \
        }                                                                                                     \
        if (!check_threw_) check::fail(__FILE__, __LINE__, "CHECK_THROWS(" #expr "): nothing thrown");        \
    } while (0)
