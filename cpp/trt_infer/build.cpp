#include "build.h"

#include <NvOnnxParser.h>

#include <chrono>
#include <cstdio>
#include <sys/stat.h>

#include "trtverify/file.h"

namespace trt_infer {

namespace {

using nvinfer1::TacticSource;

struct NamedSource {
    char const* name;
    TacticSource source;
};

// The sources this TensorRT knows, by trtexec's names. cuBLAS and cuDNN tactics are deprecated in 10.x and gone in
// 11; removing one that does not exist is a no-op (with a note), adding one is an error, as in the Python build.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
const NamedSource kSources[] = {
#if NV_TENSORRT_MAJOR < 11
    {"CUBLAS", TacticSource::kCUBLAS},
    {"CUBLAS_LT", TacticSource::kCUBLAS_LT},
    {"CUDNN", TacticSource::kCUDNN},
#endif
    {"EDGE_MASK_CONVOLUTIONS", TacticSource::kEDGE_MASK_CONVOLUTIONS},
    {"JIT_CONVOLUTIONS", TacticSource::kJIT_CONVOLUTIONS},
};
#pragma GCC diagnostic pop

// `mask` with the spec's changes applied; notes go to stderr only when `quiet` is false.
nvinfer1::TacticSources apply_tactic_sources(std::string const& spec, nvinfer1::TacticSources mask, bool quiet) {
    for (auto const& change : trtverify::parse_tactic_sources(spec)) {
        NamedSource const* found = nullptr;
        for (auto const& s : kSources)
            if (change.name == s.name) found = &s;
        if (!found) {
            if (!change.enable) {
                if (!quiet)
                    std::fprintf(stderr, "trt_infer: note: %s is not a tactic source of this TensorRT; nothing to remove\n",
                                 change.name.c_str());
                continue;
            }
            std::string known;
            for (auto const& s : kSources) known += (known.empty() ? "" : ", ") + std::string(s.name);
            throw trtverify::UsageError("tactic source " + change.name + " is not known to TensorRT " +
                                        std::to_string(NV_TENSORRT_MAJOR) + "; available: " + known);
        }
        const auto bit = nvinfer1::TacticSources{1} << static_cast<std::uint32_t>(found->source);
        mask = change.enable ? (mask | bit) : (mask & ~bit);
    }
    return mask;
}

void set_precision(nvinfer1::IBuilderConfig& config, std::string const& precision) {
    using nvinfer1::BuilderFlag;
    if (precision == "fp32") {
        config.clearFlag(BuilderFlag::kTF32);  // strict FP32: TensorRT allows TF32 for FP32 engines by default
        return;
    }
    config.setFlag(BuilderFlag::kTF32);
    if (precision == "fp16") {
#if NV_TENSORRT_MAJOR < 11
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        config.setFlag(BuilderFlag::kFP16);
#pragma GCC diagnostic pop
#else
        throw Error("TensorRT " + std::to_string(NV_TENSORRT_MAJOR) +
                    " has no FP16 builder flag (it takes precision from the model's types); use fp32 or tf32");
#endif
    }
}

}  // namespace

std::vector<char> build_engine(trtverify::InferOptions const& o, Logger& logger) {
    struct stat st {};
    if (stat(o.onnx.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
        throw Error("ONNX model " + o.onnx + " does not exist; run the convert_onnx step first");
    apply_tactic_sources(o.tactic_sources, 0, true);  // an unknown source is an error before any work is done
    Ptr<nvinfer1::IBuilder> builder{nvinfer1::createInferBuilder(logger)};
    if (!builder) throw Error("TensorRT could not create a builder: " + logger.last_error());
#if NV_TENSORRT_MAJOR < 10
    // Required in 8.x for dynamic shapes; 10.x has only explicit batch and deprecates the flag.
    const auto flags = 1U << static_cast<std::uint32_t>(nvinfer1::NetworkDefinitionCreationFlag::kEXPLICIT_BATCH);
#else
    const nvinfer1::NetworkDefinitionCreationFlags flags = 0;
#endif
    Ptr<nvinfer1::INetworkDefinition> network{builder->createNetworkV2(flags)};
    if (!network) throw Error("TensorRT could not create a network: " + logger.last_error());
    Ptr<nvonnxparser::IParser> parser{nvonnxparser::createParser(*network, logger)};
    if (!parser) throw Error("TensorRT could not create the ONNX parser: " + logger.last_error());
    if (!parser->parseFromFile(o.onnx.c_str(), static_cast<int>(nvinfer1::ILogger::Severity::kWARNING))) {
        std::string errors;
        for (int i = 0; i < parser->getNbErrors(); ++i)
            errors += (i ? "; " : "") + std::string(parser->getError(i)->desc());
        throw Error("TensorRT's ONNX parser rejected " + o.onnx + ": " + (errors.empty() ? logger.last_error() : errors) +
                    "; is it a valid ONNX model? re-run the conversion");
    }
    if (network->getNbInputs() != 1 || network->getNbOutputs() != 1)
        throw Error(o.onnx + " has " + std::to_string(network->getNbInputs()) + " inputs and " +
                    std::to_string(network->getNbOutputs()) + " outputs; trt_infer builds engines for one of each");
    nvinfer1::ITensor* input = network->getInput(0);
    const nvinfer1::Dims dims = input->getDimensions();
    for (int i = 1; i < dims.nbDims; ++i)
        if (dims.d[i] < 0)
            throw Error("input '" + std::string(input->getName()) + "' has dynamic non-batch dimensions " +
                        trtverify::dims_repr(to_vector(dims)) + "; only the batch may vary");
    if (dims.nbDims < 1) throw Error("input '" + std::string(input->getName()) + "' has no batch dimension");

    Ptr<nvinfer1::IBuilderConfig> config{builder->createBuilderConfig()};
    if (!config) throw Error("TensorRT could not create a builder config: " + logger.last_error());
    config->setMemoryPoolLimit(nvinfer1::MemoryPoolType::kWORKSPACE, static_cast<std::size_t>(o.workspace_mib) << 20);
    set_precision(*config, o.precision.empty() ? "fp32" : o.precision);
    if (!config->setTacticSources(apply_tactic_sources(o.tactic_sources, config->getTacticSources(), false)))
        throw Error("TensorRT refused the tactic sources '" + o.tactic_sources + "': " + logger.last_error());

    if (dims.d[0] >= 0) {
        // A model with a fixed batch takes no profile (TensorRT refuses one that differs from the static shape).
        std::fprintf(stderr, "trt_infer: note: '%s' has a static batch of %lld; --min/--opt/--max-batch do not apply\n",
                     input->getName(), static_cast<long long>(dims.d[0]));
    } else {
        nvinfer1::IOptimizationProfile* profile = builder->createOptimizationProfile();  // owned by the builder
        using nvinfer1::OptProfileSelector;
        const char* name = input->getName();
        if (!profile || !profile->setDimensions(name, OptProfileSelector::kMIN, with_batch(dims, o.min_batch)) ||
            !profile->setDimensions(name, OptProfileSelector::kOPT, with_batch(dims, o.opt_batch)) ||
            !profile->setDimensions(name, OptProfileSelector::kMAX, with_batch(dims, o.max_batch)) ||
            config->addOptimizationProfile(profile) < 0)
            throw Error("TensorRT refused the optimization profile (batch " + std::to_string(o.min_batch) + "/" +
                        std::to_string(o.opt_batch) + "/" + std::to_string(o.max_batch) + "): " + logger.last_error());
    }

    const auto start = std::chrono::steady_clock::now();
    Ptr<nvinfer1::IHostMemory> plan{builder->buildSerializedNetwork(*network, *config)};
    if (!plan || plan->size() == 0) throw Error("TensorRT could not build the engine: " + logger.last_error());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    trtverify::write_file_atomic(o.engine, plan->data(), plan->size());
    std::fprintf(stderr, "trt_infer: built a %s engine (%zu bytes) in %.2f s: %s\n",
                 o.precision.empty() ? "fp32" : o.precision.c_str(), plan->size(), seconds, o.engine.c_str());
    auto const* bytes = static_cast<char const*>(plan->data());
    return std::vector<char>(bytes, bytes + plan->size());
}

}  // namespace trt_infer
