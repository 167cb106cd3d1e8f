#!/usr/bin/env python3
"""Build the block-format fixture for MemServe's Swift dequantization tests.

For each of Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K, random blocks are made
with a fixed seed: every byte random (quants, sub-block scales, high-bit planes),
except the fp16 block scales (d, and m / dmin where the format has one), which
get sane random values of both signs. The blocks are dequantized with the `gguf`
package's numpy implementation (`gguf.quants.dequantize`, tested with 0.19.0),
an implementation independent of ours.

Writes Tests/GGUFTests/Fixtures/<TYPE>.blocks (the raw block bytes) and
<TYPE>.f32 (the dequantized values, little-endian float32). For Q5_0 and Q5_1,
whose reference quantizers the package has, also <TYPE>.input.f32 (random
floats) and <TYPE>.quantized (the package's quantization of them). Usage:

    python3 scripts/make_quant_fixture.py
"""

import os

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

# Byte offsets of each block's fp16 scales (ggml's block_* structs).
HALF_SCALES = {
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}
VALUES = 2048  # per format: 64 blocks of 32, or 8 super-blocks of 256


def main() -> None:
    out = os.path.join(os.path.dirname(__file__), "..", "Tests", "GGUFTests", "Fixtures")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261204)
    for qtype, offsets in HALF_SCALES.items():
        block_size, type_size = GGML_QUANT_SIZES[qtype]
        blocks = VALUES // block_size
        data = rng.integers(0, 256, size=(blocks, type_size), dtype=np.uint8)
        for off in offsets:
            mag = rng.uniform(1e-3, 0.1, size=blocks) * rng.choice([-1.0, 1.0], size=blocks)
            data[:, off:off + 2] = mag.astype(np.float16).reshape(blocks, 1).view(np.uint8)
        values = dequantize(data.reshape(-1), qtype).astype("<f4").reshape(-1)
        assert values.size == VALUES and np.isfinite(values).all()
        name = qtype.name
        data.tofile(os.path.join(out, f"{name}.blocks"))
        values.tofile(os.path.join(out, f"{name}.f32"))
        print(f"{name}: {blocks} blocks, {data.size} bytes")
        if qtype in (T.Q5_0, T.Q5_1):
            x = (rng.standard_normal(1024) * rng.uniform(0.01, 3)).astype("<f4")
            x.tofile(os.path.join(out, f"{name}.input.f32"))
            quantize(x.reshape(8, 128), qtype).tofile(os.path.join(out, f"{name}.quantized"))


if __name__ == "__main__":
    main()
