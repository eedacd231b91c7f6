#include "trtverify/npy.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>

#include "trtverify/error.h"
#include "trtverify/file.h"

namespace trtverify {

namespace {

constexpr unsigned char kMagic[] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
constexpr std::size_t kMagicLen = sizeof kMagic;

// A header excerpt safe to put in a one-line message.
std::string printable(std::string_view s, std::size_t limit = 80) {
    std::string out;
    for (std::size_t i = 0; i < s.size() && out.size() < limit; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '\n') out += "\\n";
        else if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
        else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    return s.size() > limit ? out + "..." : out;
}

bool valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        const std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
        if (len == 0 || i + len > s.size()) return false;
        for (std::size_t k = 1; k < len; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
        i += len;
    }
    return true;
}

struct Descr {
    DType dtype;
    bool big_endian;
};

// The descr string as numpy writes it: byte order ('<', '>', '|' or '='), kind letter, item size: '<f4', '|b1'.
Descr parse_descr(const std::string& descr, const std::string& what) {
    const std::string supported = " (supported: bool, int8/16/32/64, uint8/16/32/64, float16/32/64)";
    std::size_t pos = 0;
    char order = '=';
    if (!descr.empty() && descr[0] != '\0' && std::strchr("<>|=", descr[0])) order = descr[pos++];
    if (pos < descr.size() && descr[pos] == 'O')
        throw Error(what + ": object arrays (descr '" + printable(descr) +
                    "') are not supported: reading them means unpickling, which trtverify never does");
    if (pos >= descr.size()) throw Error(what + ": malformed header: empty dtype descr '" + printable(descr) + "'");
    const char kind_letter = descr[pos++];
    std::size_t size = 0;
    const std::size_t digits_start = pos;
    while (pos < descr.size() && std::isdigit(static_cast<unsigned char>(descr[pos])) && pos - digits_start < 4)
        size = size * 10 + static_cast<std::size_t>(descr[pos++] - '0');
    std::optional<DType> dtype;
    if (pos == descr.size() && pos > digits_start) dtype = dtype_from_kind(kind_letter, size);
    if (!dtype) throw Error(what + ": unsupported dtype '" + printable(descr) + "'" + supported);
    if (order == '|' && size > 1)
        throw Error(what + ": malformed header: dtype '" + descr + "' has no byte order ('|') but " +
                    std::to_string(size) + "-byte items need '<' or '>'");
    const bool big = order == '>' || (order == '=' && !host_is_little_endian());
    return {*dtype, size > 1 && big};
}

// A strict parser for the Python dict literal numpy writes: {'descr': '<f4', 'fortran_order': False, 'shape': (3,), }
class HeaderParser {
public:
    HeaderParser(std::string_view text, std::string what) : s_(text), what_(std::move(what)) {}

