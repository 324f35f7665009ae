"""Ready/valid stream traffic shared by every testbench tier.

The manifest says where each payload field sits; :func:`pack_payloads` and
:func:`unpack_payloads` turn per-field arrays into payload integers and back (lane data through
the project's one bit-packing routine, :func:`generators.numerics.pack_bits`).
:class:`StreamPlayer` plays input beats and collects output beats cycle by cycle, with random
idle cycles on the inputs and random back-pressure on the outputs, for any simulator: the
cocotb bench and the Amaranth-simulator tests only move its values in and out of the design.
"""

from __future__ import annotations

import random

from host.tensor import beat_bytes, pack_beats, unpack_beats


def pack_payloads(fields: dict, arrays: dict) -> list[int]:
    """Payload integers, one per beat, from ``{field: array}`` laid out as in ``fields``.

    The beats are packed by :func:`host.tensor.pack_beats` (the one packing of stream beats,
    shared with the host driver) and read as little-endian integers.
    """
    return [int.from_bytes(row.tobytes(), "little") for row in pack_beats(fields, arrays)]


def unpack_payloads(fields: dict, values: list[int]) -> dict:
    """Inverse of :func:`pack_payloads`: ``{field: array}`` (lane fields as ``[n, lanes]``)."""
    nbytes = beat_bytes(fields)
    raw = b"".join(int(v).to_bytes(nbytes, "little") for v in values)
    return unpack_beats(fields, raw, len(values))


def default_max_cycles(inputs: dict, outputs: dict, expected: int = 0) -> int:
    """A cycle limit generous enough for heavy idle/back-pressure, so a wedged design fails
    instead of hanging: 10x the analytic count, or 20 cycles per beat when that is unknown."""
    beats = sum(len(next(iter(f.values()))) for f in inputs.values() if f)
    return 1000 + max(10 * expected, 20 * (beats + sum(outputs.values())))


class StreamPlayer:
    """Drives input streams and sinks output streams, one clock cycle per :meth:`step`.

    Parameters
    ----------
    inputs:
        ``{stream: [payload ints]}`` to send, in order.
    outputs:
        ``{stream: beats expected}``.
    idle:
        Probability that an input with beats left presents no beat in a cycle (only when no beat
        is already being offered: a presented beat stays until it is taken).
    stall:
        Probability that an output is not ready in a cycle.
    """

    def __init__(self, inputs: dict, outputs: dict, idle: float = 0.0, stall: float = 0.0,
                 seed: int = 0):
        self.inputs = {k: list(v) for k, v in inputs.items()}
        self.pos = {k: 0 for k in inputs}
        self.expect = dict(outputs)
        self.received = {k: [] for k in outputs}
        self.idle, self.stall = idle, stall
        self.rng = random.Random(seed)
        self.offering = {k: False for k in inputs}
        self.ready = {k: False for k in outputs}
        self.held = {k: None for k in outputs}  # payload offered but not taken last cycle
        self.cycle = 0
        self.first_cycle = None
        self.last_out_cycle = None

    @property
    def done(self) -> bool:
        return all(len(self.received[k]) >= self.expect[k] for k in self.expect)

    def drive(self) -> tuple[dict, dict, dict]:
        """Values for this cycle: ``(valid, payload, ready)`` by stream name."""
        valid, payload = {}, {}
        for k, beats in self.inputs.items():
            left = self.pos[k] < len(beats)
            if not left:
                offer = False
            elif self.offering[k]:
                offer = True
            else:
                offer = self.idle == 0.0 or self.rng.random() >= self.idle
            self.offering[k] = offer
            valid[k] = int(offer)
            payload[k] = beats[self.pos[k]] if left else 0
            if offer and self.first_cycle is None:
                self.first_cycle = self.cycle
        for k in self.expect:
            self.ready[k] = self.stall == 0.0 or self.rng.random() >= self.stall
        return valid, payload, {k: int(v) for k, v in self.ready.items()}

    def sample(self, in_ready: dict, out_valid: dict, out_payload: dict) -> None:
        """What the design showed after this cycle's values settled; ends the cycle."""
        for k in self.inputs:
            if self.offering[k] and in_ready[k]:
                self.pos[k] += 1
                self.offering[k] = False
        for k in self.expect:
            # stream rule: a beat once offered stays, unchanged, until it is taken
            held = self.held[k]
            if held is not None and (not out_valid[k] or out_payload[k] != held):
                raise AssertionError(f"{k}: cycle {self.cycle}: an offered beat was withdrawn or "
                                     "changed before it was taken (valid/payload must hold)")
            self.held[k] = out_payload[k] if out_valid[k] and not self.ready[k] else None
            if out_valid[k] and self.ready[k]:
                if len(self.received[k]) >= self.expect[k]:
                    raise AssertionError(f"{k}: more output beats than the {self.expect[k]} "
                                         "expected")
                self.received[k].append(out_payload[k])
                self.last_out_cycle = self.cycle
        self.cycle += 1

    @property
    def cycles(self) -> int:
        """Cycles from the first input beat presented to the last output beat taken."""
        if self.first_cycle is None or self.last_out_cycle is None:
            return 0
        return self.last_out_cycle - self.first_cycle + 1
