#include "dump.h"

#include <filesystem>
#include <string>

#include "trtverify/json.h"
#include "trtverify/npy.h"

namespace trt_infer {

namespace {

using trtverify::DType;

// The .npy dtype that holds a TensorRT tensor's bytes unchanged (bit-for-bit comparison needs no conversion).
DType npy_dtype(nvinfer1::DataType type, std::string const& name) {
    switch (type) {
        case nvinfer1::DataType::kFLOAT: return DType::Float32;
        case nvinfer1::DataType::kHALF: return DType::Float16;
        case nvinfer1::DataType::kINT8: return DType::Int8;
        case nvinfer1::DataType::kINT32: return DType::Int32;
        case nvinfer1::DataType::kBOOL: return DType::Bool;
        case nvinfer1::DataType::kUINT8: return DType::UInt8;
#if NV_TENSORRT_MAJOR >= 10
        case nvinfer1::DataType::kINT64: return DType::Int64;
#endif
        default: throw Error("the engine's output '" + name + "' has a data type .npy cannot hold unchanged");
    }
}

struct Output {
    std::string name;
    trtverify::Array host;
    DeviceBuffer device;
};

}  // namespace

void dump_outputs(trtverify::InferOptions const& o, std::vector<char> const& plan, trtverify::Array const& samples,
                  Logger& logger) {
    Ptr<nvinfer1::IRuntime> runtime(nvinfer1::createInferRuntime(logger));
    if (!runtime) throw Error("TensorRT could not create a runtime: " + logger.last_error());
    Ptr<nvinfer1::ICudaEngine> engine(runtime->deserializeCudaEngine(plan.data(), plan.size()));
    if (!engine) throw Error("TensorRT could not deserialize the engine (" + logger.last_error() + ")");
    Ptr<nvinfer1::IExecutionContext> context(engine->createExecutionContext());
    if (!context) throw Error("TensorRT could not create an execution context: " + logger.last_error());
    std::vector<std::string> inputs, outputs;
    for (int i = 0; i < engine->getNbIOTensors(); ++i) {
        const char* name = engine->getIOTensorName(i);
        (engine->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT ? inputs : outputs).push_back(name);
    }
    if (inputs.size() != 1) throw Error("--dump-outputs runs engines with one input, not " + std::to_string(inputs.size()));
    const std::string& input = inputs[0];
    if (engine->getTensorDataType(input.c_str()) != nvinfer1::DataType::kFLOAT)
        throw Error("the engine input '" + input + "' is not float32");
    const nvinfer1::Dims dims = engine->getTensorShape(input.c_str());
    trtverify::check_input_shape(samples.shape, to_vector(dims), input);
    const auto batch = static_cast<std::int64_t>(samples.shape[0]);
    if (!context->setInputShape(input.c_str(), with_batch(dims, batch)))
        throw Error("the engine refused a batch of " + std::to_string(batch) + " samples for '" + input + "' (" +
                    logger.last_error() + "); pass as many samples as its profile allows");

    const std::vector<float> values = trtverify::to_float32(samples);
    DeviceBuffer device_in = device_buffer(values.size() * sizeof(float));
    if (!context->setTensorAddress(input.c_str(), device_in.get())) throw Error("TensorRT refused the input address");
    std::vector<Output> out;
    for (auto const& name : outputs) {
        std::vector<std::uint64_t> shape;
        for (auto d : to_vector(context->getTensorShape(name.c_str()))) {
            if (d < 0) throw Error("the output '" + name + "' has an unknown shape after the input shape was set");
            shape.push_back(static_cast<std::uint64_t>(d));
        }
        Output x{name, trtverify::make_array(npy_dtype(engine->getTensorDataType(name.c_str()), name), shape), {}};
        x.device = device_buffer(x.host.nbytes());
        if (!context->setTensorAddress(name.c_str(), x.device.get()))
            throw Error("TensorRT refused the address of output '" + name + "'");
        out.push_back(std::move(x));
    }
    Stream stream = make_stream();
    CUDA_CHECK(cudaMemcpyAsync(device_in.get(), values.data(), values.size() * sizeof(float), cudaMemcpyHostToDevice,
                               stream.get()));
    if (!context->enqueueV3(stream.get())) throw Error("TensorRT enqueueV3 failed: " + logger.last_error());
    for (auto& x : out)
        CUDA_CHECK(cudaMemcpyAsync(x.host.bytes.data(), x.device.get(), x.host.nbytes(), cudaMemcpyDeviceToHost,
                                   stream.get()));
    CUDA_CHECK(cudaStreamSynchronize(stream.get()));

    const std::filesystem::path folder(o.dump_outputs);
    std::filesystem::create_directories(folder);
    trtverify::Json index = trtverify::Json::object(), files = trtverify::Json::object();
    for (std::size_t i = 0; i < out.size(); ++i) {
        const std::string file = trtverify::dump_file_name(out[i].name, i);
        trtverify::write_npy((folder / file).string(), out[i].host);
        files.set(out[i].name, file);
    }
    index.set("tool", "trt_infer").set("tensorrt_version", tensorrt_version()).set("engine", o.engine);
    index.set("input", o.input).set("samples", static_cast<unsigned long long>(batch)).set("tensors", files);
    trtverify::write_json((folder / "index.json").string(), index);
    std::fprintf(stderr, "trt_infer: wrote %zu output tensors of %lld samples to %s\n", out.size(),
                 static_cast<long long>(batch), o.dump_outputs.c_str());
}

}  // namespace trt_infer
