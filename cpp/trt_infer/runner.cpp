#include "runner.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "trtverify/cli.h"

namespace trt_infer {

namespace {

std::uint64_t product(std::vector<std::int64_t> const& dims, std::size_t from) {
    std::uint64_t n = 1;
    for (std::size_t i = from; i < dims.size(); ++i) n *= static_cast<std::uint64_t>(dims[i]);
    return n;
}

// One batch in flight in throughput mode: device buffers of its own and pinned host buffers holding its input and
// output. No execution context of its own: TensorRT 8.5 gives a further context of a one-profile engine no profile
// (enqueueV3 asserts) and refuses it profile 0 while the runner's context holds it, so every slot runs on the one
// context, pointed at the slot's buffers before each enqueue.
struct Slot {
    DeviceBuffer device_in, device_out;
    PinnedBuffer host_in, host_out;
};

}  // namespace

Runner::Runner(std::vector<char> const& plan, Logger& logger, DeviceMemoryWatch& memory)
    : logger_(logger), memory_(memory), stream_(make_stream()) {
    runtime_.reset(nvinfer1::createInferRuntime(logger_));
    if (!runtime_) throw Error("TensorRT could not create a runtime: " + logger_.last_error());
    engine_.reset(runtime_->deserializeCudaEngine(plan.data(), plan.size()));
    if (!engine_)
        throw Error("TensorRT could not deserialize the engine (" + logger_.last_error() +
                    "); an engine runs only with the TensorRT version and GPU family that built it: rebuild it here");
    memory_.sample();
    std::vector<std::string> inputs, outputs;
    for (int i = 0; i < engine_->getNbIOTensors(); ++i) {
        const char* name = engine_->getIOTensorName(i);
        (engine_->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT ? inputs : outputs).push_back(name);
    }
    if (inputs.size() != 1 || outputs.size() != 1)
        throw Error("the engine has " + std::to_string(inputs.size()) + " inputs and " + std::to_string(outputs.size()) +
                    " outputs; trt_infer runs engines with one of each");
    io_.input = inputs[0];
    io_.output = outputs[0];
    for (auto const& name : {io_.input, io_.output}) {
        const auto type = engine_->getTensorDataType(name.c_str());
        if (type != nvinfer1::DataType::kFLOAT)
            throw Error("the engine's tensor '" + name + "' is " + data_type_name(type) +
                        "; trt_infer feeds and reads float32 (FP16 engines keep float32 inputs and outputs)");
    }
    io_.input_dims = to_vector(engine_->getTensorShape(io_.input.c_str()));
    if (io_.input_dims.empty()) throw Error("the engine input '" + io_.input + "' has no batch dimension");
    for (std::size_t i = 1; i < io_.input_dims.size(); ++i)
        if (io_.input_dims[i] < 0)
            throw Error("the engine input '" + io_.input + "' " + trtverify::dims_repr(io_.input_dims) +
                        " has dynamic non-batch dimensions; trt_infer varies only the batch");
    sample_size_ = product(io_.input_dims, 1);
    if (io_.input_dims[0] >= 0) {  // a static batch: no profile to ask
        io_.min_batch = io_.max_batch = io_.input_dims[0];
    } else {
        if (engine_->getNbOptimizationProfiles() < 1) throw Error("the engine has no optimization profile");
        const char* input = io_.input.c_str();
        const auto min = to_vector(engine_->getProfileShape(input, 0, nvinfer1::OptProfileSelector::kMIN));
        const auto max = to_vector(engine_->getProfileShape(input, 0, nvinfer1::OptProfileSelector::kMAX));
        if (min.empty() || max.empty()) throw Error("the engine's profile 0 has no shape for '" + io_.input + "'");
        io_.min_batch = min[0];
        io_.max_batch = max[0];
    }
    context_.reset(engine_->createExecutionContext());
    if (!context_) throw Error("TensorRT could not create an execution context: " + logger_.last_error());
    memory_.sample();
}

void Runner::set_batch(std::uint64_t batch) {
    nvinfer1::Dims dims = engine_->getTensorShape(io_.input.c_str());
    if (!context_->setInputShape(io_.input.c_str(), with_batch(dims, static_cast<std::int64_t>(batch))))
        throw Error("TensorRT refused input shape " + std::to_string(batch) + " for '" + io_.input +
                    "': " + logger_.last_error());
    output_dims_ = to_vector(context_->getTensorShape(io_.output.c_str()));
    if (output_dims_.empty() || output_dims_[0] != static_cast<std::int64_t>(batch))
        throw Error("the engine output '" + io_.output + "' has shape " + trtverify::dims_repr(output_dims_) +
                    " for a batch of " + std::to_string(batch) + "; trt_infer needs the batch first");
    for (auto d : output_dims_)
        if (d < 0) throw Error("the engine output '" + io_.output + "' has an unknown shape " +
                               trtverify::dims_repr(output_dims_) + " after the input shape was set");
    const std::uint64_t per_sample = product(output_dims_, 1);
    if (batch > capacity_ || per_sample != output_size_) {
        output_size_ = per_sample;
        capacity_ = std::max<std::uint64_t>(batch, capacity_);
        device_in_ = device_buffer(capacity_ * sample_size_ * sizeof(float));
        device_out_ = device_buffer(capacity_ * output_size_ * sizeof(float));
        host_in_ = pinned_buffer(capacity_ * sample_size_ * sizeof(float));
        host_out_ = pinned_buffer(capacity_ * output_size_ * sizeof(float));
        memory_.sample();
    }
    if (!context_->setTensorAddress(io_.input.c_str(), device_in_.get()) ||
        !context_->setTensorAddress(io_.output.c_str(), device_out_.get()))
        throw Error("TensorRT refused the tensor addresses: " + logger_.last_error());
}

void Runner::enqueue() {
    if (!context_->enqueueV3(stream_.get())) throw Error("TensorRT enqueueV3 failed: " + logger_.last_error());
}

trtverify::Array Runner::predict(std::vector<float> const& samples, std::vector<std::uint64_t> const& shape,
                                 std::uint64_t batch) {
    trtverify::check_input_shape(shape, io_.input_dims, io_.input);
    trtverify::check_batch_in_profile(batch, io_.min_batch, io_.max_batch, io_.input);
    const std::uint64_t n = shape[0];
    std::vector<float> out;
    for (auto const& chunk : trtverify::plan_chunks(n, batch)) {
        const std::uint64_t size = chunk.end - chunk.begin;
        if (static_cast<std::int64_t>(size) < io_.min_batch)
            throw Error("the last " + std::to_string(size) + " of " + std::to_string(n) +
                        " samples make a batch below the profile's minimum of " + std::to_string(io_.min_batch) +
                        "; choose a --batch that divides " + std::to_string(n) + ", or rebuild with --min-batch 1");
        set_batch(size);
        const std::size_t in_floats = static_cast<std::size_t>(size * sample_size_);
        const std::size_t out_floats = static_cast<std::size_t>(size * output_size_);
        std::memcpy(host_in_.get(), samples.data() + chunk.begin * sample_size_, in_floats * sizeof(float));
        CUDA_CHECK(cudaMemcpyAsync(device_in_.get(), host_in_.get(), in_floats * sizeof(float),
                                   cudaMemcpyHostToDevice, stream_.get()));
        enqueue();
        CUDA_CHECK(cudaMemcpyAsync(host_out_.get(), device_out_.get(), out_floats * sizeof(float),
                                   cudaMemcpyDeviceToHost, stream_.get()));
        CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
        out.insert(out.end(), floats(host_out_), floats(host_out_) + out_floats);
    }
    memory_.sample();
    std::vector<std::uint64_t> out_shape = {n};
    for (std::size_t i = 1; i < output_dims_.size(); ++i) out_shape.push_back(static_cast<std::uint64_t>(output_dims_[i]));
    return trtverify::make_float32(out_shape, out);
}

// The documented per-iteration work, the same as scripts/trtverify/benchgpu.py's measure_tensorrt: the batch sits in pinned
// host memory before the loop; each iteration is H2D copy, enqueue (or graph launch), D2H copy on one stream, then a
// wait, timed by CUDA events (end to end around all three, compute around the enqueue).
Timings Runner::time(std::vector<float> const& batch_samples, std::uint64_t batch, std::uint64_t warmup,
                     std::uint64_t iterations, bool cuda_graph, bool copies) {
    trtverify::check_batch_in_profile(batch, io_.min_batch, io_.max_batch, io_.input);
    set_batch(batch);
    const std::size_t in_bytes = static_cast<std::size_t>(batch * sample_size_) * sizeof(float);
    const std::size_t out_bytes = static_cast<std::size_t>(batch * output_size_) * sizeof(float);
    std::memcpy(host_in_.get(), batch_samples.data(), in_bytes);
    CUDA_CHECK(cudaMemcpyAsync(device_in_.get(), host_in_.get(), in_bytes, cudaMemcpyHostToDevice, stream_.get()));
    // TensorRT needs one enqueue after a shape change before the enqueue can be captured in a graph.
    enqueue();
    CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
    Graph graph;
    GraphExec exec;
    if (cuda_graph) {
        CUDA_CHECK(cudaStreamBeginCapture(stream_.get(), cudaStreamCaptureModeThreadLocal));
        const bool enqueued = context_->enqueueV3(stream_.get());
        const cudaError_t captured = cudaStreamEndCapture(stream_.get(), graph.out());
        if (!enqueued || captured != cudaSuccess)
            throw Error(std::string("this engine's enqueue cannot be captured in a CUDA graph (") +
                        (enqueued ? cudaGetErrorString(captured) : logger_.last_error().c_str()) +
                        "); time it without --cuda-graph");
        CUDA_CHECK(cudaGraphInstantiateWithFlags(exec.out(), graph.get(), 0));
    }
    Event start = make_event(), compute_start = make_event(), compute_end = make_event(), end = make_event();
    Timings t;
    for (std::uint64_t i = 0; i < warmup + iterations; ++i) {
        CUDA_CHECK(cudaEventRecord(start.get(), stream_.get()));
        if (copies)
            CUDA_CHECK(cudaMemcpyAsync(device_in_.get(), host_in_.get(), in_bytes, cudaMemcpyHostToDevice,
                                       stream_.get()));
        CUDA_CHECK(cudaEventRecord(compute_start.get(), stream_.get()));
        if (cuda_graph) CUDA_CHECK(cudaGraphLaunch(exec.get(), stream_.get()));
        else enqueue();
        CUDA_CHECK(cudaEventRecord(compute_end.get(), stream_.get()));
        if (copies)
            CUDA_CHECK(cudaMemcpyAsync(host_out_.get(), device_out_.get(), out_bytes, cudaMemcpyDeviceToHost,
                                       stream_.get()));
        CUDA_CHECK(cudaEventRecord(end.get(), stream_.get()));
        CUDA_CHECK(cudaEventSynchronize(end.get()));
        if (i < warmup) continue;
        t.gpu_compute_ms.push_back(elapsed_ms(compute_start, compute_end));
        t.end_to_end_ms.push_back(elapsed_ms(start, end));
    }
    memory_.sample();
    return t;
}

// Throughput mode, the same as scripts/trtverify/benchgpu.py's measure_overlapped (docs/benchmarks.md, "Overlapped
// copies"): the runner's one execution context; uploads on one stream, enqueues on the runner's stream (serialized
// there, as enqueues of one context must be), downloads on a third; batch i uses slot i % 2: its tensor addresses
// are set just before its enqueue (which reads them when called), it waits on the GPU (stream waits) for its upload
// before computing and for its compute before downloading. The host waits for batch i-2's download before reusing
// its slot, as a caller taking each output would; that wait also keeps batch i's upload from overwriting the input
// batch i-2's compute reads. Recorded: compute (events around each enqueue) and the interval between consecutive
// completions (ends of the downloads).
Timings Runner::time_overlapped(std::vector<float> const& batch_samples, std::uint64_t batch, std::uint64_t warmup,
                                std::uint64_t iterations) {
    trtverify::check_batch_in_profile(batch, io_.min_batch, io_.max_batch, io_.input);
    set_batch(batch);  // the one context's input shape, output_size_ for this batch
    const std::size_t in_bytes = static_cast<std::size_t>(batch * sample_size_) * sizeof(float);
    const std::size_t out_bytes = static_cast<std::size_t>(batch * output_size_) * sizeof(float);
    Slot slots[2];
    auto bind = [&](void* in, void* out) {
        if (!context_->setTensorAddress(io_.input.c_str(), in) || !context_->setTensorAddress(io_.output.c_str(), out))
            throw Error("TensorRT refused the tensor addresses: " + logger_.last_error());
    };
    auto use = [&](Slot const& s) { bind(s.device_in.get(), s.device_out.get()); };
    for (Slot& s : slots) {
        s.device_in = device_buffer(in_bytes);
        s.device_out = device_buffer(out_bytes);
        s.host_in = pinned_buffer(in_bytes);
        s.host_out = pinned_buffer(out_bytes);
        std::memcpy(s.host_in.get(), batch_samples.data(), in_bytes);
        // The first enqueue after a shape change does setup work that must not be timed.
        CUDA_CHECK(cudaMemcpyAsync(s.device_in.get(), s.host_in.get(), in_bytes, cudaMemcpyHostToDevice,
                                   stream_.get()));
        use(s);
        enqueue();
        CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
    }
    memory_.sample();
    Stream upload = make_stream(), download = make_stream();
    const std::uint64_t total = warmup + iterations;
    std::vector<Event> uploaded, compute_start, compute_end, done;
    for (auto* events : {&uploaded, &compute_start, &compute_end, &done})
        for (std::uint64_t i = 0; i < total; ++i) events->push_back(make_event());
    Event first = make_event();
    auto host_start = std::chrono::steady_clock::now();
    CUDA_CHECK(cudaEventRecord(first.get(), upload.get()));
    for (std::uint64_t i = 0; i < total; ++i) {
        Slot& s = slots[i % 2];
        if (i >= 2) CUDA_CHECK(cudaEventSynchronize(done[i - 2].get()));  // the host takes batch i-2's output
        if (i == warmup) host_start = std::chrono::steady_clock::now();
        CUDA_CHECK(cudaMemcpyAsync(s.device_in.get(), s.host_in.get(), in_bytes, cudaMemcpyHostToDevice,
                                   upload.get()));
        CUDA_CHECK(cudaEventRecord(uploaded[i].get(), upload.get()));
        CUDA_CHECK(cudaStreamWaitEvent(stream_.get(), uploaded[i].get(), 0));
        use(s);
        CUDA_CHECK(cudaEventRecord(compute_start[i].get(), stream_.get()));
        enqueue();
        CUDA_CHECK(cudaEventRecord(compute_end[i].get(), stream_.get()));
        CUDA_CHECK(cudaStreamWaitEvent(download.get(), compute_end[i].get(), 0));
        CUDA_CHECK(cudaMemcpyAsync(s.host_out.get(), s.device_out.get(), out_bytes, cudaMemcpyDeviceToHost,
                                   download.get()));
        CUDA_CHECK(cudaEventRecord(done[i].get(), download.get()));
    }
    CUDA_CHECK(cudaEventSynchronize(done[total - 1].get()));
    Timings t;
    t.host_span_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - host_start).count();
    for (std::uint64_t i = warmup; i < total; ++i) {
        t.gpu_compute_ms.push_back(elapsed_ms(compute_start[i], compute_end[i]));
        t.end_to_end_ms.push_back(elapsed_ms(i ? done[i - 1] : first, done[i]));
    }
    bind(device_in_.get(), device_out_.get());  // the slots' buffers go with this call
    memory_.sample();
    return t;
}

}  // namespace trt_infer
