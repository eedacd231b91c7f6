#include "trtverify/cli.h"

#include <cctype>
#include <algorithm>
#include <cstdlib>
#include <set>

#include "trtverify/error.h"

namespace trtverify {

std::string infer_usage() {
    return R"(usage: trt_infer --engine PATH [--onnx PATH] [--precision fp32|tf32|fp16]
                 [--min-batch N --opt-batch N --max-batch N] [--workspace-mib N] [--tactic-sources SPEC]
                 --input PATH [--input-format npy|csv] [--output PATH.npy]
                 [--batch N] [--timing PATH.json] [--warmup N] [--iterations N] [--cuda-graph]
                 [--no-copies-in-timing] [--overlap] [--dump-outputs DIR]

Runs a TensorRT engine on float32 samples (N, ...) from .npy or the pipeline's CSV and writes the predictions
(float32, (N, classes)) as .npy. With --onnx, first builds the engine from ONNX (one optimization profile on the
batch dimension) and saves it to --engine.

  --engine PATH          serialized engine to load (or to write, with --onnx)
  --onnx PATH            build the engine from this ONNX model first
  --precision P          fp32 (strict: TF32 off), tf32 (TensorRT's default), fp16; recorded in --timing
  --min/opt/max-batch N  the optimization profile on the first input's batch dimension (1/32/256)
  --workspace-mib N      builder workspace limit (1024)
  --tactic-sources SPEC  like trtexec: -CUBLAS,-CUBLAS_LT,-CUDNN,+EDGE_MASK_CONVOLUTIONS (default: TensorRT's)
  --input PATH           samples, .npy (any numeric dtype, converted to float32) or .csv
  --input-format F       npy or csv (default: from the extension)
  --output PATH.npy      predictions, written under a temporary name and renamed when complete
  --batch N              samples per enqueue (default: the profile's max batch)
  --timing PATH.json     time --iterations runs of one batch after --warmup runs (20, 200)
  --cuda-graph           time CUDA graph launches of the captured enqueue
  --no-copies-in-timing  leave the host-device copies out of the timed loop
  --overlap              throughput mode: two batches in flight, the copies of one overlapping the other's
                         compute (docs/benchmarks.md, "Overlapped copies"); not with the two options above
  --dump-outputs DIR     run all samples as one batch and write EVERY output tensor of the engine (a localization
                         engine marks intermediate tensors as outputs) to DIR as .npy, with DIR/index.json mapping
                         each tensor name to its file (written last); not with --output or --timing

Exit status: 0 success, 1 error (one line on stderr), 2 usage error.)";
}

namespace {

std::uint64_t parse_count(const std::string& option, const std::string& text, std::uint64_t min) {
    std::uint64_t value = 0;
    bool ok = !text.empty() && text.size() <= 12;
    for (char c : text) ok = ok && std::isdigit(static_cast<unsigned char>(c));
    if (ok) value = std::strtoull(text.c_str(), nullptr, 10);
    if (!ok || value < min)
        throw UsageError(option + " needs an integer >= " + std::to_string(min) + ", not '" + text + "'");
    return value;
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

InferOptions parse_infer_args(const std::vector<std::string>& args) {
    InferOptions o;
    std::set<std::string> seen;
    const std::set<std::string> build_only = {"--min-batch", "--opt-batch", "--max-batch", "--workspace-mib",
                                              "--tactic-sources"};
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string name = args[i], value;
        bool has_value = false;
        if (const auto eq = name.find('='); name.rfind("--", 0) == 0 && eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            has_value = true;
        }
        if (name == "-h" || name == "--help") {
            o.help = true;
            return o;
        }
        if (!seen.insert(name).second) throw UsageError(name + " is given twice");
        if (name == "--cuda-graph" || name == "--no-copies-in-timing" || name == "--overlap") {
            if (has_value) throw UsageError(name + " takes no value");
            if (name == "--cuda-graph") o.cuda_graph = true;
            else if (name == "--overlap") o.overlap = true;
            else o.copies_in_timing = false;
            continue;
        }
        auto take = [&]() -> std::string {
            if (has_value) return value;
            if (i + 1 >= args.size()) throw UsageError(name + " needs a value");
            return args[++i];
        };
        if (name == "--engine") o.engine = take();
        else if (name == "--onnx") o.onnx = take();
        else if (name == "--precision") o.precision = take();
        else if (name == "--min-batch") o.min_batch = parse_count(name, take(), 1);
        else if (name == "--opt-batch") o.opt_batch = parse_count(name, take(), 1);
        else if (name == "--max-batch") o.max_batch = parse_count(name, take(), 1);
        else if (name == "--workspace-mib") o.workspace_mib = parse_count(name, take(), 1);
        else if (name == "--tactic-sources") o.tactic_sources = take();
        else if (name == "--input") o.input = take();
        else if (name == "--input-format") o.input_format = take();
        else if (name == "--output") o.output = take();
        else if (name == "--batch") o.batch = parse_count(name, take(), 1);
        else if (name == "--timing") o.timing = take();
        else if (name == "--dump-outputs") o.dump_outputs = take();
        else if (name == "--warmup") o.warmup = parse_count(name, take(), 0);
        else if (name == "--iterations") o.iterations = parse_count(name, take(), 1);
        else throw UsageError("unknown option '" + args[i] + "' (see --help)");
    }
    if (o.engine.empty()) throw UsageError("--engine is required");
    if (o.input.empty()) throw UsageError("--input is required");
    if (!o.precision.empty() && o.precision != "fp32" && o.precision != "tf32" && o.precision != "fp16")
        throw UsageError("--precision must be fp32, tf32 or fp16, not '" + o.precision + "'");
    if (o.onnx.empty()) {
        for (const auto& option : build_only)
            if (seen.count(option)) throw UsageError(option + " applies only when building an engine with --onnx");
    } else if (!(o.min_batch <= o.opt_batch && o.opt_batch <= o.max_batch)) {
        throw UsageError("the profile needs --min-batch (" + std::to_string(o.min_batch) + ") <= --opt-batch (" +
                         std::to_string(o.opt_batch) + ") <= --max-batch (" + std::to_string(o.max_batch) + ")");
    }
    if (!o.dump_outputs.empty() && (!o.output.empty() || !o.timing.empty()))
        throw UsageError("--dump-outputs runs one batch of every output; give it without --output and --timing");
    // Overlap is about hiding the copies behind compute, one context per batch in flight: without copies there is
    // nothing to hide, and a graph per context is not implemented (Python's graphs need cuda-python anyway).
    if (o.overlap && (o.cuda_graph || !o.copies_in_timing))
        throw UsageError("--overlap times the copies overlapped with compute; "
                         "drop --cuda-graph and --no-copies-in-timing");
    if (o.max_batch > INT32_MAX) throw UsageError("--max-batch must fit in 32 bits");
    if (o.input_format.empty()) o.input_format = ends_with(o.input, ".csv") ? "csv" : "npy";
    if (o.input_format != "npy" && o.input_format != "csv")
        throw UsageError("--input-format must be npy or csv, not '" + o.input_format + "'");
    parse_tactic_sources(o.tactic_sources);  // a malformed spec is a usage error before any work starts
    return o;
}

std::vector<TacticChange> parse_tactic_sources(const std::string& spec) {
    std::vector<TacticChange> changes;
    std::string lower;
    for (char c : spec) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.find_first_not_of(" \t") == std::string::npos || lower == "default") return changes;
    std::size_t start = 0;
    while (start <= spec.size()) {
        const std::size_t comma = std::min(spec.find(',', start), spec.size());
        std::string token = spec.substr(start, comma - start);
        token.erase(0, token.find_first_not_of(" \t"));
        token.erase(token.find_last_not_of(" \t") + 1);
        start = comma + 1;
        if (token.empty()) continue;
        if (token[0] != '+' && token[0] != '-')
            throw UsageError("tactic source '" + token + "' must start with + or - (like trtexec's --tacticSources)");
        std::string name;
        for (char c : token.substr(1)) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (name.empty() || name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != std::string::npos)
            throw UsageError("tactic source '" + token + "' is not a name like CUBLAS or EDGE_MASK_CONVOLUTIONS");
        changes.push_back({token[0] == '+', name});
    }
    return changes;
}

std::vector<Chunk> plan_chunks(std::uint64_t n, std::uint64_t batch) {
    if (batch == 0) throw Error("internal error: a batch of 0 samples");
    std::vector<Chunk> chunks;
    for (std::uint64_t begin = 0; begin < n; begin += batch) chunks.push_back({begin, std::min(n, begin + batch)});
    return chunks;
}

void check_batch_in_profile(std::uint64_t batch, std::int64_t min, std::int64_t max, const std::string& input_name) {
    if (static_cast<std::int64_t>(batch) < min || static_cast<std::int64_t>(batch) > max)
        throw Error("a batch of " + std::to_string(batch) + " samples is outside the engine's optimization profile for '" +
                    input_name + "' (batch " + std::to_string(min) + " to " + std::to_string(max) +
                    "); choose --batch within it, or rebuild the engine with a wider profile");
}

std::string dims_repr(const std::vector<std::int64_t>& dims) {
    std::string s = "(";
    for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + (dims.size() == 1 ? ",)" : ")");
}

void check_input_shape(const std::vector<std::uint64_t>& samples_shape, const std::vector<std::int64_t>& engine_dims,
                       const std::string& input_name) {
    bool ok = samples_shape.size() == engine_dims.size() && !samples_shape.empty();
    for (std::size_t i = 1; ok && i < engine_dims.size(); ++i)
        ok = engine_dims[i] < 0 || static_cast<std::uint64_t>(engine_dims[i]) == samples_shape[i];
    if (!ok) {
        std::string shape = "(";
        for (std::size_t i = 0; i < samples_shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(samples_shape[i]);
        shape += samples_shape.size() == 1 ? ",)" : ")";
        throw Error("the input samples have shape " + shape + " but the engine input '" + input_name + "' is " +
                    dims_repr(engine_dims) + " (-1: any); pass samples of that shape (N first)");
    }
    if (samples_shape[0] == 0) throw Error("the input has no samples (shape starts with 0)");
}

std::string dump_file_name(const std::string& tensor, std::size_t index) {
    std::string name = std::to_string(index);
    name.insert(0, name.size() < 4 ? 4 - name.size() : 0, '0');
    name += '_';
    for (std::size_t i = 0; i < tensor.size() && i < 96; ++i) {
        const unsigned char c = static_cast<unsigned char>(tensor[i]);
        name += std::isalnum(c) || c == '.' || c == '_' || c == '-' ? static_cast<char>(c) : '_';
    }
    return name + ".npy";
}

std::vector<float> tile_samples(const std::vector<float>& samples, std::uint64_t sample_size, std::uint64_t batch) {
    if (sample_size == 0 || samples.size() < sample_size || samples.size() % sample_size)
        throw Error("internal error: tile_samples needs whole samples");
    std::vector<float> out(static_cast<std::size_t>(sample_size * batch));
    const std::size_t available = samples.size() / sample_size;
    for (std::size_t b = 0; b < batch; ++b) {
        const std::size_t from = (b % available) * sample_size;
        std::copy(samples.begin() + from, samples.begin() + from + sample_size, out.begin() + b * sample_size);
    }
    return out;
}

}  // namespace trtverify
