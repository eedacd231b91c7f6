// trt_infer: run (and optionally build) a TensorRT engine on samples from .npy or the pipeline's CSV, write the
// predictions as .npy, and time one batch. See README.md for the command line, the timing JSON and exit codes.
#include <cstdio>
#include <new>
#include <string>
#include <vector>

#include "build.h"
#include "dump.h"
#include "runner.h"
#include "trt.h"
#include "trtverify/cli.h"
#include "trtverify/csv.h"
#include "trtverify/file.h"
#include "trtverify/json.h"
#include "trtverify/npy.h"
#include "trtverify/timing.h"

namespace trt_infer {

namespace {

using trtverify::InferOptions;

trtverify::Json stats_json(std::vector<double> const& times_ms) {
    const trtverify::LatencyStats s = trtverify::summarize(times_ms);
    trtverify::Json j = trtverify::Json::object();
    j.set("mean", s.mean).set("p50", s.p50).set("p90", s.p90).set("p95", s.p95).set("p99", s.p99);
    j.set("min", s.min).set("max", s.max);
    return j;
}

trtverify::Json shape_json(std::vector<std::uint64_t> const& shape) {
    trtverify::Json j = trtverify::Json::array();
    for (auto d : shape) j.push(static_cast<unsigned long long>(d));
    return j;
}

int run(InferOptions const& o) {
    // The user's files first, so that a wrong path is reported before CUDA or TensorRT start.
    const trtverify::Array samples =
        o.input_format == "csv" ? trtverify::read_csv(o.input) : trtverify::read_npy(o.input);
    if (samples.shape.empty()) throw Error(o.input + " holds a 0-d array; trt_infer needs samples (N, ...)");
    const std::vector<float> values = trtverify::to_float32(samples);
    std::vector<char> plan;
    if (o.onnx.empty()) {
        const auto bytes = trtverify::read_file(o.engine, std::uint64_t{8} << 30);
        plan.assign(bytes.begin(), bytes.end());
    }

    Logger logger;
    DeviceMemoryWatch memory;  // before the engine exists: its and our allocations count, the CUDA context not
    const std::string version = tensorrt_version();
    if (!o.onnx.empty()) plan = build_engine(o, logger);
    if (!o.dump_outputs.empty()) {  // localization: every output of a debug engine, in its own code path
        dump_outputs(o, plan, samples, logger);
        return 0;
    }

    Runner runner(plan, logger, memory);
    const EngineIO& io = runner.io();
    const std::uint64_t batch = o.batch ? o.batch : static_cast<std::uint64_t>(io.max_batch);
    trtverify::check_input_shape(samples.shape, io.input_dims, io.input);

    if (!o.output.empty() || o.timing.empty()) {
        const trtverify::Array predictions = runner.predict(values, samples.shape, batch);
        if (!o.output.empty()) trtverify::write_npy(o.output, predictions);
        std::fprintf(stderr, "trt_infer: predicted %llu samples in batches of %llu%s%s\n",
                     static_cast<unsigned long long>(samples.shape[0]), static_cast<unsigned long long>(batch),
                     o.output.empty() ? "" : ": ", o.output.c_str());
    }
    if (o.timing.empty()) return 0;

    const std::uint64_t sample_size = samples.count() / samples.shape[0];
    const std::vector<float> tiled = trtverify::tile_samples(values, sample_size, batch);
    const Timings t = o.overlap ? runner.time_overlapped(tiled, batch, o.warmup, o.iterations)
                                : runner.time(tiled, batch, o.warmup, o.iterations, o.cuda_graph, o.copies_in_timing);
    const trtverify::LatencyStats end_to_end = trtverify::summarize(t.end_to_end_ms);
    std::vector<std::uint64_t> input_shape = samples.shape, output_shape = {batch};
    input_shape[0] = batch;
    for (std::size_t i = 1; i < runner.output_dims().size(); ++i)
        output_shape.push_back(static_cast<std::uint64_t>(runner.output_dims()[i]));
    trtverify::Json j = trtverify::Json::object();
    j.set("tool", "trt_infer").set("tensorrt_version", version).set("device", device_name());
    j.set("precision", o.precision.empty() ? "unknown" : o.precision);
    j.set("batch", static_cast<unsigned long long>(batch));
    j.set("warmup", static_cast<unsigned long long>(o.warmup));
    j.set("iterations", static_cast<unsigned long long>(o.iterations));
    j.set("cuda_graph", o.cuda_graph);
    j.set("overlap", o.overlap);  // end_to_end_ms then holds the intervals between completions
    if (o.overlap) j.set("host_span_ms", t.host_span_ms);
    j.set("gpu_compute_ms", stats_json(t.gpu_compute_ms));
    j.set("end_to_end_ms", stats_json(t.end_to_end_ms));
    j.set("throughput_samples_per_s", trtverify::throughput(batch, end_to_end.mean));
    j.set("peak_gpu_memory_bytes", static_cast<unsigned long long>(memory.peak_bytes()));
    j.set("peak_host_rss_bytes", static_cast<unsigned long long>(peak_host_rss_bytes()));
    j.set("copies_included", o.copies_in_timing);
    j.set("timer", "cuda_events");
    j.set("percentile_method", "linear");
    j.set("engine", o.engine).set("input", o.input);
    j.set("input_shape", shape_json(input_shape)).set("output_shape", shape_json(output_shape));
    trtverify::write_json(o.timing, j);
    std::fprintf(stderr, "trt_infer: batch %llu: end to end mean %.4f ms (p99 %.4f), %.1f samples/s: %s\n",
                 static_cast<unsigned long long>(batch), end_to_end.mean, end_to_end.p99,
                 trtverify::throughput(batch, end_to_end.mean), o.timing.c_str());
    return 0;
}

// Errors are one line on stderr, the last one the program prints.
void print_error(std::string message) {
    for (auto& c : message)
        if (c == '\n' || c == '\r') c = ' ';
    std::fprintf(stderr, "trt_infer: error: %s\n", message.c_str());
}

}  // namespace

}  // namespace trt_infer

int main(int argc, char** argv) {
    try {
        const trtverify::InferOptions options =
            trtverify::parse_infer_args(std::vector<std::string>(argv + 1, argv + argc));
        if (options.help) {
            std::printf("%s\n", trtverify::infer_usage().c_str());
            return 0;
        }
        return trt_infer::run(options);
    } catch (trtverify::UsageError const& e) {
        trt_infer::print_error(std::string(e.what()) + " (trt_infer --help shows the options)");
        return 2;
    } catch (trtverify::Error const& e) {
        trt_infer::print_error(e.what());
        return 1;
    } catch (std::bad_alloc const&) {
        trt_infer::print_error("out of host memory");
        return 1;
    } catch (std::exception const& e) {
        trt_infer::print_error(std::string("internal error (a bug in trt_infer): ") + e.what());
        return 1;
    }
}
