"""Finding TensorRT and bridging the few places where 8.5, 10.x and TensorRT-RTX differ.

Only the tensor-name API is used (set_input_shape, set_tensor_address, execute_async_v3), which all three have.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from .errors import MissingBackendError, UserError

# Module name -> flavour recorded in build.json. Full TensorRT wins when both are installed.
FLAVOURS = {"tensorrt": "tensorrt", "tensorrt_rtx_bindings": "tensorrt-rtx", "tensorrt_rtx": "tensorrt-rtx"}


def import_tensorrt(prefer: str) -> tuple[ModuleType, str]:
    """Return (module, flavour). ``prefer`` is tensorrt.flavour: auto, tensorrt or tensorrt-rtx."""
    wanted = [m for m, f in FLAVOURS.items() if prefer in ("auto", f)]
    if not wanted:
        raise UserError(f"tensorrt.flavour must be auto, tensorrt or tensorrt-rtx, not '{prefer}'")
    seen = []
    for name in wanted:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            seen.append(f"{name}: {exc}")
            continue
        # tensorrt-stubs installs an empty 'tensorrt' namespace package: only a real module has a Builder.
        if hasattr(module, "Builder"):
            return module, FLAVOURS[name]
        seen.append(f"{name}: only type stubs, no library")
    raise MissingBackendError(
        "TensorRT is not installed here (" + "; ".join(seen) + "). Run this step in NVIDIA's TensorRT container "
        "(config containers.tensorrt, with --use-singularity), or install TensorRT 8.5+/10.x, or "
        "TensorRT-RTX (pip install tensorrt-rtx-cu13-libs tensorrt-rtx-cu13-bindings) to build engines"
    )


def version_of(trt: ModuleType) -> str:
    return str(getattr(trt, "__version__", "unknown"))


def dims(shape: Any) -> tuple[int, ...]:
    """A TensorRT Dims as a tuple of ints. The bindings iterate it through __len__/__getitem__, which is all the
    stubs declare, so mypy would call it not iterable; typed Any here, the iteration is the same as before."""
    return tuple(int(d) for d in shape)


def network_flags(trt: ModuleType) -> int:
    """EXPLICIT_BATCH is required by TensorRT 8.x and gone (always on) in 10.x and TensorRT-RTX."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    return 0 if flag is None else 1 << int(flag)


def profile_shape(trt: ModuleType, engine: Any, name: str) -> tuple[tuple[int, ...], ...]:
    """(min, opt, max) shapes of profile 0 for input ``name``."""
    if hasattr(engine, "get_tensor_profile_shape"):
        shapes = engine.get_tensor_profile_shape(name, 0)
    else:  # TensorRT 8.5's Python API has only the profile-first form
        shapes = engine.get_profile_shape(0, name)
    return tuple(tuple(int(d) for d in s) for s in shapes)


def parse_tactic_sources(trt: ModuleType, spec: str, default_mask: int) -> tuple[int, list[str]]:
    """Apply a trtexec-style spec ("-CUBLAS,-CUDNN,+EDGE_MASK_CONVOLUTIONS") to the builder's default mask.

    Returns the mask and notes about sources this TensorRT does not know (removing an unknown source is a no-op,
    adding one is an error).
    """
    mask = default_mask
    notes: list[str] = []
    if spec.strip().lower() in ("", "default"):
        return mask, notes
    for token in (t.strip() for t in spec.split(",") if t.strip()):
        sign, name = token[0], token[1:].upper()
        if sign not in "+-":
            raise UserError(f"tactic source '{token}' must start with + or - (like trtexec's --tacticSources)")
        source = getattr(trt.TacticSource, name, None)
        if source is None:
            known = ", ".join(n for n in dir(trt.TacticSource) if n.isupper())
            if sign == "-":
                notes.append(f"{name} is not a tactic source of this TensorRT; nothing to remove")
                continue
            raise UserError(f"tactic source {name} is not known to this TensorRT; available: {known}")
        bit = 1 << int(source)
        mask = mask | bit if sign == "+" else mask & ~bit
    return mask, notes