    NpyHeader parse() {
        std::optional<std::string> descr;
        std::optional<bool> fortran;
        std::optional<std::vector<std::uint64_t>> shape;
        expect('{');
        while (true) {
            skip_space();
            if (peek() == '}') break;
            const std::string key = string_literal();
            expect(':');
            skip_space();
            if (key == "descr") {
                if (descr) fail("the key 'descr' appears twice");
                if (peek() == '[')
                    throw Error(what_ + ": structured dtypes (descr " + printable(s_.substr(pos_), 40) +
                                ") are not supported; save a plain numeric array");
                descr = string_literal();
            } else if (key == "fortran_order") {
                if (fortran) fail("the key 'fortran_order' appears twice");
                fortran = boolean();
            } else if (key == "shape") {
                if (shape) fail("the key 'shape' appears twice");
                shape = tuple();
            } else {
                fail("unexpected key '" + printable(key, 30) + "' (a .npy header has descr, fortran_order, shape)");
            }
            skip_space();
            if (peek() == ',') {
                ++pos_;
                continue;
            }
            if (peek() != '}') fail("expected ',' or '}'");
        }
        ++pos_;  // the '}'
        skip_space();
        if (pos_ != s_.size()) fail("unexpected text after the closing '}'");
        if (!descr) fail("the key 'descr' is missing");
        if (!fortran) fail("the key 'fortran_order' is missing");
        if (!shape) fail("the key 'shape' is missing");
        const Descr d = parse_descr(*descr, what_);
        if (*fortran)
            throw Error(what_ + ": Fortran-order arrays are not supported; save a C-order array "
                                "(numpy.save(path, numpy.ascontiguousarray(a)))");
        NpyHeader h;
        h.dtype = d.dtype;
        h.big_endian = d.big_endian;
        h.shape = std::move(*shape);
        return h;
    }

private:
    [[noreturn]] void fail(const std::string& detail) const {
        throw Error(what_ + ": malformed header: " + detail + " at offset " + std::to_string(pos_) + " of \"" +
                    printable(s_) + "\"");
    }
    char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
    void skip_space() {
        while (pos_ < s_.size() && std::strchr(" \t\r\n", s_[pos_]) && s_[pos_] != '\0') ++pos_;
    }
    void expect(char c) {
        skip_space();
        if (peek() != c) fail(std::string("expected '") + c + "'");
        ++pos_;
    }
    std::string string_literal() {
        skip_space();
        const char quote = peek();
        if (quote != '\'' && quote != '"') fail("expected a quoted string");
        const std::size_t start = ++pos_;
        while (pos_ < s_.size() && s_[pos_] != quote) {
            if (s_[pos_] == '\\' || s_[pos_] == '\n') fail("unsupported character in a string");
            ++pos_;
        }
        if (pos_ >= s_.size()) fail("unterminated string");
        return std::string(s_.substr(start, pos_++ - start));
    }
    bool boolean() {
        for (const auto& [word, value] : {std::pair{"True", true}, std::pair{"False", false}}) {
            const std::size_t n = std::strlen(word);
            if (s_.substr(pos_, n) == word && !std::isalnum(static_cast<unsigned char>(pos_ + n < s_.size() ? s_[pos_ + n] : ' '))) {
                pos_ += n;
                return value;
            }
        }
        fail("fortran_order must be True or False");
    }
    std::uint64_t dimension() {
        if (!std::isdigit(static_cast<unsigned char>(peek())))
            fail(peek() == '-' ? "negative dimension in shape" : "shape dimensions must be non-negative integers");
        std::uint64_t value = 0;
        while (std::isdigit(static_cast<unsigned char>(peek()))) {
            if (__builtin_mul_overflow(value, 10u, &value) ||
                __builtin_add_overflow(value, static_cast<unsigned>(s_[pos_] - '0'), &value) ||
                value > static_cast<std::uint64_t>(INT64_MAX))
                fail("shape dimension larger than 2**63-1");
            ++pos_;
        }
        if (peek() == 'L') ++pos_;  // Python 2 long literals, as old numpy wrote them
        if (peek() == '.' || std::isalpha(static_cast<unsigned char>(peek())))
            fail("shape dimensions must be non-negative integers");
        return value;
    }
    std::vector<std::uint64_t> tuple() {
        if (peek() != '(') fail("shape must be a tuple like (3, 4)");
        ++pos_;
        std::vector<std::uint64_t> dims;
        bool trailing_comma = false;
        while (true) {
            skip_space();
            if (peek() == ')') break;
            if (dims.size() >= 64) fail("more than 64 dimensions");
            dims.push_back(dimension());
            skip_space();
            trailing_comma = peek() == ',';
            if (trailing_comma) ++pos_;
            else if (peek() != ')') fail("expected ',' or ')' in shape");
        }
        if (dims.size() == 1 && !trailing_comma) fail("shape (n) is not a tuple; a 1-d shape is written (n,)");
        ++pos_;
        return dims;
    }

