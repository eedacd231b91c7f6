#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "trtverify/error.h"
#include "trtverify/file.h"
#include "trtverify/npy.h"

using namespace trtverify;

namespace {

using Bytes = std::vector<unsigned char>;

// A .npy file with the given header text (padded like numpy) and data bytes.
Bytes npy(const std::string& dict, const Bytes& data = {}, int major = 1) {
    const std::size_t len_bytes = major == 1 ? 2 : 4;
    std::string header = dict;
    while ((6 + 2 + len_bytes + header.size() + 1) % 64) header += ' ';
    header += '\n';
    Bytes out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<unsigned char>(major), 0};
    for (std::size_t i = 0; i < len_bytes; ++i) out.push_back(static_cast<unsigned char>(header.size() >> (8 * i)));
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

std::string dict(const std::string& descr, const std::string& shape, const std::string& fortran = "False") {
    return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
}

Array parse(const Bytes& b, const NpyReadOptions& o = {}) { return parse_npy(b.data(), b.size(), "test.npy", o); }

std::string temp_dir() {
    char tmpl[] = "/tmp/trtverify-test-XXXXXX";
    const char* d = mkdtemp(tmpl);
    return d ? d : "/tmp";
}

}  // namespace

TEST(npy_encode_is_byte_identical_to_numpy_save) {
    // numpy.save(f, numpy.arange(12, dtype='<f4').reshape(3, 4)) writes this 128-byte header exactly.
    const Array a = make_float32({3, 4}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
    const Bytes b = encode_npy(a);
    const std::string header(b.begin() + 10, b.begin() + 128);
    CHECK_EQ(b.size(), 128u + 48u);
    const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
    CHECK_EQ(header, dict + std::string(118 - dict.size() - 1, ' ') + "\n");
    CHECK_EQ(b[6], 1);
    CHECK_EQ(b[8] | (b[9] << 8), 118);
}

TEST(npy_round_trip_every_dtype_and_shape) {
    const DType all[] = {DType::Bool,   DType::Int8,   DType::Int16,   DType::Int32,   DType::Int64,   DType::UInt8,
                         DType::UInt16, DType::UInt32, DType::UInt64, DType::Float16, DType::Float32, DType::Float64};
    const std::vector<std::vector<std::uint64_t>> shapes = {{}, {0}, {5}, {2, 3, 4}, {0, 3}, {1, 1, 1, 1, 1}};
    for (DType d : all) {
        for (const auto& shape : shapes) {
            Array a = make_array(d, shape);
            for (std::size_t i = 0; i < a.bytes.size(); ++i) a.bytes[i] = static_cast<unsigned char>(i * 37 + 1);
            if (d == DType::Bool)
                for (auto& x : a.bytes) x &= 1;
            const Bytes b = encode_npy(a);
            CHECK_EQ(b.size() % 64, a.bytes.size() % 64);  // the data starts 64-byte aligned
            const Array c = parse(b);
            CHECK(c.dtype == d);
            CHECK(c.shape == shape);
            CHECK(c.bytes == a.bytes);
        }
    }
}

TEST(npy_reads_big_endian_and_every_version) {
    const Bytes be_data = {0x00, 0x00, 0x01, 0x02, 0xff, 0xff, 0xff, 0xfe};
    for (int major : {1, 2, 3}) {
        const Array a = parse(npy(dict(">i4", "(2,)"), be_data, major));
        CHECK_EQ(a.at<std::int32_t>(0), 0x0102);
        CHECK_EQ(a.at<std::int32_t>(1), -2);
    }
    const Array h = parse(npy(dict(">f2", "()"), {0x3c, 0x00}));
    CHECK_EQ(to_float32(h)[0], 1.0f);
    const Array u = parse(npy(dict("|u1", "(1,)"), {0xfe}));
    CHECK_EQ(u.at<std::uint8_t>(0), 0xfe);
}

TEST(npy_header_variants_numpy_accepts) {
    // Old numpy wrote Python 2 longs and other key orders; double quotes and spacing are valid Python too.
    CHECK(parse(npy("{'shape': (2L, 1L), 'fortran_order': False, 'descr': '<i2'}", {1, 0, 2, 0})).shape.size() == 2);
    CHECK(parse(npy("{\"descr\":\"<i2\",\"fortran_order\":False,\"shape\":(1 , )}", {1, 0})).count() == 1);
    CHECK(parse(npy(dict("<f8", "()"), Bytes(8))).shape.empty());
    CHECK(parse(npy(dict("<f8", "(0, 5)"))).count() == 0);
}

TEST(npy_rejects_bad_magic_and_versions) {
    Bytes b = npy(dict("<f4", "(1,)"), Bytes(4));
    b[1] = 'X';
    CHECK_THROWS(parse(b), "magic");
    CHECK_THROWS(parse(Bytes{}), "magic");
    CHECK_THROWS(parse(Bytes{0x93, 'N', 'U'}), "only 3 bytes");
    b = npy(dict("<f4", "(1,)"), Bytes(4));
    b[6] = 4;
    CHECK_THROWS(parse(b), "version 4.0");
    b[6] = 1;
    b[7] = 1;
    CHECK_THROWS(parse(b), "version 1.1");
    CHECK_THROWS(parse(Bytes{0x93, 'N', 'U', 'M', 'P', 'Y', 1}), "version bytes");
    CHECK_THROWS(parse(Bytes{0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 5}), "header length");
}

TEST(npy_rejects_unsupported_layouts_and_dtypes) {
    CHECK_THROWS(parse(npy(dict("<f4", "(2, 2)", "True"), Bytes(16))), "Fortran-order");
    CHECK_THROWS(parse(npy(dict("|O", "(2,)"), Bytes(16))), "unpickling");
    CHECK_THROWS(parse(npy("{'descr': [('a', '<i4'), ('b', '<f4')], 'fortran_order': False, 'shape': (1,), }", Bytes(8))),
                 "structured");
    CHECK_THROWS(parse(npy(dict("<c8", "(1,)"), Bytes(8))), "unsupported dtype '<c8'");
    CHECK_THROWS(parse(npy(dict("<U3", "(1,)"), Bytes(12))), "unsupported dtype");
    CHECK_THROWS(parse(npy(dict("<M8[ns]", "(1,)"), Bytes(8))), "unsupported dtype");
    CHECK_THROWS(parse(npy(dict("|f4", "(1,)"), Bytes(4))), "byte order");
    CHECK_THROWS(parse(npy(dict("<f3", "(1,)"), Bytes(3))), "unsupported dtype");
}

TEST(npy_rejects_malformed_headers) {
    CHECK_THROWS(parse(npy("{'descr': '<f4', 'fortran_order': False, }")), "'shape' is missing");
    CHECK_THROWS(parse(npy("{'shape': (1,), 'fortran_order': False, }", Bytes(4))), "'descr' is missing");
    CHECK_THROWS(parse(npy("{'descr': '<f4', 'shape': (1,), }", Bytes(4))), "'fortran_order' is missing");
    CHECK_THROWS(parse(npy(dict("<f4", "(1,)") + " extra", Bytes(4))), "after the closing");
    CHECK_THROWS(parse(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", Bytes(4))), "expected ',' or '}'");
    CHECK_THROWS(parse(npy("{'descr': '<f4' 'fortran_order': False, 'shape': (1,)}", Bytes(4))), "expected ','");
    CHECK_THROWS(parse(npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", Bytes(4))),
                 "appears twice");
    CHECK_THROWS(parse(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", Bytes(4))),
                 "unexpected key 'x'");
    CHECK_THROWS(parse(npy(dict("<f4", "(1,)", "0"), Bytes(4))), "True or False");
    CHECK_THROWS(parse(npy(dict("<f4", "(1,)", "Falsey"), Bytes(4))), "True or False");
    CHECK_THROWS(parse(npy(dict("<f4", "[1]"), Bytes(4))), "tuple");
    CHECK_THROWS(parse(npy(dict("<f4", "(1)"), Bytes(4))), "not a tuple");
    CHECK_THROWS(parse(npy(dict("<f4", "(-1, 4)"), Bytes(4))), "negative dimension");
    CHECK_THROWS(parse(npy(dict("<f4", "(2.5,)"), Bytes(4))), "non-negative integers");
    CHECK_THROWS(parse(npy(dict("<f4", "(1,,)"), Bytes(4))), "non-negative integers");
    CHECK_THROWS(parse(npy(dict("<f4", "(99999999999999999999,)"), Bytes(4))), "2**63-1");
    CHECK_THROWS(parse(npy("{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}", Bytes(4))), "expected");
    CHECK_THROWS(parse(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\x01", Bytes(4))),
                 "after the closing");
    CHECK_THROWS(parse(npy("[]")), "expected '{'");
    CHECK_THROWS(parse(npy("")), "expected '{'");
    Bytes v3 = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), '\xff': 1}", Bytes(4), 3);
    CHECK_THROWS(parse(v3), "UTF-8");
}

TEST(npy_rejects_sizes_that_do_not_match_the_file) {
    CHECK_THROWS(parse(npy(dict("<f4", "(3, 4)"), Bytes(40))), "truncated data");
    CHECK_THROWS(parse(npy(dict("<f4", "(2, 4)"), Bytes(48))), "16 bytes of trailing garbage");
    CHECK_THROWS(parse(npy(dict("<f4", "(3, 4)"), Bytes(40))), "lies about the shape");
    Bytes b = npy(dict("<f4", "(1,)"), Bytes(4));
    b.resize(40);
    CHECK_THROWS(parse(b), "truncated header");
    b = npy(dict("<f4", "(1,)"), Bytes(4));
    b[8] = 0xff;
    b[9] = 0xff;
    CHECK_THROWS(parse(b), "truncated header");
}

TEST(npy_rejects_oversized_shapes_before_allocating) {
    CHECK_THROWS(parse(npy(dict("<f8", "(1099511627776, 1099511627776)"))), "overflows 64 bits");
    CHECK_THROWS(parse(npy(dict("<f8", "(9223372036854775807,)"))), "overflows 64 bits");
    CHECK_THROWS(parse(npy(dict("<f4", "(34359738368,)"))), "more than the limit of 17179869184 bytes");
    NpyReadOptions small;
    small.max_bytes = 100;
    CHECK_THROWS(parse(npy(dict("<f4", "(26,)"), Bytes(104)), small), "more than the limit of 100 bytes");
    CHECK(parse(npy(dict("<f4", "(25,)"), Bytes(100)), small).count() == 25);
    small.max_header_bytes = 64;
    CHECK_THROWS(parse(npy(dict("<f4", "(25,)") + std::string(100, ' '), Bytes(100)), small), "limit of 64");
}

TEST(npy_messages_are_one_line_and_name_the_file) {
    try {
        parse(npy(dict("<f4", "(1,)") + "\n\n junk", Bytes(4)));
        CHECK(false);
    } catch (const Error& e) {
        const std::string m = e.what();
        CHECK(m.rfind("test.npy: ", 0) == 0);
        CHECK(m.find('\n') == std::string::npos);
    }
}

TEST(npy_file_read_and_atomic_write) {
    const std::string dir = temp_dir();
    const std::string path = dir + "/a.npy";
    const Array a = make_float32({2, 2}, {1.5f, -2.0f, NAN, 0.0f});
    write_npy(path, a);
    const Array b = read_npy(path);
    CHECK(b.shape == a.shape);
    CHECK(b.bytes == a.bytes);
    CHECK(read_file(path, 1 << 20) == encode_npy(a));
    CHECK_THROWS(read_npy(dir + "/missing.npy"), "cannot open");
    CHECK_THROWS(read_npy(dir), "not a regular file");
    CHECK_THROWS(write_npy(dir + "/no/such/dir/a.npy", a), "temporary file");
    // A large file whose header promises more than it holds fails on the size check, not on allocation.
    const Bytes big = npy(dict("<f4", "(1000000000,)"), Bytes(8));
    write_file_atomic(dir + "/big.npy", big.data(), big.size());
    CHECK_THROWS(read_npy(dir + "/big.npy"), "truncated data");
    std::remove(path.c_str());
    std::remove((dir + "/big.npy").c_str());
    CHECK_EQ(rmdir(dir.c_str()), 0);  // nothing else (no temporary file) was left behind
}
