// Reads the files tests/cpp/make_npy_fixtures.py wrote with numpy (FIXTURE_DIR, the second argument), checks them
// against the values numpy saw, and writes them back (NAME.cpp.npy, NAME.f32.npy, NAME.cpp.csv) for
// tests/cpp/check_cpp_written.py to read with numpy.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "check.h"
#include "trtverify/csv.h"
#include "trtverify/error.h"
#include "trtverify/file.h"
#include "trtverify/npy.h"
#include "trtverify/timing.h"

using namespace trtverify;

namespace {

std::vector<std::vector<std::string>> manifest() {
    std::vector<std::vector<std::string>> rows;
    std::ifstream in(check::fixture_dir() + "/manifest.tsv");
    if (!in) throw Error("no manifest.tsv in '" + check::fixture_dir() + "': run tests/cpp/make_npy_fixtures.py");
    for (std::string line; std::getline(in, line);) {
        std::vector<std::string> fields;
        std::stringstream s(line);
        for (std::string f; std::getline(s, f, '\t');) fields.push_back(f);
        if (!fields.empty()) rows.push_back(fields);
    }
    return rows;
}

std::vector<std::string> lines_of(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

std::string shape_text(const std::vector<std::uint64_t>& shape) {
    std::string s;
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
    return s;
}

bool same_double(double a, double b) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    return std::memcmp(&a, &b, sizeof a) == 0;  // -0.0 and 0.0 differ
}

// Element i against the text numpy's side wrote for it: integers exactly, floats bit for bit (as doubles).
bool element_matches(const Array& a, std::size_t i, const std::string& text) {
    switch (a.dtype) {
        case DType::Int8: return a.at<std::int8_t>(i) == std::strtoll(text.c_str(), nullptr, 10);
        case DType::Int16: return a.at<std::int16_t>(i) == std::strtoll(text.c_str(), nullptr, 10);
        case DType::Int32: return a.at<std::int32_t>(i) == std::strtoll(text.c_str(), nullptr, 10);
        case DType::Int64: return a.at<std::int64_t>(i) == std::strtoll(text.c_str(), nullptr, 10);
        case DType::UInt8: return a.at<std::uint8_t>(i) == std::strtoull(text.c_str(), nullptr, 10);
        case DType::UInt16: return a.at<std::uint16_t>(i) == std::strtoull(text.c_str(), nullptr, 10);
        case DType::UInt32: return a.at<std::uint32_t>(i) == std::strtoull(text.c_str(), nullptr, 10);
        case DType::UInt64: return a.at<std::uint64_t>(i) == std::strtoull(text.c_str(), nullptr, 10);
        case DType::Bool: return a.bytes[i] == std::strtoull(text.c_str(), nullptr, 10);
        default: return same_double(element_as_double(a, i), std::strtod(text.c_str(), nullptr));
    }
}

void check_against_values(const Array& a, const std::vector<std::string>& entry) {
    const std::string& name = entry[1];
    if (std::string(dtype_name(a.dtype)) != entry[2])
        check::fail(name.c_str(), 0, std::string("dtype ") + dtype_name(a.dtype) + ", numpy says " + entry[2]);
    const std::string want_shape = entry.size() > 3 ? entry[3] : "";
    if (shape_text(a.shape) != want_shape)
        check::fail(name.c_str(), 0, "shape " + shape_text(a.shape) + ", numpy says " + want_shape);
    const auto values = lines_of(check::fixture_dir() + "/" + name + ".values");
    if (values.size() != a.count()) {
        check::fail(name.c_str(), 0, std::to_string(a.count()) + " elements, numpy wrote " +
                                         std::to_string(values.size()) + " values");
        return;
    }
    for (std::size_t i = 0; i < values.size(); ++i)
        if (!element_matches(a, i, values[i])) {
            check::fail(name.c_str(), 0, "element " + std::to_string(i) + " is " +
                                             std::to_string(element_as_double(a, i)) + ", numpy says " + values[i]);
            return;
        }
}

Array float32_copy(const Array& a) {
    Array f = make_array(DType::Float32, a.shape);
    const auto values = to_float32(a);
    if (!values.empty()) std::memcpy(f.bytes.data(), values.data(), f.bytes.size());
    return f;
}

}  // namespace

TEST(fixtures_npy_written_by_numpy) {
    int n = 0;
    for (const auto& e : manifest()) {
        if (e[0] != "npy") continue;
        const std::string path = check::fixture_dir() + "/" + e[1];
        check::context() = e[1];
        const Array a = read_npy(path);
        check_against_values(a, e);
        const auto bytes = read_file(path, 1 << 30);
        CHECK(parse_npy(bytes.data(), bytes.size(), e[1]).bytes == a.bytes);  // the in-memory parser agrees
        write_npy(path + ".cpp.npy", a);
        write_npy(path + ".f32.npy", float32_copy(a));
        ++n;
    }
    CHECK(n >= 60);
}

TEST(fixtures_csv_written_by_python) {
    int n = 0;
    for (const auto& e : manifest()) {
        if (e[0] != "csv") continue;
        const std::string path = check::fixture_dir() + "/" + e[1];
        check::context() = e[1];
        const Array a = read_csv(path);
        check_against_values(a, e);
        write_npy(path + ".cpp.npy", a);
        write_csv(path + ".cpp.csv", a);
        if (e[4] == "1") CHECK(read_file(path + ".cpp.csv", 1 << 30) == read_file(path, 1 << 30));
        ++n;
    }
    CHECK(n >= 8);
}

TEST(fixtures_malformed_files_fail_with_a_clear_message) {
    int n = 0;
    for (const auto& e : manifest()) {
        if (e[0] != "bad") continue;
        const std::string path = check::fixture_dir() + "/" + e[1];
        check::context() = e[1];
        const char* message = e[3].c_str();
        if (e[2] == "npy") {
            CHECK_THROWS(read_npy(path), message);
            const auto bytes = read_file(path, 1 << 30);
            CHECK_THROWS(parse_npy(bytes.data(), bytes.size(), e[1]), message);
        } else {
            CHECK_THROWS(read_csv(path), message);
        }
        ++n;
    }
    CHECK(n >= 35);
}

TEST(fixtures_latency_statistics_match_numpy) {
    int n = 0;
    for (const auto& e : manifest()) {
        if (e[0] != "stats") continue;
        check::context() = e[1];
        const auto lines = lines_of(check::fixture_dir() + "/" + e[1]);
        std::vector<double> times, want;
        std::stringstream a(lines.at(0)), b(lines.at(1));
        for (double v; a >> v;) times.push_back(v);
        for (double v; b >> v;) want.push_back(v);
        const LatencyStats s = summarize(times);
        // numpy's mean sums pairwise, so the last bits may differ; the percentiles are the same arithmetic.
        CHECK(std::fabs(s.mean - want.at(0)) <= 1e-12 * want.at(0));
        CHECK_EQ(s.p50, want.at(1));
        CHECK_EQ(s.p90, want.at(2));
        CHECK_EQ(s.p95, want.at(3));
        CHECK_EQ(s.p99, want.at(4));
        CHECK_EQ(s.min, want.at(5));
        CHECK_EQ(s.max, want.at(6));
        ++n;
    }
    CHECK(n >= 5);
}
