"""Shared code for the trtverify step scripts: array I/O, errors, backends, metrics, reporting.

The scripts in ``scripts/`` import this package from their own directory, so it works without installation
inside NVIDIA's containers, on a GPU box, and in the tests (``pythonpath = scripts``).
Heavy frameworks (TensorFlow, ONNX Runtime, TensorRT, pycuda) are imported lazily by the modules that need them.
"""

__version__ = "0.1.0"
