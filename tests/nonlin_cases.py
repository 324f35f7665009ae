"""Shared parameters and helpers for the softmax and GELU tests of every tier."""

from __future__ import annotations

import numpy as np

from generators import registry
from generators.gelu import GeluParams
from generators.numerics import Format
from generators.softmax import SoftmaxParams, assemble_rows, schedule_rows, softmax


def softmax_params(length=64, lanes=1, inp="fixed<8,3>", out="ufixed<8,0>",
                   name=None) -> SoftmaxParams:
    return SoftmaxParams(length=length, lanes=lanes, inp=Format.parse(inp),
                         out=Format.parse(out), name=name or f"softmax{length}x{lanes}")


def gelu_params(inp="fixed<8,3>", out="fixed<8,3>", lanes=1, name=None) -> GeluParams:
    return GeluParams(inp=Format.parse(inp), out=Format.parse(out), lanes=lanes,
                      name=name or "gelu")


class RowBatch(type(registry.family("softmax"))):
    """The softmax family with input ``{'rows': [1-D code rows of any lengths]}``, so one
    simulation streams rows of different lengths back to back."""

    def schedule(self, params, arrays, *, mode=None):
        self.mode(params, mode)
        rows = arrays["rows"]
        fields, beats = schedule_rows(params, rows)
        return {"i_stream": fields}, {"o_stream": beats}, [len(r) for r in rows]

    def assemble(self, params, ctx, received):
        return {"rows": assemble_rows(params, ctx, received["o_stream"]["data"])}

    def expected_cycles(self, params, arrays, *, mode=None):
        return params.expected_cycles([len(r) for r in arrays["rows"]])


def golden_rows(p: SoftmaxParams, rows) -> list[np.ndarray]:
    return [softmax(p, np.asarray(r)[None, :])[0] for r in rows]
