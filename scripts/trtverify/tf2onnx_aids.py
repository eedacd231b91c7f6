"""Two conversions tf2onnx 1.17 lacks, both met in Keras 3 models users ship (keras.applications.ConvNeXt* has both).
convert_onnx.py installs them in the tf2onnx process before tf2onnx's own main() runs; the conversion check and
the verdicts then judge the result like any other conversion. Each one used is reported on stderr (``AID``) and
recorded in onnx_check.json (``conversion_aids``).

- **Functions compiled with XLA stay calls.** Keras 3 on TensorFlow runs every grouped convolution (Conv2D with
  ``groups`` > 1: ConvNeXt's depthwise layers, RegNet, ResNeXt) through a ``tf.function(jit_compile=True)``, since
  TensorFlow's grouped convolution fails on the CPU without XLA. The exported graph calls that function, marked
  ``_XlaMustCompile`` (and ``_noinline``), and grappler's function inlining, which tf2onnx runs on the frozen graph,
  leaves such calls alone: tf2onnx then meets a StatefulPartitionedCall it cannot convert (tensorflow-onnx issues
  2099 and 2347). The marks only ask TensorFlow to compile the function; with them removed from the frozen graph
  grappler inlines the convolution, which tf2onnx converts. The SavedModel itself is not touched.
- **Erfc has no handler.** Keras 3's exact GELU is ``0.5 x erfc(-x / sqrt(2))``. Erfc becomes ``1 - Erf``, ONNX's Erf
  being float32's: the subtraction's absolute error is float32's rounding near 1 (6e-8), which is what matters
  once GELU multiplies it by x.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

AID = "trtverify conversion aid:"
XLA_MARKS = ("_XlaMustCompile", "_noinline")


def aids_used(log: str) -> list[str]:
    """What the aids reported in a tf2onnx log, each once, with how many times it acted."""
    counts = Counter(line.split(AID, 1)[1].strip() for line in log.splitlines() if AID in line)
    return [f"{text} x {n}" if n > 1 else text for text, n in counts.items()]


def _marked_for_xla(attrs: Any) -> bool:
    return "_XlaMustCompile" in attrs and attrs["_XlaMustCompile"].b


def unmark_xla_functions(graph_def: Any) -> int:
    """Remove the XLA marks from the functions marked for XLA and from their call nodes; return how many functions
    were marked."""
    marked = {f.signature.name for f in graph_def.library.function if _marked_for_xla(f.attr)}
    for f in graph_def.library.function:
        if f.signature.name in marked:
            for mark in XLA_MARKS:
                if mark in f.attr:
                    del f.attr[mark]
    nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
    for node in nodes:
        if "f" in node.attr and node.attr["f"].func.name in marked and "_XlaMustCompile" in node.attr:
            del node.attr["_XlaMustCompile"]
    return len(marked)


def install() -> None:
    """Both aids, in this process (tf2onnx imported here)."""
    from tf2onnx import tf_loader, utils
    from tf2onnx.handler import tf_op

    optimize = tf_loader.tf_optimize

    def tf_optimize(input_names: list[str], output_names: list[str], graph_def: Any) -> Any:
        count = unmark_xla_functions(graph_def)
        if count:
            print(f"{AID} inlined {count} XLA-compiled function(s) (Keras 3 grouped convolutions)",
                  file=sys.stderr)
        return optimize(input_names, output_names, graph_def)

    tf_loader.tf_optimize = tf_optimize  # from_function looks it up in the module when it runs

    @tf_op("Erfc")
    class Erfc:
        @classmethod
        def version_9(cls, ctx: Any, node: Any, **kwargs: Any) -> None:
            import numpy as np

            print(f"{AID} Erfc as 1 - Erf (exact GELU)", file=sys.stderr)
            node.type = "Erf"
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            one = ctx.make_const(utils.make_name(f"{node.name}/one"), np.array(1, dtype))
            sub = ctx.insert_new_node_on_output("Sub", node.output[0], name=utils.make_name(node.name),
                                                inputs=[one.output[0], node.output[0]])
            ctx.copy_shape(node.output[0], sub.output[0])
            ctx.set_dtype(sub.output[0], ctx.get_dtype(node.output[0]))
