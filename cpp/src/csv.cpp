#include "trtverify/csv.h"

#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "trtverify/error.h"
#include "trtverify/file.h"

namespace trtverify {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

std::string quote(std::string_view s) {
    std::string out(s.substr(0, 40));
    for (auto& c : out)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    return "'" + out + (s.size() > 40 ? "...'" : "'");
}

struct Header {
    std::vector<std::uint64_t> shape;
    DType dtype;
};

Header parse_header(std::string_view line, const std::string& what) {
    const std::string_view text = trim(line);
    const std::string_view magic = kCsvMagic;
    if (text.substr(0, magic.size()) != magic)
        throw Error(what + " lacks the '" + std::string(magic) + " shape=... dtype=...' header line");
    auto malformed = [&](const std::string& detail) {
        return Error(what + " has a malformed header " + quote(text) + " (" + detail + ")");
    };
    std::string shape_text, dtype_text;
    bool have_shape = false, have_dtype = false;
    std::size_t pos = magic.size();
    while (pos < text.size()) {  // whitespace-separated key=value fields; other words are ignored, as in io.py
        while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t')) ++pos;
        std::size_t end = pos;
        while (end < text.size() && text[end] != ' ' && text[end] != '\t') ++end;
        const std::string_view item = text.substr(pos, end - pos);
        pos = end;
        const auto eq = item.find('=');
        if (eq == std::string_view::npos) continue;
        if (item.substr(0, eq) == "shape") shape_text = std::string(item.substr(eq + 1)), have_shape = true;
        if (item.substr(0, eq) == "dtype") dtype_text = std::string(item.substr(eq + 1)), have_dtype = true;
    }
    if (!have_shape) throw malformed("no shape=");
    if (!have_dtype) throw malformed("no dtype=");
    Header h;
    const auto dtype = dtype_from_name(dtype_text);
    if (!dtype) throw malformed("unsupported dtype '" + dtype_text + "'");
    h.dtype = *dtype;
    std::size_t start = 0;
    while (true) {
        const std::size_t comma = shape_text.find(',', start);
        const std::string dim = shape_text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (dim.empty() || dim.size() > 19 || dim.find_first_not_of("0123456789") != std::string::npos)
            throw malformed("shape must be comma-separated non-negative integers");
        h.shape.push_back(std::strtoull(dim.c_str(), nullptr, 10));
        if (h.shape.size() > 64) throw malformed("more than 64 dimensions");
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return h;
}

// One value parsed from text as numpy.loadtxt parses it for the dtype, stored in `out` (native byte order).
class ValueParser {
public:
    ValueParser(DType dtype, const std::string& what) : dtype_(dtype), what_(what) {}

    void parse(std::string_view field, unsigned char* out, std::size_t line, std::size_t column) const {
        const std::string text(trim(field));
        auto bad = [&]() {
            return Error(what_ + ": line " + std::to_string(line) + ", value " + std::to_string(column) + ": " +
                         quote(text) + " is not " + (kind(dtype_) == 'f' ? "a " : "an ") + dtype_name(dtype_) +
                         " number");
        };
        if (text.empty()) throw bad();
        if (kind(dtype_) == 'f') {
            if (text.find_first_of("xX(") != std::string::npos) throw bad();  // no hex floats, no nan(payload)
            char* end = nullptr;
            const double d = std::strtod(text.c_str(), &end);  // the C locale: these programs never set another
            if (end != text.c_str() + text.size()) throw bad();
            if (dtype_ == DType::Float64) std::memcpy(out, &d, 8);
            else if (dtype_ == DType::Float32) {
                const float f = static_cast<float>(d);  // double rounding, exactly as numpy does
                std::memcpy(out, &f, 4);
            } else {
                const std::uint16_t h = double_to_half(d);
                std::memcpy(out, &h, 2);
            }
            return;
        }
        // Integers: an optional sign (none for unsigned) and digits, within the dtype's range, as loadtxt checks.
        const bool is_unsigned = kind(dtype_) == 'u';
        if (text.find_first_not_of(is_unsigned ? "+0123456789" : "+-0123456789") != std::string::npos ||
            text.find_first_of("+-", 1) != std::string::npos)
            throw bad();
        if (is_unsigned) {
            errno = 0;
            char* end = nullptr;
            const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
            const unsigned long long max = itemsize(dtype_) == 8 ? ~0ull : (1ull << (8 * itemsize(dtype_))) - 1;
            if (errno == ERANGE || end != text.c_str() + text.size() || v > max) throw bad();
            store(out, v);
            return;
        }
        errno = 0;
        char* end = nullptr;
        const long long v = std::strtoll(text.c_str(), &end, 10);
        if (errno == ERANGE || end != text.c_str() + text.size()) throw bad();
        if (dtype_ == DType::Bool) {  // loadtxt reads an integer; any non-zero is True
            out[0] = v != 0;
            return;
        }
        const int bits = static_cast<int>(8 * itemsize(dtype_));
        if (bits < 64 && (v < -(1ll << (bits - 1)) || v >= (1ll << (bits - 1)))) throw bad();
        store(out, static_cast<unsigned long long>(v));
    }

private:
    void store(unsigned char* out, unsigned long long v) const {  // the low itemsize bytes, native order
        switch (itemsize(dtype_)) {
            case 1: { const auto x = static_cast<std::uint8_t>(v); std::memcpy(out, &x, 1); break; }
            case 2: { const auto x = static_cast<std::uint16_t>(v); std::memcpy(out, &x, 2); break; }
            case 4: { const auto x = static_cast<std::uint32_t>(v); std::memcpy(out, &x, 4); break; }
            default: { const auto x = static_cast<std::uint64_t>(v); std::memcpy(out, &x, 8); break; }
        }
    }

    DType dtype_;
    const std::string& what_;
};

void append_value(std::string& out, const Array& a, std::size_t i) {
    char buf[40];
    if (kind(a.dtype) == 'f') {
        const double v = element_as_double(a, i);
        if (std::isnan(v)) out += "nan";  // printf would write "-nan" for a negative NaN; Python writes "nan"
        else {
            std::snprintf(buf, sizeof buf, a.dtype == DType::Float64 ? "%.17g" : "%.9g", v);
            out += buf;
        }
        return;
    }
    switch (a.dtype) {
        case DType::Bool: out += a.bytes[i] ? "1" : "0"; return;
        case DType::Int8: std::snprintf(buf, sizeof buf, "%d", a.at<std::int8_t>(i)); break;
        case DType::Int16: std::snprintf(buf, sizeof buf, "%d", a.at<std::int16_t>(i)); break;
        case DType::Int32: std::snprintf(buf, sizeof buf, "%" PRId32, a.at<std::int32_t>(i)); break;
        case DType::Int64: std::snprintf(buf, sizeof buf, "%" PRId64, a.at<std::int64_t>(i)); break;
        case DType::UInt8: std::snprintf(buf, sizeof buf, "%u", a.at<std::uint8_t>(i)); break;
        case DType::UInt16: std::snprintf(buf, sizeof buf, "%u", a.at<std::uint16_t>(i)); break;
        case DType::UInt32: std::snprintf(buf, sizeof buf, "%" PRIu32, a.at<std::uint32_t>(i)); break;
        default: std::snprintf(buf, sizeof buf, "%" PRIu64, a.at<std::uint64_t>(i)); break;
    }
    out += buf;
}

}  // namespace

Array parse_csv(std::string_view text, const std::string& what, const CsvReadOptions& options) {
    std::size_t pos = 0, line_no = 0;
    auto next_line = [&](std::string_view& line) {
        if (pos >= text.size()) return false;
        const std::size_t nl = text.find('\n', pos);
        const std::size_t end = nl == std::string_view::npos ? text.size() : nl;
        line = text.substr(pos, end - pos);
        pos = end + 1;
        ++line_no;
        return true;
    };
    std::string_view line;
    if (!next_line(line)) throw Error(what + " is empty: it lacks the '" + std::string(kCsvMagic) + "' header line");
    const Header h = parse_header(line, what);
    if (h.shape.empty()) throw Error(what + " has a malformed header: an empty shape");
    const auto nbytes = checked_nbytes(h.shape, itemsize(h.dtype));
    if (!nbytes || *nbytes > options.max_bytes)
        throw Error(what + ": shape " + shape_repr(h.shape) + " of " + dtype_name(h.dtype) +
                    " is larger than the limit of " + std::to_string(options.max_bytes) + " bytes");
    const std::uint64_t rows = h.shape[0];
    const std::uint64_t width = h.shape.size() > 1 ? checked_nbytes({h.shape.begin() + 1, h.shape.end()}, 1).value() : 1;
    const std::size_t size = itemsize(h.dtype);
    // Allocate as rows arrive: a header promising many rows cannot make a small file allocate much.
    Array a;
    a.dtype = h.dtype;
    a.shape = h.shape;
    const ValueParser parser(h.dtype, what);
    std::uint64_t row = 0;
    while (next_line(line)) {
        const std::size_t hash = line.find('#');  // loadtxt's comments: drop from '#' on, skip what is left blank
        if (hash != std::string_view::npos) line = line.substr(0, hash);
        if (trim(line).empty()) continue;
        if (row == rows)
            throw Error(what + " has more than the " + std::to_string(rows) + " rows its header promises (line " +
                        std::to_string(line_no) + "): the file was edited or its header is wrong");
        a.bytes.resize(a.bytes.size() + static_cast<std::size_t>(width) * size);
        unsigned char* out = a.bytes.data() + static_cast<std::size_t>(row * width) * size;
        std::uint64_t column = 0;
        std::size_t start = 0;
        while (true) {
            const std::size_t comma = line.find(',', start);
            if (column == width)
                throw Error(what + ": line " + std::to_string(line_no) + " has more than " + std::to_string(width) +
                            " values; its header promises " + std::to_string(width) + " per row");
            parser.parse(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start),
                         out + static_cast<std::size_t>(column) * size, line_no, static_cast<std::size_t>(column + 1));
            ++column;
            if (comma == std::string_view::npos) break;
            start = comma + 1;
        }
        if (column != width)
            throw Error(what + ": line " + std::to_string(line_no) + " has " + std::to_string(column) +
                        " values; its header promises " + std::to_string(width) + " per row");
        ++row;
    }
    if (row != rows)
        throw Error(what + " has " + std::to_string(row) + " rows of " + std::to_string(width) +
                    " values; its header promises " + std::to_string(rows) + " rows of " + std::to_string(width) +
                    ": the file is truncated or was edited");
    a.bytes.resize(static_cast<std::size_t>(*nbytes));  // rows == 0 with a zero-width shape
    return a;
}

Array read_csv(const std::string& path, const CsvReadOptions& options) {
    const auto bytes = read_file(path, options.max_bytes);
    return parse_csv(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), "CSV file " + path,
                     options);
}

std::string encode_csv(const Array& a) {
    if (a.shape.empty()) throw Error("cannot write a 0-dimensional array as CSV");
    std::string out = std::string(kCsvMagic) + " shape=";
    for (std::size_t i = 0; i < a.shape.size(); ++i) out += (i ? "," : "") + std::to_string(a.shape[i]);
    out += std::string(" dtype=") + dtype_name(a.dtype) + "\n";
    const std::uint64_t rows = a.shape[0];
    const std::uint64_t width = rows ? a.count() / rows : 0;
    for (std::uint64_t r = 0; r < rows; ++r) {
        for (std::uint64_t c = 0; c < width; ++c) {
            if (c) out += ',';
            append_value(out, a, static_cast<std::size_t>(r * width + c));
        }
        out += '\n';
    }
    return out;
}

void write_csv(const std::string& path, const Array& array) {
    const std::string text = encode_csv(array);
    write_file_atomic(path, text.data(), text.size());
}

}  // namespace trtverify
