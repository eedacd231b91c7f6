// The TensorRT and CUDA plumbing trt_infer shares: a logger, checked CUDA calls, owning pointers and buffers.
// Written against the tensor-name API, which TensorRT 8.5 and 10.x (and 11) share; NV_TENSORRT_MAJOR guards the rest.
#pragma once

#include <NvInfer.h>
#include <NvInferVersion.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
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

// Device memory, pinned host memory, a stream, events and a CUDA graph, each freed by its destructor.
class DeviceBuffer {
public:
    explicit DeviceBuffer(std::size_t bytes);
    ~DeviceBuffer();
    DeviceBuffer(DeviceBuffer const&) = delete;
    DeviceBuffer& operator=(DeviceBuffer const&) = delete;
    void* get() const { return ptr_; }

private:
    void* ptr_ = nullptr;
};

class PinnedBuffer {
public:
    explicit PinnedBuffer(std::size_t bytes);
    ~PinnedBuffer();
    PinnedBuffer(PinnedBuffer const&) = delete;
    PinnedBuffer& operator=(PinnedBuffer const&) = delete;
    float* get() const { return static_cast<float*>(ptr_); }

private:
    void* ptr_ = nullptr;
};

class Stream {
public:
    Stream();
    ~Stream();
    Stream(Stream const&) = delete;
    Stream& operator=(Stream const&) = delete;
    cudaStream_t get() const { return stream_; }

private:
    cudaStream_t stream_ = nullptr;
};

class Event {
public:
    Event();
    ~Event();
    Event(Event const&) = delete;
    Event& operator=(Event const&) = delete;
    cudaEvent_t get() const { return event_; }

private:
    cudaEvent_t event_ = nullptr;
};

class Graph {
public:
    Graph() = default;
    ~Graph();
    Graph(Graph const&) = delete;
    Graph& operator=(Graph const&) = delete;
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
};

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
