// Runs a deserialized engine: predictions in chunks of a batch, and timed runs of one batch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "trt.h"
#include "trtverify/array.h"

namespace trt_infer {

struct EngineIO {
    std::string input, output;
    std::vector<std::int64_t> input_dims;  // as the engine reports them: -1 for the dynamic batch
    std::int64_t min_batch = 0, max_batch = 0;  // optimization profile 0
};

struct Timings {
    std::vector<double> gpu_compute_ms;  // enqueue (or graph launch) alone
    // One batch: host-to-device copy + enqueue + device-to-host copy (unless left out). Overlapped: the interval
    // between consecutive batches' completions (end of their device-to-host copies), the steady-state period.
    std::vector<double> end_to_end_ms;
    double host_span_ms = 0;  // overlapped: the host clock from the first timed upload's issue to the last completion
};

class Runner {
public:
    Runner(std::vector<char> const& plan, Logger& logger, DeviceMemoryWatch& memory);
    EngineIO const& io() const { return io_; }

    // Checks the samples' shape (N, ...) against the engine input, runs them in chunks of `batch` and returns the
    // output as (N, ...).
    trtverify::Array predict(std::vector<float> const& samples, std::vector<std::uint64_t> const& shape,
                             std::uint64_t batch);

    // `warmup` untimed and `iterations` timed runs of one batch (`batch_samples` holds exactly `batch` samples).
    Timings time(std::vector<float> const& batch_samples, std::uint64_t batch, std::uint64_t warmup,
                 std::uint64_t iterations, bool cuda_graph, bool copies);
    // The same in throughput mode (--overlap): two batches in flight on the one execution context, each with its
    // own buffers; enqueues serialized on the runner's stream, copies on their own streams, so batch i+1's upload and
    // batch i-1's download run during batch i's compute.
    Timings time_overlapped(std::vector<float> const& batch_samples, std::uint64_t batch, std::uint64_t warmup,
                            std::uint64_t iterations);

    std::vector<std::int64_t> output_dims() const { return output_dims_; }

private:
    void set_batch(std::uint64_t batch);  // input shape, output dims, buffers big enough, tensor addresses
    void enqueue();

    Logger& logger_;
    DeviceMemoryWatch& memory_;
    Ptr<nvinfer1::IRuntime> runtime_;
    Ptr<nvinfer1::ICudaEngine> engine_;
    Ptr<nvinfer1::IExecutionContext> context_;
    Stream stream_;
    EngineIO io_;
    std::uint64_t sample_size_ = 1;  // input floats per sample
    std::uint64_t output_size_ = 0;  // output floats per sample
    std::vector<std::int64_t> output_dims_;
    std::uint64_t capacity_ = 0;     // samples the buffers hold
    DeviceBuffer device_in_, device_out_;
    PinnedBuffer host_in_, host_out_;
};

}  // namespace trt_infer
