// --dump-outputs: every output tensor of an engine, for localization (a debug engine marks the model's intermediate
// tensors as outputs, so Python's and C++'s runs of one engine can be compared layer by layer).
#pragma once

#include <vector>

#include "trt.h"
#include "trtverify/array.h"
#include "trtverify/cli.h"

namespace trt_infer {

// Runs all `samples` (N, ...) as one batch and writes each output to options.dump_outputs/dump_file_name(name, i),
// in the engine's data type, then index.json ({"tensors": {name: file}, ...}); index.json is written last, so a
// folder without it is incomplete. Any number of outputs; one float32 input.
void dump_outputs(trtverify::InferOptions const& options, std::vector<char> const& plan,
                  trtverify::Array const& samples, Logger& logger);

}  // namespace trt_infer
