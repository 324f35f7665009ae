"""Two MACs per hard multiplier (``packing: dsp48 | mult18``): the rule and its bit-level model.

Two neighbouring columns ``j = 2q`` and ``j + 1`` of the array multiply the same ``a`` code
(output stationary: ``a[i, k]`` runs along row ``i``; weight stationary: the activation
``a[m, k]`` runs along row ``k``): one multiplier computes both products.

The packed word and the wide product
------------------------------------
The two ``b`` codes ``w0`` (column ``2q``) and ``w1`` (column ``2q + 1``) enter one multiplier
port as the exact integer ``B = w0 + w1 * 2**S`` (an adder at the top of the column, once per
column pair, not per PE), the shared ``a`` code the other port. The multiplier forms

    P = a * B = p0 + p1 * 2**S,    p0 = a * w0,  p1 = a * w1,

exactly: ``B`` and ``P`` are as wide as their ranges need (:func:`packed_b_width`,
:func:`packed_p_width`), so nothing wraps inside the multiplier.

Lane spacing (the guard bits) and the correction
------------------------------------------------
``S`` is the width of the exact product (:func:`generators.mac_array.params.product_format`):
every ``p0`` lies in ``[-2**(S-1), 2**(S-1))`` (signed product) or ``[0, 2**S)`` (unsigned).
The packed word is never accumulated, so the lanes need no guard bits beyond that: each
product is split from ``P`` in the cycle it is made and each lane keeps its own accumulator,
with the guard bits of ``internal_width`` as in the unpacked array. The split is exact:

* lane 0: ``p0 = sext(P[0:S])`` (two's complement field; zero-extended for an unsigned
  product), since ``P = p0 (mod 2**S)`` and ``p0`` fits the field;
* lane 1: ``p1 = (P - p0) / 2**S = floor(P / 2**S) + P[S-1]``: the arithmetic shift leaves
  ``p1 - 1`` exactly when ``p0`` is negative (the sign borrow of the low lane), and ``P[S-1]``
  is that sign. The RTL adds it as the carry into lane 1's accumulator, so the correction costs
  no adder. An unsigned product has no borrow: ``p1 = P[S:]``.

Both lanes thus accumulate the very products the unpacked array accumulates, for every K:
the result equals the golden model (:func:`generators.mac_array.model.gemm`) code for code,
for ``wrap`` and ``sat`` and K up to ``max_k``, with no split of the accumulation and the
cycle count of :meth:`MacArrayParams.expected_cycles` (an accumulator in the multiplier's own
P register, as in Xilinx WP486, would need its low lane read out every 7 products of int8:
here the accumulators are in fabric, which the ECP5 and iCE40 arrays already are).

Targets
-------
``dsp48``: ``B`` at most 25 bits and ``a`` at most 18 (signed, an unsigned code taking one
bit more): the 25x18 multiplier of a Xilinx DSP48E1 (DSP48E2: 27x18); int8 x int8 and
int8 x uint8 (either order) fit. ``mult18``: ``B`` and ``a`` at most 18 bits: one ECP5
``MULT18X18D``; int4 x int4 and int8 x int4 (``a: int8``, ``b: int4``) fit, int4 x int4 also
in one iCE40 ``SB_MAC16`` (16x16). The wide product is plain Amaranth arithmetic in the
multiplier module of :mod:`generators.hardmul`, which Yosys maps to the hard multiplier (and
the Verilog simulates anywhere); on the other vendor's target it maps to what fits there.

:func:`packed_gemm` models this datapath bit by bit in NumPy (no Amaranth): packed words,
wide products, the split with its correction and the wrapping lane accumulators, for every
prefix of K at once.
"""

from __future__ import annotations

import numpy as np

from ..numerics import Format

PACKINGS = ("none", "dsp48", "mult18")

#: operand-port limits (bits, two's complement) of the multiplier each packing targets:
#: (packed port, shared port, the multiplier)
LIMITS = {
    "dsp48": (25, 18, "the 25x18 multiplier of a Xilinx DSP48E1 (27x18 in DSP48E2)"),
    "mult18": (18, 18, "an ECP5 MULT18X18D (18x18)"),
}

#: operand pairs (a, b) that fit, for the error message
FITS = {
    "dsp48": "int8 x int8, int8 x uint8, uint8 x int8 (or narrower)",
    "mult18": "int4 x int4, int8 x int4, uint8 x int4 (or narrower; a is the shared operand)",
}


def _signed_bits(lo: int, hi: int) -> int:
    """Two's complement bits that hold every integer in ``[lo, hi]``."""
    n = 1
    while not (-(1 << (n - 1)) <= lo and hi < (1 << (n - 1))):
        n += 1
    return n


def lane_shift(a: Format, b: Format) -> int:
    """``S``, the offset of lane 1 in the packed word: the exact product's width."""
    return a.width + b.width


def product_signed(a: Format, b: Format) -> bool:
    return a.signed or b.signed


def packed_range(a: Format, b: Format) -> tuple[int, int]:
    s = lane_shift(a, b)
    return b.min_code * (1 + (1 << s)), b.max_code * (1 + (1 << s))