    std::string_view s_;
    std::string what_;
    std::size_t pos_ = 0;
};

std::uint64_t read_le(const unsigned char* p, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = n; i-- > 0;) v = (v << 8) | p[i];
    return v;
}

std::string array_desc(const NpyHeader& h) { return "shape " + shape_repr(h.shape) + " of " + dtype_name(h.dtype); }

// The data must exactly fill what follows the header: less is truncation, more is garbage; either way the header's
// shape does not describe the file.
void check_data_size(const NpyHeader& h, std::uint64_t available, const std::string& what) {
    if (available < h.data_bytes)
        throw Error(what + ": truncated data: " + array_desc(h) + " needs " + std::to_string(h.data_bytes) +
                    " bytes but only " + std::to_string(available) +
                    " follow the header (the file was cut short or its header lies about the shape)");
    if (available > h.data_bytes)
        throw Error(what + ": " + std::to_string(available - h.data_bytes) + " bytes of trailing garbage after the " +
                    std::to_string(h.data_bytes) + " bytes of data that " + array_desc(h) +
                    " needs (the header lies about the shape, or something was appended)");
}

// The array the header describes, its bytes zeroed, for the caller to fill with the file's data.
Array empty_array(const NpyHeader& h) {
    Array a;
    a.dtype = h.dtype;
    a.shape = h.shape;
    a.bytes.resize(static_cast<std::size_t>(h.data_bytes));
    return a;
}

void to_native_order(const NpyHeader& h, Array& a) {
    if (h.big_endian == host_is_little_endian())
        byteswap_items(a.bytes.data(), static_cast<std::size_t>(a.count()), itemsize(a.dtype));
}

}  // namespace

