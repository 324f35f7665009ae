"""The stream traffic shared by the testbench tiers: payload layout and protocol checks."""

from __future__ import annotations

import numpy as np
import pytest

from sim.streams import StreamPlayer, pack_payloads, unpack_payloads

FIELDS = {"data": {"offset": 0, "width": 12, "lanes": 3, "lane_width": 4, "signed": True},
          "last": {"offset": 12, "width": 1, "signed": False}}


def test_payload_layout_roundtrip():
    data = np.array([[1, -2, 3], [-8, 7, 0]])
    last = np.array([0, 1])
    ints = pack_payloads(FIELDS, {"data": data, "last": last})
    assert ints == [0x3E1, 0x1000 | 0x078]
    back = unpack_payloads(FIELDS, ints)
    assert np.array_equal(back["data"], data) and np.array_equal(back["last"], last)


def _cycle(player, ready=1, valid=0, payload=0):
    player.drive()
    player.sample({"i": ready}, {"o": valid}, {"o": payload})


def test_player_counts_and_orders_beats():
    p = StreamPlayer({"i": [5, 6]}, {"o": 2})
    _cycle(p, ready=0)            # first beat offered, not taken
    assert p.pos["i"] == 0 and p.first_cycle == 0
    _cycle(p, ready=1)
    _cycle(p, ready=1, valid=1, payload=11)
    _cycle(p, ready=1, valid=1, payload=12)
    assert p.done and p.received["o"] == [11, 12] and p.cycles == 4
    with pytest.raises(AssertionError, match="more output beats"):
        _cycle(p, valid=1, payload=13)


def test_player_catches_withdrawn_or_changed_beats():
    for second in ((0, 7), (1, 8)):
        p = StreamPlayer({"i": []}, {"o": 1}, stall=1.0)  # output never ready
        _cycle(p, valid=1, payload=7)
        with pytest.raises(AssertionError, match="withdrawn or changed"):
            _cycle(p, valid=second[0], payload=second[1])


def test_idle_never_withdraws_an_offered_beat():
    p = StreamPlayer({"i": list(range(50))}, {"o": 0}, idle=0.5, seed=3)
    offered_not_taken = False
    for c in range(400):
        valid, _, _ = p.drive()
        if offered_not_taken:
            assert valid["i"] == 1
        take = c % 3 == 0
        offered_not_taken = bool(valid["i"]) and not take
        p.sample({"i": int(take)}, {"o": 0}, {"o": 0})
    assert p.pos["i"] == 50
