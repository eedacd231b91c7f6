"""ONNX Runtime with providers chosen from config: the first available ones in the order given, recorded."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UserError, require
from ..schema import schema_default
from . import Runner


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"

    def activate(self) -> None:
        ort = require("onnxruntime", purpose="the ONNX Runtime backend",
                      hint="pip install onnxruntime-gpu (or onnxruntime for CPU only)")
        self.ort = ort
        available = ort.get_available_providers()
        # The rules always pass them; run by hand without, the config's default (the schema's) applies.
        requested = list(self.options.get("providers") or schema_default("onnxruntime.providers"))
        known = set(getattr(ort, "get_all_providers", lambda: available)()) | set(available)
        unknown = [p for p in requested if p not in known]
        if unknown:  # a typo is a config error, not a provider to skip quietly in favour of the next one
            raise UserError(f"onnxruntime: {', '.join(unknown)} is not an ONNX Runtime execution provider (a typo?); "
                            f"available here: {', '.join(available)}. Change onnxruntime.providers in config.yaml")
        chosen = [p for p in requested if p in available]
        if not chosen or (self.options.get("require_all_providers") and len(chosen) < len(requested)):
            raise UserError(f"onnxruntime: providers {', '.join(requested)} requested; available here: "
                            f"{', '.join(available)}. Change onnxruntime.providers in config.yaml")
        try:
            self.session = ort.InferenceSession(str(self.artifact), providers=chosen)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise UserError(f"onnxruntime: cannot load {self.artifact} ({str(exc).splitlines()[0]}); "
                            "the file is not a valid ONNX model: re-run the conversion") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise UserError(f"onnxruntime: the model has {len(inputs)} inputs and {len(outputs)} outputs; "
                            "trtverify handles one of each")
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape)
        self.requested, self.providers = requested, self.session.get_providers()

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "onnxruntime_version": self.ort.__version__,
                "providers_requested": self.requested, "providers_used": self.providers}

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run([self.output_name], {self.input_name: batch})[0])


RUNNER = OnnxRuntimeRunner
