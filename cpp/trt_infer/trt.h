// The TensorRT and CUDA plumbing trt_infer shares: a logger, checked CUDA calls, owning pointers and buffers.
// Written against the tensor-name API, which TensorRT 8.5 and 10.x (and 11) share; NV_TENSORRT_MAJOR guards the rest.
#pragma once

#include <NvInfer.h>
#include <NvInferVersion.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "trtverify/error.h"

namespace trt_infer {

using trtverify::Error;

// Prints TensorRT's warnings and errors to stderr as they come, and keeps the last error for the one-line message
// of a failure.
class Logger : public nvinfer1::ILogger {
public:
    void log(Severity severity, char const* message) noexcept override;
    std::string last_error() const { return last_error_.empty() ? "no message from TensorRT" : last_error_; }

private:
    std::string last_error_;
};

// Every TensorRT object is released with delete (8.x deprecated destroy(); 10.x removed it).
template <class T>
using Ptr = std::unique_ptr<T>;

void cuda_check(cudaError_t status, char const* call);
#define CUDA_CHECK(call) ::trt_infer::cuda_check((call), #call)

// The TensorRT library's version at run time, "8.5.3"; a warning goes to stderr if it is not the headers' version.
std::string tensorrt_version();
std::string device_name();

std::vector<std::int64_t> to_vector(nvinfer1::Dims const& dims);
nvinfer1::Dims with_batch(nvinfer1::Dims dims, std::int64_t batch);
char const* data_type_name(nvinfer1::DataType type);

// One owning CUDA handle, freed by `Free` exactly once: the idea of NVIDIA's samples' GenericBuffer (an allocator and
// a deleter as policy) for every resource trt_infer holds. Move-only, so a runner can replace its buffers by
// assignment and a function can return one; a moved-from or default one holds nothing and frees nothing.
template <class Handle, cudaError_t (*Free)(Handle)>
class Owned {
public:
    Owned() = default;
    ~Owned() { reset(); }
    Owned(Owned&& other) noexcept : handle_(std::exchange(other.handle_, Handle{})) {}
    Owned& operator=(Owned&& other) noexcept {
        if (this != &other) {
            reset();
            handle_ = std::exchange(other.handle_, Handle{});
        }
        return *this;
    }
    Owned(Owned const&) = delete;
    Owned& operator=(Owned const&) = delete;

    Handle get() const { return handle_; }
    // Where a creating call writes the new handle (cudaMalloc(&p, ...) becomes cudaMalloc(x.out(), ...)); frees the
    // old one first.
    Handle* out() {
        reset();
        return &handle_;
    }
    void reset() noexcept {
        if (handle_) Free(handle_);  // a failure to free has no one to report to in a destructor
        handle_ = Handle{};
    }

private:
    Handle handle_{};
};

using DeviceBuffer = Owned<void*, cudaFree>;
using PinnedBuffer = Owned<void*, cudaFreeHost>;
using Stream = Owned<cudaStream_t, cudaStreamDestroy>;
using Event = Owned<cudaEvent_t, cudaEventDestroy>;
using Graph = Owned<cudaGraph_t, cudaGraphDestroy>;
using GraphExec = Owned<cudaGraphExec_t, cudaGraphExecDestroy>;

// Made by the CUDA calls that create them, checked (a zero-byte buffer gets one byte, so its address is valid).
DeviceBuffer device_buffer(std::size_t bytes);
PinnedBuffer pinned_buffer(std::size_t bytes);
Stream make_stream();
Event make_event();

// A pinned buffer's memory as the floats trt_infer keeps in it.
inline float* floats(PinnedBuffer const& buffer) { return static_cast<float*>(buffer.get()); }

// Milliseconds between two recorded events.
double elapsed_ms(Event const& start, Event const& end);

// The most device memory in use since construction (cudaMemGetInfo, device-wide), sampled at each call of sample().
class DeviceMemoryWatch {
public:
    DeviceMemoryWatch();
    void sample();
    std::uint64_t peak_bytes() const { return peak_; }

private:
    std::size_t free_at_start_ = 0;
    std::uint64_t peak_ = 0;
};

std::uint64_t peak_host_rss_bytes();

}  // namespace trt_infer
