"""Analytic forward FLOPs of a Keras model, counted from its layers' shapes."""
from __future__ import annotations

import keras
import numpy as np

NOTE = ("FLOPs: multiply-adds x2 of Conv2D / Conv2DTranspose / DepthwiseConv2D / SeparableConv2D / Dense "
        "layers, counted from the model's layer shapes; elementwise ops (BatchNorm, activations, SE/scSE "
        "scaling, adds, pooling, resizing) are ignored; training ~= 3x forward.")


def _calls(layer) -> list[tuple[tuple, tuple]]:
    """(input shape, output shape) of every call of `layer` in its model's graph."""
    out = []
    for node in getattr(layer, "_inbound_nodes", []):
        if node.input_tensors and node.output_tensors:
            out.append((tuple(node.input_tensors[0].shape), tuple(node.output_tensors[0].shape)))
    return out


def layer_flops(layer, shape_in: tuple, shape_out: tuple) -> int:
    """Forward FLOPs (2 x multiply-adds) of one call of a layer for ONE example; 0 for elementwise layers."""
    L = keras.layers

    def size(shape):
        return int(np.prod([int(d) for d in shape]))

    if isinstance(layer, L.Conv2DTranspose):  # every input pixel scatters a Kh x Kw x Cout patch
        kh, kw, cout, cin = layer.kernel.shape
        return 2 * size(shape_in[1:-1]) * kh * kw * cin * cout
    if isinstance(layer, L.SeparableConv2D):
        return 2 * size(shape_out[1:-1]) * (size(layer.depthwise_kernel.shape) + size(layer.pointwise_kernel.shape))
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D, L.DepthwiseConv2D)):
        # kernel (Kh, Kw, Cin/groups, Cout), depthwise (Kh, Kw, Cin, multiplier): 2*Hout*Wout*prod(kernel)
        return 2 * size(shape_out[1:-1]) * size(layer.kernel.shape)
    if isinstance(layer, L.Dense):  # applied to every position of the leading axes
        return 2 * size(shape_in[1:-1]) * size(layer.kernel.shape)
    return 0


def forward_flops(model) -> int:
    """Forward FLOPs per example of a model, walking its layers and recursing into nested models."""
    total = 0
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            # a nested model: its inner graph once per call of it in the outer graph
            total += forward_flops(layer) * max(1, len(_calls(layer)))
            continue
        for shape_in, shape_out in _calls(layer):
            total += layer_flops(layer, shape_in, shape_out)
    return total