NpyHeader parse_npy_header(const unsigned char* data, std::size_t size, const std::string& what,
                           const NpyReadOptions& options) {
    if (size < kMagicLen || std::memcmp(data, kMagic, kMagicLen) != 0)
        throw Error(what + ": not a .npy file: it does not start with the magic string \\x93NUMPY (" +
                    (size < kMagicLen ? "it has only " + std::to_string(size) + " bytes"
                                      : "found \"" + printable({reinterpret_cast<const char*>(data), kMagicLen}) + "\"") +
                    ")");
    if (size < kMagicLen + 2) throw Error(what + ": truncated .npy file: it ends inside the version bytes");
    const int major = data[6], minor = data[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0)
        throw Error(what + ": unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                    " (this reader knows 1.0, 2.0 and 3.0)");
    const std::size_t len_bytes = major == 1 ? 2 : 4;
    const std::size_t prefix = kMagicLen + 2 + len_bytes;
    if (size < prefix) throw Error(what + ": truncated .npy file: it ends inside the header length");
    const std::uint64_t header_len = read_le(data + kMagicLen + 2, len_bytes);
    if (header_len > options.max_header_bytes)
        throw Error(what + ": the .npy header claims " + std::to_string(header_len) + " bytes, more than the limit of " +
                    std::to_string(options.max_header_bytes));
    if (size - prefix < header_len)
        throw Error(what + ": truncated header: it declares " + std::to_string(header_len) + " bytes but the file ends " +
                    std::to_string(size - prefix) + " bytes after the header length");
    const std::string_view text(reinterpret_cast<const char*>(data + prefix), static_cast<std::size_t>(header_len));
    if (major == 3 && !valid_utf8(text))
        throw Error(what + ": malformed header: a version 3.0 header must be UTF-8 (\"" + printable(text) + "\")");
    NpyHeader h = HeaderParser(text, what).parse();
    h.major_version = major;
    h.data_offset = prefix + static_cast<std::size_t>(header_len);
    const auto nbytes = checked_nbytes(h.shape, itemsize(h.dtype));
    if (!nbytes) throw Error(what + ": " + array_desc(h) + " is impossibly large: its byte size overflows 64 bits");
    if (*nbytes > options.max_bytes)
        throw Error(what + ": " + array_desc(h) + " needs " + std::to_string(*nbytes) +
                    " bytes, more than the limit of " + std::to_string(options.max_bytes) + " bytes");
    h.data_bytes = *nbytes;
    return h;
}

Array parse_npy(const unsigned char* data, std::size_t size, const std::string& what, const NpyReadOptions& options) {
    const NpyHeader h = parse_npy_header(data, size, what, options);
    check_data_size(h, size - h.data_offset, what);
    Array a = empty_array(h);
    if (!a.bytes.empty()) std::memcpy(a.bytes.data(), data + h.data_offset, a.bytes.size());
    to_native_order(h, a);
    return a;
}

Array read_npy(const std::string& path, const NpyReadOptions& options) {
    // The header first, so that sizes are checked against the file before the data is allocated; then the data
    // straight into the array.
    const InputFile file(path);
    std::FILE* f = file.get();
    const std::uint64_t file_size = file.size();
    std::vector<unsigned char> head(
        static_cast<std::size_t>(std::min<std::uint64_t>(file_size, 12 + options.max_header_bytes)));
    if (std::fread(head.data(), 1, head.size(), f) != head.size()) throw Error(path + ": read error");
    const NpyHeader h = parse_npy_header(head.data(), head.size(), path, options);
    check_data_size(h, file_size - h.data_offset, path);
    if (h.data_bytes > SIZE_MAX) throw Error(path + ": " + array_desc(h) + " does not fit in memory");
    Array a = empty_array(h);
    const std::size_t in_head = std::min(head.size() - h.data_offset, a.bytes.size());  // data read with the header
    if (in_head) std::memcpy(a.bytes.data(), head.data() + h.data_offset, in_head);
    const std::size_t rest = a.bytes.size() - in_head;
    if (rest && std::fread(a.bytes.data() + in_head, 1, rest, f) != rest)
        throw Error(path + ": read error (the file changed while it was read?)");
    to_native_order(h, a);
    return a;
}

std::vector<unsigned char> encode_npy(const Array& a) {
    if (a.bytes.size() != checked_nbytes(a.shape, itemsize(a.dtype)).value_or(~std::uint64_t{0}))
        throw Error("encode_npy: the array's byte count does not match its shape " + shape_repr(a.shape));
    const std::size_t size = itemsize(a.dtype);
    const std::string descr = std::string(size == 1 ? "|" : "<") + kind(a.dtype) + std::to_string(size);
    // Byte for byte what numpy.save writes: keys sorted, "', }", padded with spaces and '\n' to 64-byte alignment.
    const std::string dict =
        "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape_repr(a.shape) + ", }";
    int major = 1;
    std::size_t len_bytes = 2;
    std::size_t hlen = dict.size() + 1;
    std::size_t pad = 64 - (kMagicLen + 2 + len_bytes + hlen) % 64;
    if (hlen + pad > 0xffff) {
        major = 2;
        len_bytes = 4;
        pad = 64 - (kMagicLen + 2 + len_bytes + hlen) % 64;
    }
    const std::size_t header_len = hlen + pad;
    std::vector<unsigned char> out(kMagic, kMagic + kMagicLen);
    out.push_back(static_cast<unsigned char>(major));
    out.push_back(0);
    for (std::size_t i = 0; i < len_bytes; ++i) out.push_back(static_cast<unsigned char>(header_len >> (8 * i)));
    out.insert(out.end(), dict.begin(), dict.end());
    out.insert(out.end(), pad, ' ');
    out.push_back('\n');
    const std::size_t data_at = out.size();
    out.insert(out.end(), a.bytes.begin(), a.bytes.end());
    if (!host_is_little_endian()) byteswap_items(out.data() + data_at, static_cast<std::size_t>(a.count()), size);
    return out;
}

void write_npy(const std::string& path, const Array& array) {
    const auto bytes = encode_npy(array);
    write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace trtverify
