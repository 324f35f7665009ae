"""Networks for the `network` unit tests, converted through hls4ml (shared by the tiers)."""

from __future__ import annotations

import copy
import functools

from generators.config import parse_config
from generators.hls import lower
from generators.hls.examples import jet_mlp, mlp
from generators.hls.frontend import convert
from generators.hls.lower import to_config

# narrow types on purpose: products lose fraction bits (rounded to even), results round and
# saturate, ReLU outputs are unsigned
NARROW = {"accum": "fixed<18,8,RND_CONV,WRAP>", "MatMul": "fixed<10,5,RND,SAT>",
          "Relu": "ufixed<8,4,RND_CONV,SAT>"}


def hls_config(base: dict, reuse: int, narrow: bool) -> dict:
    cfg = copy.deepcopy(base)
    cfg["Model"]["ReuseFactor"] = reuse
    for lname, lc in cfg["LayerName"].items():
        if "ReuseFactor" in lc:
            lc["ReuseFactor"] = reuse
        prec = lc.get("Precision", {})
        if not narrow:
            continue
        if "accum" in prec:
            prec["accum"] = NARROW["accum"]
        for prefix in ("MatMul", "Relu"):
            if "result" in prec and lname.startswith(prefix):
                prec["result"] = NARROW[prefix]
    return cfg


@functools.cache
def converted(which: str, reuse: int, narrow: bool, out_dir: str):
    """``(hls4ml graph, lowered model, network config)``."""
    model = jet_mlp() if which == "jet" else mlp([6, 5, 3], seed=1, name="small")
    name = f"{which}_r{reuse}{'_n' if narrow else ''}"
    graph, base = convert(model, output_dir=f"{out_dir}/{name}0", name=name)
    graph, _ = convert(model, hls4ml_config=hls_config(base, reuse, narrow),
                       output_dir=f"{out_dir}/{name}", name=name)
    lowered = lower(graph, name=name)
    return graph, lowered, parse_config(to_config(lowered, name), name)
