// Engine from ONNX, with the options the Python build (scripts/trtverify/engine.py) uses.
#pragma once

#include <string>
#include <vector>

#include "trt.h"
#include "trtverify/cli.h"

namespace trt_infer {

// Parses options.onnx, builds a serialized engine, writes it to options.engine (atomically) and returns it.
std::vector<char> build_engine(trtverify::InferOptions const& options, Logger& logger);

}  // namespace trt_infer
