// A dense C-order array of one of numpy's plain numeric dtypes, its bytes in this machine's byte order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace trtverify {

enum class DType { Bool, Int8, Int16, Int32, Int64, UInt8, UInt16, UInt32, UInt64, Float16, Float32, Float64 };

std::size_t itemsize(DType dtype);
char kind(DType dtype);                 // numpy's kind letter: b, i, u or f
const char* dtype_name(DType dtype);    // numpy's name: "float32", "uint8", "bool", ...
std::optional<DType> dtype_from_name(const std::string& name);
// The dtype of numpy kind letter + item size ("f", 4), if trtverify supports it.
std::optional<DType> dtype_from_kind(char kind_letter, std::size_t size);

struct Array {
    DType dtype = DType::Float32;
    std::vector<std::uint64_t> shape;   // empty for a 0-d array (one element)
    std::vector<unsigned char> bytes;   // count() * itemsize(dtype) bytes, native byte order, C order

    std::uint64_t count() const;        // the product of shape
    std::size_t nbytes() const { return bytes.size(); }

    template <class T>
    T at(std::size_t i) const {         // element i reinterpreted as T (T's size must match the dtype)
        T value;
        std::memcpy(&value, bytes.data() + i * sizeof(T), sizeof(T));
        return value;
    }
};

// An array of the given dtype and shape, its bytes zeroed; throws Error when the size overflows.
Array make_array(DType dtype, std::vector<std::uint64_t> shape);
Array make_float32(std::vector<std::uint64_t> shape, const std::vector<float>& values);

// "(3, 4)" as Python prints a tuple, "(5,)" and "()" included; used in messages and in the .npy header.
std::string shape_repr(const std::vector<std::uint64_t>& shape);

// The product of shape times item_size, or nullopt on 64-bit overflow.
std::optional<std::uint64_t> checked_nbytes(const std::vector<std::uint64_t>& shape, std::size_t item_size);

// Every element converted to float32 the way numpy's astype(np.float32) converts it (bool -> 0/1).
std::vector<float> to_float32(const Array& array);
// Element i as double (exact for every float and for integers up to 2**53); for tests and messages.
double element_as_double(const Array& array, std::size_t i);

// IEEE half <-> single/double, bit-exact with numpy's conversions (NaN payloads kept, round to nearest even).
float half_to_float(std::uint16_t bits);
std::uint16_t double_to_half(double value);

bool host_is_little_endian();
void byteswap_items(unsigned char* data, std::size_t count, std::size_t item_size);

}  // namespace trtverify
