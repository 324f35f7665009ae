"""Train the digits models with Brevitas QAT and export them as QONNX (docs/qonnx.md).

    python models/digits/train.py [--out DIR]   # writes digits_mlp.onnx and digits_mlp.json

scikit-learn's bundled digits (1,797 8x8 images, no download), split 75/25 with a fixed seed
(:func:`split`, the held-out split every figure of docs/qonnx.md is measured on). The MLP is
64-64-32-10: weights 4-bit signed with one scale per output channel, the input 8-bit signed,
the hidden activations 4-bit and 6-bit unsigned (after the ReLU), the logits 8-bit signed,
the biases int32 at the accumulator's scale. Every scale is a learnt float (not a power of two).
Seeded and single-threaded: the same script gives the same file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 0


def split():
    """``(x_train, x_test, y_train, y_test)``: pixels / 16 as float32 [n, 64], labels."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    return train_test_split(x, d.target, test_size=0.25, random_state=SEED, stratify=d.target)


def mlp():
    import brevitas.nn as qnn
    import torch.nn as nn
    from brevitas.quant import (
        Int8ActPerTensorFloat,
        Int8WeightPerChannelFloat,
        Int32Bias,
        Uint8ActPerTensorFloat,
    )

    def linear(i, o, **kw):
        return qnn.QuantLinear(i, o, bias=True, weight_quant=Int8WeightPerChannelFloat,
                               weight_bit_width=4, bias_quant=Int32Bias,
                               return_quant_tensor=True, **kw)

    return nn.Sequential(
        qnn.QuantIdentity(Int8ActPerTensorFloat, bit_width=8, return_quant_tensor=True),
        linear(64, 64),
        qnn.QuantReLU(Uint8ActPerTensorFloat, bit_width=4, return_quant_tensor=True),
        linear(64, 32),
        qnn.QuantReLU(Uint8ActPerTensorFloat, bit_width=6, return_quant_tensor=True),
        linear(32, 10, output_quant=Int8ActPerTensorFloat),
    )


def float_mlp():
    """The same MLP without quantizers (its accuracy: what quantization costs)."""
    import torch.nn as nn

    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                         nn.Linear(32, 10))


def train(model, x, y, epochs=300, lr=3e-3):
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    g = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=g).split(64):
            opt.zero_grad()
            out = model(xt[idx])
            loss = torch.nn.functional.cross_entropy(getattr(out, "value", out), yt[idx])
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


def accuracy(model, x, y) -> float:
    import torch

    with torch.no_grad():
        out = model(torch.from_numpy(x))
    return float((getattr(out, "value", out).argmax(1).numpy() == y).mean())


def tidy(path: Path) -> None:
    """The export as one small file: the weights inside it (torch's exporter writes them
    beside it), no initializers listed as graph inputs, and qonnx's cleanup (shapes, names;
    the Quant nodes are kept)."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    m = onnx.load(str(path))
    inits = {t.name for t in m.graph.initializer}
    keep = [i for i in m.graph.input if i.name not in inits]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    for v in list(m.graph.input) + list(m.graph.output):
        del v.metadata_props[:]
    del m.graph.value_info[:]
    data = path.with_name(path.name + ".data")
    cleanup_model(ModelWrapper(m)).save(str(path))
    data.unlink(missing_ok=True)


def main(argv=None) -> int:
    import argparse

    import torch
    from brevitas.export import export_qonnx

    ap = argparse.ArgumentParser(description="train and export the digits models")
    ap.add_argument("--out", default=str(HERE), help="output folder (default: this one)")
    args = ap.parse_args(argv)
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x_tr, x_te, y_tr, y_te = split()
    facc = accuracy(train(float_mlp(), x_tr, y_tr), x_te, y_te)
    torch.manual_seed(SEED)
    model = train(mlp(), x_tr, y_tr)
    acc = accuracy(model, x_te, y_te)
    out = folder / "digits_mlp.onnx"
    export_qonnx(model, torch.from_numpy(x_te[:1]), export_path=str(out))
    tidy(out)
    (folder / "digits_mlp.json").write_text(json.dumps(
        {"model": out.name, "float_accuracy": facc, "brevitas_accuracy": acc,
         "test_images": len(y_te), "seed": SEED}, indent=1) + "\n")
    print(f"{out.name}: float {facc:.4f}, Brevitas QAT {acc:.4f} on {len(y_te)} held-out "
          "images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
