"""Amaranth-simulator tier: the sparse chain's Amaranth design in every mode, stream by stream,
against the golden model, with cycle counts checked against ``expected_cycles``."""

from __future__ import annotations

import numpy as np
import pytest
from sparse_cases import CORNERS, corner_operands, make_params, random_operands
from test_sparse_chain_model import CHAINS, _id

from generators.sparse_chain import family, matmul
from sim.unit import simulate


@pytest.mark.parametrize("cfg", CHAINS, ids=_id)
def test_every_mode_random_exact_and_cycles(cfg, rng):
    p = make_params(**cfg)
    for mode in p.modes:
        for o, k, b in [(1, 1, 1), (3, 2 * p.k_per_pass(mode) + 3, 2)]:
            w, x = random_operands(p, mode, o, k, b, rng)
            res = simulate(family, p, {"w": w, "x": x}, sim="amaranth", mode=mode)
            assert np.array_equal(res.outputs["y"], matmul(p, w, x)), (mode, o, k, b)
            assert res.cycles == p.expected_cycles(o, k, b, mode), (mode, o, k, b)


@pytest.mark.parametrize("cfg", CHAINS, ids=_id)
def test_corners_with_idle_and_backpressure(cfg, rng):
    p = make_params(**cfg)
    for i, mode in enumerate(p.modes):
        for j, which in enumerate(CORNERS):
            w, x = corner_operands(p, mode, which, rng, cap=64)
            res = simulate(family, p, {"w": w, "x": x}, sim="amaranth", mode=mode, idle=0.3,
                           stall=0.4, seed=10 * i + j)
            assert np.array_equal(res.outputs["y"], matmul(p, w, x)), (mode, which)
            assert res.cycles >= p.expected_cycles(*w.shape, x.shape[1], mode)


def test_modes_switch_per_beat_on_one_design(rng):
    """The mode travels with each weight beat: runs in different modes back to back on the
    same component object need no reconfiguration."""
    from generators.emit import describe_ports
    from generators.sparse_chain import schedule
    from sim.pysim import play
    from sim.streams import StreamPlayer, pack_payloads, unpack_payloads

    p = make_params(4, 4, ("2:4", "1:4", "4:4"))
    comp = family.component(p)
    _, streams = describe_ports(comp)
    runs = []
    beats = {"w_stream": [], "x_stream": []}
    for mode in ("1:4", "4:4", "2:4", "1:4"):
        w, x = random_operands(p, mode, 2, 11, 2, rng)
        s = schedule(p, w, x, mode)
        for k in beats:
            beats[k] += pack_payloads(streams[k]["fields"], s.inputs[k])
        runs.append((s, matmul(p, w, x)))
    player = StreamPlayer(beats, {"y_stream": sum(s.out_beats for s, _ in runs)}, stall=0.2)
    play(comp, player, 5000)
    y = unpack_payloads(streams["y_stream"]["fields"], player.received["y_stream"])["data"]
    start = 0
    for s, golden in runs:
        got = y[start: start + s.out_beats].reshape(s.o, s.b)
        assert np.array_equal(got, golden), s.mode
        start += s.out_beats


@pytest.mark.parametrize("cfg", [dict(length=16, m=4, modes=("2:4", "1:4", "4:4")),
                                 dict(length=16, m=4, modes=("2:4",)),
                                 dict(length=7, m=4, modes=("3:4", "2:4", "4:4"))],
                         ids=["sparse16", "L16-2:4", "L7-3:4"])
def test_lanes_past_the_pass_are_dont_care(cfg, rng):
    """An ``x_stream`` beat read from memory carries whatever follows the pass on the lanes
    past ``k_per_pass``: random codes there leave the result unchanged (in 3:4 at length 7,
    stage 6 holds no slot and must not pick any of them either)."""
    from generators.emit import describe_ports
    from generators.sparse_chain import schedule
    from sim.pysim import play
    from sim.streams import StreamPlayer, pack_payloads, unpack_payloads

    p = make_params(**cfg)
    comp = family.component(p)
    _, streams = describe_ports(comp)
    for mode in p.modes:
        kp = p.k_per_pass(mode)
        w, x = random_operands(p, mode, 3, 2 * kp + 5, 2, rng)
        s = schedule(p, w, x, mode)
        ins = {k: dict(v) for k, v in s.inputs.items()}
        xd = np.array(ins["x_stream"]["data"])
        xd[:, kp:] = rng.integers(p.x.min_code, p.x.max_code + 1, xd[:, kp:].shape)
        ins["x_stream"]["data"] = xd
        beats = {k: pack_payloads(streams[k]["fields"], ins[k]) for k in ins}
        player = StreamPlayer(beats, {"y_stream": s.out_beats})
        play(comp, player, 5000)
        y = unpack_payloads(streams["y_stream"]["fields"], player.received["y_stream"])["data"]
        assert np.array_equal(y.reshape(s.o, s.b), matmul(p, w, x)), mode
