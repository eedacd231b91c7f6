#include "check.h"
#include "trtverify/cli.h"
#include "trtverify/error.h"

using namespace trtverify;

namespace {

InferOptions parse(std::vector<std::string> args) { return parse_infer_args(args); }

}  // namespace

TEST(cli_defaults_and_values) {
    const auto o = parse({"--engine", "e.trt", "--input", "x.csv", "--output=p.npy"});
    CHECK_EQ(o.engine, "e.trt");
    CHECK_EQ(o.input_format, "csv");
    CHECK_EQ(o.output, "p.npy");
    CHECK_EQ(o.batch, 0u);
    CHECK_EQ(o.warmup, 20u);
    CHECK_EQ(o.iterations, 200u);
    CHECK(o.copies_in_timing);
    CHECK(!o.cuda_graph);
    CHECK(!o.overlap);
    CHECK(o.precision.empty());
    CHECK(parse({"--engine", "e", "--input", "x", "--timing", "t.json", "--overlap"}).overlap);
    const auto b = parse({"--engine", "e", "--onnx", "m.onnx", "--precision", "fp16", "--min-batch", "2",
                          "--opt-batch", "4", "--max-batch", "8", "--workspace-mib", "64", "--tactic-sources",
                          "-CUBLAS,-CUDNN", "--input", "x.npy", "--batch", "3", "--timing", "t.json", "--warmup", "0",
                          "--iterations", "5", "--cuda-graph", "--no-copies-in-timing"});
    CHECK_EQ(b.max_batch, 8u);
    CHECK_EQ(b.input_format, "npy");
    CHECK_EQ(b.warmup, 0u);
    CHECK(b.cuda_graph);
    CHECK(!b.copies_in_timing);
    CHECK(parse({"--help"}).help);
}

TEST(cli_usage_errors) {
    CHECK_THROWS(parse({"--input", "x"}), "--engine is required");
    CHECK_THROWS(parse({"--engine", "e"}), "--input is required");
    CHECK_THROWS(parse({"--engine", "e", "--input", "x", "--bogus"}), "unknown option '--bogus'");
    CHECK_THROWS(parse({"--engine", "e", "--input"}), "--input needs a value");
    CHECK_THROWS(parse({"--engine", "e", "--input", "x", "--batch", "0"}), "--batch needs an integer >= 1");
    CHECK_THROWS(parse({"--engine", "e", "--input", "x", "--batch", "-3"}), "--batch needs an integer");
    CHECK_THROWS(parse({"--engine", "e", "--input", "x", "--iterations", "1e3"}), "--iterations needs an integer");
    CHECK_THROWS(parse({"--engine", "e", "--input", "x", "--precision", "int8"}), "fp32, tf32 or fp16");
    CHECK_THROWS(parse({"--engine", "e", "--input", "x", "--max-batch", "8"}), "only when building");
    CHECK_THROWS(parse({"--engine", "e", "--input", "x", "--overlap", "--cuda-graph"}), "drop --cuda-graph");
    CHECK_THROWS(parse({"--engine", "e", "--input", "x", "--no-copies-in-timing", "--overlap"}), "drop --cuda-graph");
    CHECK_THROWS(parse({"--engine", "e", "--input", "x", "--overlap=1"}), "--overlap takes no value");
    CHECK_THROWS(parse({"--engine", "e", "--onnx", "m", "--input", "x", "--min-batch", "9", "--max-batch", "8"}),
                 "--min-batch (9) <= --opt-batch (32) <= --max-batch (8)");
    CHECK_THROWS(parse({"--engine", "e", "--input", "x", "--input-format", "json"}), "npy or csv");
    CHECK_THROWS(parse({"--engine", "e", "--engine", "f", "--input", "x"}), "given twice");
    CHECK_THROWS(parse({"--engine", "e", "--input", "x", "--cuda-graph=1"}), "takes no value");
    CHECK_THROWS(parse({"--engine", "e", "--onnx", "m", "--input", "x", "--tactic-sources", "CUBLAS"}), "+ or -");
    try {
        parse({"--bogus"});
    } catch (const UsageError&) {
        return;  // usage errors have their own type (exit status 2)
    }
    CHECK(false);
}

TEST(tactic_source_specs) {
    CHECK(parse_tactic_sources("default").empty());
    CHECK(parse_tactic_sources("").empty());
    const auto c = parse_tactic_sources("-CUBLAS, -cublas_lt,+EDGE_MASK_CONVOLUTIONS,");
    CHECK_EQ(c.size(), 3u);
    CHECK(!c[0].enable);
    CHECK_EQ(c[1].name, "CUBLAS_LT");
    CHECK(c[2].enable);
    CHECK_THROWS(parse_tactic_sources("-CU BLAS"), "not a name");
    CHECK_THROWS(parse_tactic_sources("+"), "not a name");
}

TEST(chunks_cover_every_sample_once) {
    const auto c = plan_chunks(10, 4);
    CHECK_EQ(c.size(), 3u);
    CHECK_EQ(c[2].begin, 8u);
    CHECK_EQ(c[2].end, 10u);
    CHECK(plan_chunks(0, 4).empty());
    CHECK_EQ(plan_chunks(8, 4).size(), 2u);
}

TEST(profile_and_shape_checks) {
    check_batch_in_profile(1, 1, 256, "x");
    check_batch_in_profile(256, 1, 256, "x");
    CHECK_THROWS(check_batch_in_profile(300, 1, 256, "input_1"), "outside the engine's optimization profile");
    CHECK_THROWS(check_batch_in_profile(2, 4, 256, "input_1"), "batch 4 to 256");
    check_input_shape({1797, 8, 8, 1}, {-1, 8, 8, 1}, "x");
    CHECK_THROWS(check_input_shape({1797, 64}, {-1, 8, 8, 1}, "x"), "shape (1797, 64) but the engine input 'x' is (-1, 8, 8, 1)");
    CHECK_THROWS(check_input_shape({10, 8, 8, 3}, {-1, 8, 8, 1}, "x"), "(10, 8, 8, 3)");
    CHECK_THROWS(check_input_shape({0, 8, 8, 1}, {-1, 8, 8, 1}, "x"), "no samples");
}

TEST(tiling_repeats_samples_in_order) {
    const auto t = tile_samples({1, 2, 3, 4, 5, 6}, 2, 5);
    CHECK(t == (std::vector<float>{1, 2, 3, 4, 5, 6, 1, 2, 3, 4}));
    CHECK(tile_samples({1, 2, 3, 4}, 2, 1) == (std::vector<float>{1, 2}));
}

TEST(cli_dump_outputs) {
    const auto o = parse({"--engine", "e", "--input", "x.npy", "--dump-outputs", "out"});
    CHECK_EQ(o.dump_outputs, "out");
    CHECK_THROWS(parse({"--engine", "e", "--input", "x.npy", "--dump-outputs", "d", "--output", "p.npy"}),
                 "without --output and --timing");
    CHECK_THROWS(parse({"--engine", "e", "--input", "x.npy", "--dump-outputs", "d", "--timing", "t.json"}),
                 "without --output and --timing");
    CHECK_EQ(dump_file_name("StatefulPartitionedCall/model/conv/Relu:0", 7),
             "0007_StatefulPartitionedCall_model_conv_Relu_0.npy");
    CHECK_EQ(dump_file_name("../x", 12345), "12345_.._x.npy");  // no '/' survives: the file stays in the folder
    CHECK_EQ(dump_file_name(std::string(200, 'a'), 0).size(), 4u + 1u + 96u + 4u);
}
