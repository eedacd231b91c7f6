// trt_infer's command line and the batching arithmetic, kept free of TensorRT and CUDA so that CI tests them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace trtverify {

struct InferOptions {
    std::string engine, onnx;
    std::string precision;  // fp32|tf32|fp16; empty when not given
    std::uint64_t min_batch = 1, opt_batch = 32, max_batch = 256;
    std::uint64_t workspace_mib = 1024;
    std::string tactic_sources = "default";
    std::string input, input_format;  // npy|csv, from the extension when not given
    std::string output;
    std::uint64_t batch = 0;  // 0: the profile's max batch
    std::string timing;
    std::string dump_outputs;  // a folder: every output tensor as .npy plus index.json (localization engines)
    std::uint64_t warmup = 20, iterations = 200;
    bool cuda_graph = false;
    bool copies_in_timing = true;
    bool overlap = false;  // --timing in throughput mode: copies of one batch overlap another's compute
    bool help = false;
};

inline constexpr const char* kPrecisions[] = {"fp32", "tf32", "fp16"};

// Throws UsageError with one line saying what is wrong.
InferOptions parse_infer_args(const std::vector<std::string>& args);
std::string infer_usage();

// A trtexec-style tactic source spec ("-CUBLAS,-CUBLAS_LT,+EDGE_MASK_CONVOLUTIONS"); "default" or "" is empty.
struct TacticChange {
    bool enable;
    std::string name;  // upper case, as in TensorRT's TacticSource enum without the leading k
};
std::vector<TacticChange> parse_tactic_sources(const std::string& spec);

// [begin, end) sample ranges of at most `batch` samples covering n samples.
struct Chunk {
    std::uint64_t begin, end;
};
std::vector<Chunk> plan_chunks(std::uint64_t n, std::uint64_t batch);

// Throws Error unless min <= batch <= max, naming the option to change.
void check_batch_in_profile(std::uint64_t batch, std::int64_t min, std::int64_t max, const std::string& input_name);

// Throws Error unless the samples' shape (N, ...) fits the engine input's dims (-1 or the profile's batch, ...).
void check_input_shape(const std::vector<std::uint64_t>& samples_shape, const std::vector<std::int64_t>& engine_dims,
                       const std::string& input_name);

// `batch` samples of `sample_size` floats taken from `samples` in order, starting again when they run out.
std::vector<float> tile_samples(const std::vector<float>& samples, std::uint64_t sample_size, std::uint64_t batch);

std::string dims_repr(const std::vector<std::int64_t>& dims);

// The file that --dump-outputs writes output `index` (in the engine's order) named `tensor` to: the index, then the
// name with every character outside [A-Za-z0-9._-] replaced by '_', at most 96 of them, then ".npy". TensorRT names
// tensors after the model's ("StatefulPartitionedCall/model/conv/Relu:0"); the index keeps two such names apart.
std::string dump_file_name(const std::string& tensor, std::size_t index);

}  // namespace trtverify
