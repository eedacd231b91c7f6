"""TensorFlow SavedModel through its serving_default signature (Keras 3 cannot load_model a SavedModel)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UserError, require
from . import Runner


class SavedModelRunner(Runner):
    name = "savedmodel"

    def activate(self) -> None:
        tf = require("tensorflow", purpose="the SavedModel backend",
                     hint="Run it in NVIDIA's TensorFlow container (config containers.tensorflow) "
                          "or pip install tensorflow")
        self.tf = tf
        try:
            loaded = tf.saved_model.load(str(self.artifact))
        except Exception as exc:  # TF raises many types for a bad directory
            raise UserError(f"savedmodel: cannot load {self.artifact} as a SavedModel ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}); re-export it") from None
        signature = self.options.get("signature", "serving_default")
        if signature not in loaded.signatures:
            raise UserError(f"savedmodel: {self.artifact} has no signature '{signature}'; "
                            f"available: {', '.join(loaded.signatures) or 'none'}")
        self._loaded, self.fn = loaded, loaded.signatures[signature]
        inputs = self.fn.structured_input_signature[1]
        if len(inputs) != 1:
            raise UserError(f"savedmodel: signature '{signature}' of {self.artifact} has {len(inputs)} inputs "
                            f"({', '.join(sorted(inputs)) or 'none'}); trtverify supports models with one input. "
                            "Export a signature with a single input tensor (or compare such a model another way)")
        self.input_name, spec = next(iter(inputs.items()))
        self.input_shape = tuple(spec.shape.as_list())
        outputs = self.fn.structured_outputs
        if len(outputs) != 1:
            raise UserError(f"savedmodel: signature '{signature}' has {len(outputs)} outputs; trtverify handles one")
        self.output_name = next(iter(outputs))

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "tensorflow_version": self.tf.__version__,
                "devices": [d.name for d in self.tf.config.list_logical_devices()]}

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        out = self.fn(**{self.input_name: self.tf.constant(batch)})
        return np.asarray(out[self.output_name].numpy())


RUNNER = SavedModelRunner