def packed_b_width(a: Format, b: Format) -> int:
    """Two's complement width of ``B = w0 + w1 * 2**S`` (always signed: the RTL's port)."""
    return _signed_bits(*packed_range(a, b))


def shared_width(a: Format) -> int:
    """Two's complement bits of the shared ``a`` code at the multiplier's port."""
    return a.width + (0 if a.signed else 1)


def packed_p_width(a: Format, b: Format) -> int:
    """Two's complement width of ``P = a * B`` over every code pair."""
    lo, hi = packed_range(a, b)
    ends = [x * y for x in (a.min_code, a.max_code) for y in (lo, hi)]
    return _signed_bits(min(ends), max(ends))


def check_packing(packing: str, a: Format, b: Format) -> str | None:
    """None when ``a x b`` packs two lanes per multiplier for ``packing``, else the problem in
    one line (naming what fits)."""
    if packing == "none":
        return None
    floats = [f"{n}: {f}" for n, f in (("a", a), ("b", b))
              if getattr(f, "kind", "fixed") != "fixed"]
    if floats:
        return (f"{packing} packs integer lanes only, not {floats[0]} (allowed: a x b in "
                f"{FITS[packing]}; or none)")
    lim_b, lim_a, what = LIMITS[packing]
    wb, wa = packed_b_width(a, b), shared_width(a)
    if wb <= lim_b and wa <= lim_a:
        return None
    other = [k for k in LIMITS if k != packing and packed_b_width(a, b) <= LIMITS[k][0]
             and shared_width(a) <= LIMITS[k][1]]
    hint = f"packing: {other[0]}, which fits these formats, or none" if other else "none"
    return (f"{packing} cannot pack a: {a} x b: {b}: two lanes need a {wb}-bit x {wa}-bit "
            f"product, more than {what} (allowed: a x b in {FITS[packing]}; or {hint})")


def pack_b(a: Format, b: Format, w0: np.ndarray, w1: np.ndarray) -> np.ndarray:
    """The packed words ``w0 + w1 * 2**S`` as the RTL's signed ``packed_b_width``-bit port
    holds them (int64)."""
    s = lane_shift(a, b)
    return _wrap_signed(w0.astype(np.int64) + (w1.astype(np.int64) << s), packed_b_width(a, b))


def _wrap_signed(x: np.ndarray, bits: int) -> np.ndarray:
    """``x`` modulo ``2**bits`` as two's complement (int64, bits <= 63)."""
    m = np.int64(1) << bits
    x = x & (m - 1)
    return np.where(x >= (m >> 1), x - m, x)


def split_product(a: Format, b: Format, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lane0, lane1)`` of wide products ``P`` as the PE splits them: the low field
    sign-extended (zero-extended for an unsigned product), and the high field plus the low
    field's sign bit (the borrow)."""
    s = lane_shift(a, b)
    low = p & ((np.int64(1) << s) - 1)
    high = p >> s  # arithmetic: floor(P / 2**S)
    if not product_signed(a, b):
        return low, high
    sign = (low >> (s - 1)) & 1
    return np.where(sign == 1, low - (np.int64(1) << s), low), high + sign


def packed_gemm(params, a: np.ndarray, b: np.ndarray, *, every_k: bool = False) -> np.ndarray:
    """The packed datapath of ``params`` (a config with ``packing`` set) in NumPy, bit level.

    Column pairs ``(2q, 2q+1)`` go through one wide product each (an odd last column through
    a plain one), the split of :func:`split_product`, and lane accumulators that wrap at the
    array's ``internal_width``; then the accumulator's overflow rule. With ``every_k`` the
    result has a leading axis: ``out[k - 1]`` is the result for the first ``k`` columns of
    ``a`` (rows of ``b``), for every ``k`` up to K. Needs ``internal_width <= 62``.
    """
    pa, pb = params.a, params.b
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    n = b.shape[1]
    w = params.internal_width
    if w > 62:
        raise ValueError("packed_gemm models internal widths up to 62 bits")
    lanes = np.empty((a.shape[0], a.shape[1], n), dtype=np.int64)  # [M, K, N] products
    pw = packed_p_width(pa, pb)
    for q in range(n // 2):
        word = pack_b(pa, pb, b[:, 2 * q], b[:, 2 * q + 1])          # [K]
        prod = _wrap_signed(a * word[None, :], pw)                  # [M, K], exact
        lanes[:, :, 2 * q], lanes[:, :, 2 * q + 1] = split_product(pa, pb, prod)
    if n % 2:
        lanes[:, :, n - 1] = a * b[None, :, n - 1]
    # lane accumulators of internal_width bits, wrapping (exact for sat while K <= max_k)
    acc = np.cumsum(lanes, axis=1) if every_k else lanes.sum(axis=1, keepdims=True)
    acc = _wrap_signed(acc, w) if params.acc.signed else acc & ((np.int64(1) << w) - 1)
    out = np.moveaxis(acc, 1, 0)  # [K or 1, M, N]
    res = params.acc.apply_overflow(out, params.overflow)
    return res if every_k else res[0]
