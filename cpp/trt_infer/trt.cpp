#include "trt.h"

#include <sys/resource.h>

#include <cstdio>
#include <type_traits>

namespace trt_infer {

void Logger::log(Severity severity, char const* message) noexcept {
    if (severity > Severity::kWARNING) return;
    std::string text = message ? message : "";
    for (auto& c : text)
        if (c == '\n' || c == '\r') c = ' ';
    char const* level = severity == Severity::kWARNING ? "warning" : "error";
    std::fprintf(stderr, "trt_infer: TensorRT %s: %s\n", level, text.c_str());
    if (severity <= Severity::kERROR) last_error_ = text;
}

void cuda_check(cudaError_t status, char const* call) {
    if (status == cudaSuccess) return;
    throw Error(std::string("CUDA call ") + call + " failed: " + cudaGetErrorName(status) + " (" +
                cudaGetErrorString(status) + ")");
}

std::string tensorrt_version() {
    const int v = getInferLibVersion();
#if NV_TENSORRT_MAJOR >= 10
    const int major = v / 10000, minor = (v / 100) % 100, patch = v % 100;  // (MAJOR * 100 + MINOR) * 100 + PATCH
#else
    const int major = v / 1000, minor = (v / 100) % 10, patch = v % 100;  // MAJOR * 1000 + MINOR * 100 + PATCH
#endif
    const std::string version = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
    const std::string headers = std::to_string(NV_TENSORRT_MAJOR) + "." + std::to_string(NV_TENSORRT_MINOR) + "." +
                                std::to_string(NV_TENSORRT_PATCH);
    if (version != headers)
        std::fprintf(stderr, "trt_infer: warning: built with TensorRT %s headers, running with TensorRT %s\n",
                     headers.c_str(), version.c_str());
    return version;
}

std::string device_name() {
    int device = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    return prop.name;
}

std::vector<std::int64_t> to_vector(nvinfer1::Dims const& dims) {
    if (dims.nbDims < 0) throw Error("TensorRT returned an invalid shape (the tensor name is wrong?)");
    return std::vector<std::int64_t>(dims.d, dims.d + dims.nbDims);
}

nvinfer1::Dims with_batch(nvinfer1::Dims dims, std::int64_t batch) {
    dims.d[0] = static_cast<std::remove_reference_t<decltype(dims.d[0])>>(batch);  // int32_t in 8.x, int64_t in 10.x
    return dims;
}

char const* data_type_name(nvinfer1::DataType type) {
    switch (type) {
        case nvinfer1::DataType::kFLOAT: return "FLOAT";
        case nvinfer1::DataType::kHALF: return "HALF";
        case nvinfer1::DataType::kINT8: return "INT8";
        case nvinfer1::DataType::kINT32: return "INT32";
        case nvinfer1::DataType::kBOOL: return "BOOL";
        default: return "another type";
    }
}

// What the runner relies on: a buffer can be replaced by assignment and returned, never copied (a double free).
static_assert(std::is_nothrow_move_assignable_v<DeviceBuffer> && std::is_nothrow_move_constructible_v<DeviceBuffer>);
static_assert(!std::is_copy_constructible_v<PinnedBuffer> && !std::is_copy_assignable_v<PinnedBuffer>);

DeviceBuffer device_buffer(std::size_t bytes) {
    DeviceBuffer buffer;
    CUDA_CHECK(cudaMalloc(buffer.out(), bytes ? bytes : 1));
    return buffer;
}

PinnedBuffer pinned_buffer(std::size_t bytes) {
    PinnedBuffer buffer;
    CUDA_CHECK(cudaMallocHost(buffer.out(), bytes ? bytes : 1));
    return buffer;
}

Stream make_stream() {
    Stream stream;
    CUDA_CHECK(cudaStreamCreateWithFlags(stream.out(), cudaStreamNonBlocking));
    return stream;
}

Event make_event() {
    Event event;
    CUDA_CHECK(cudaEventCreate(event.out()));
    return event;
}

double elapsed_ms(Event const& start, Event const& end) {
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), end.get()));
    return ms;
}

DeviceMemoryWatch::DeviceMemoryWatch() {
    std::size_t total = 0;
    CUDA_CHECK(cudaFree(nullptr));  // create the CUDA context first: it is not ours to count
    CUDA_CHECK(cudaMemGetInfo(&free_at_start_, &total));
}

void DeviceMemoryWatch::sample() {
    std::size_t free = 0, total = 0;
    CUDA_CHECK(cudaMemGetInfo(&free, &total));
    if (free < free_at_start_ && free_at_start_ - free > peak_) peak_ = free_at_start_ - free;
}

std::uint64_t peak_host_rss_bytes() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<std::uint64_t>(usage.ru_maxrss) * 1024;  // Linux reports kilobytes
}

}  // namespace trt_infer
