#!/usr/bin/env python3
"""A stand-in for the C++ program in workflow tests on machines without TensorRT.

It answers trt_infer's prediction interface (--engine, --input .npy/.csv, --output) with ONNX Runtime on the
model.onnx beside the engine's folder, so the pipeline's handling of the C++ step (paths, CSV input, parity,
reruns) is exercised for real. It proves nothing about TensorRT: the real program runs only on a GPU.
"""
import pathlib
import sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "scripts"))
from trtverify.io import read_csv_array  # noqa: E402

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
path = args["--input"]
x = read_csv_array(path) if path.endswith(".csv") else np.load(path, allow_pickle=False)
model = pathlib.Path(args["--engine"]).parent.parent / "model.onnx"
session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
with open(args["--output"], "wb") as fh:
    np.save(fh, session.run(None, {session.get_inputs()[0].name: x})[0])
