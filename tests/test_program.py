"""host.program: the protocol-2 program encoding and the reference address generators.

The address generators are checked against a family's own ``schedule``: descriptors over a
tensor memory holding the operands in the layouts docs/programs.md describes must play exactly
the beats ``schedule`` makes, and storing the golden output beats must give the golden array.
"""

import numpy as np
import pytest

from generators.board_info import describe
from generators.config import load_config, parse_config
from generators.errors import ConfigError
from host import program as P


def _mac_streams():
    info = describe(parse_config({"name": "t", "board": "ulx3s", "tensor_memory": {},
                                  "units": [{"name": "mac", "unit": "mac_array", "rows": 8,
                                             "cols": 8, "a": "int8", "b": "int8",
                                             "acc": "int32"}]}, "t"))
    return info, {k: v["fields"] for k, v in info["units"][0]["streams"].items()}


@pytest.mark.parametrize("m,k,n", [(8, 8, 8), (20, 13, 19), (1, 1, 1)])
def test_mac_array_descriptors_play_its_schedule(m, k, n):
    from generators.units import family

    cfg = load_config("configs/mac8x8.yaml")
    fam = family(cfg.unit)
    info, fields = _mac_streams()
    tmd = info["tensor_memory"]
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a = rng.integers(-128, 128, (m, k))
    b = rng.integers(-128, 128, (k, n))
    ins, _, ctx = fam.schedule(cfg, {"a": a, "b": b})
    r = c = 8
    mb, nb = -(-m // r), -(-n // c)
    tm = P.TensorMemory(tmd["banks"], tmd["bank_bytes"], tmd["word_bytes"])
    # a in column layout (8 rows of one k contiguous), b in row layout, c in row layout
    at = np.zeros((mb * r, k), np.int64)
    at[:m] = a
    tm.write(0, 0, at.reshape(mb, r, k).transpose(0, 2, 1).astype(np.int8).tobytes())
    bt = np.zeros((k, nb * c), np.int64)
    bt[:, :n] = b
    tm.write(1, 64, bt.reshape(k, nb, c).transpose(1, 0, 2).astype(np.int8).tobytes())
    da = P.Descriptor(0, P.DATA, 8, 0, (1, mb, nb, k), (0, k * 8, 0, 8), last=(0b1000,))
    db = P.Descriptor(1, P.DATA, 8, 64, (1, mb, nb, k), (0, 0, k * 8, 8))
    dc = P.Descriptor(2, P.DATA, 32, 0, (1, mb, nb, r), (0, r * nb * c * 4, c * 4, nb * c * 4))
    for d, s in ((da, "a_stream"), (db, "b_stream"), (dc, "c_stream")):
        P.check_descriptor(d, fields[s], tmd["bank_bytes"], tmd["word_bytes"], tmd["banks"])
    for d, s, bank in ((da, "a_stream", 0), (db, "b_stream", 1)):
        got = P.play(tm.mem[bank], d, fields[s])
        assert set(got) == set(ins[s])
        for f in ins[s]:
            assert np.array_equal(got[f], ins[s][f]), (s, f)
    want = fam.golden(cfg, {"a": a, "b": b})["c"]
    P.store(tm.mem[2], dc, fields["c_stream"], fam.disassemble(cfg, ctx, {"c": want})["c_stream"])
    got = np.frombuffer(tm.read(2, 0, mb * r * nb * c * 4), np.int32).reshape(mb * r, nb * c)
    assert np.array_equal(got[:m, :n], want)


def test_program_bytes_round_trip():
    d = P.Descriptor(1, P.DATA, 8, 32, (2, 3), (-8, 16), first=(1,), last=(2, 4))
    prog = P.Program((P.Op(0, 1, (4, 5, 6), (d, d)), P.Op(2, 0, (1, 0, 0), (d,))))
    data = P.to_bytes(prog)
    assert len(data) == 2 + 2 * P.OP_HEADER_BYTES + 3 * P.DESCRIPTOR_BYTES
    assert P.from_bytes(data) == prog
    assert d.count == (1, 1, 2, 3) and d.stride == (0, 0, -8, 16) and d.beats == 6
    with pytest.raises(P.ProgramError, match="ends inside an op"):
        P.from_bytes(data[:-1])


@pytest.mark.parametrize("change,match", [
    (dict(bank=4), "bank 4"),
    (dict(kind=2), "kind 2"),
    (dict(nbytes=4), "nbytes 4"),
    (dict(base=4), "not a multiple of 8"),
    (dict(stride=(0, 0, 0, 12), count=(1, 1, 1, 2)), "not a multiple of 8"),
    (dict(base=65536 - 8, count=(1, 1, 1, 2), stride=(0, 0, 0, 8)), "bytes 65528..65543"),
    (dict(base=8, count=(1, 1, 1, 2), stride=(0, 0, 0, -16)), "bytes -8..15"),
    (dict(count=(1, 1, 0, 1)), "loop counts"),
    (dict(last=(16,)), "4-bit masks"),
])
def test_check_descriptor_refuses(change, match):
    _, fields = _mac_streams()
    good = dict(bank=0, kind=P.DATA, nbytes=8, base=0, count=(1, 1, 1, 4),
                stride=(0, 0, 0, 8), last=(8,))
    P.check_descriptor(P.Descriptor(**good), fields["a_stream"], 65536, 32, 4)
    with pytest.raises(P.ProgramError, match=match):
        P.check_descriptor(P.Descriptor(**{**good, **change}), fields["a_stream"], 65536, 32, 4)


def test_int4_elements_pack_two_per_byte():
    fields = {"data": {"offset": 0, "width": 16, "lanes": 4, "lane_width": 4, "signed": True}}
    tm = P.TensorMemory(1, 1024, 8)
    tm.write(0, 0, bytes([0x21, 0xF8, 0x7E, 0x90]))
    d = P.Descriptor(0, P.DATA, 2, 0, (2,), (2,))
    P.check_descriptor(d, fields, 1024, 8, 1)
    got = P.play(tm.mem[0], d, fields)["data"]
    assert got.tolist() == [[1, 2, -8, -1], [-2, 7, 0, -7]]
    P.store(tm.mem[0], P.Descriptor(0, P.DATA, 2, 8, (2,), (2,)), fields, {"data": got})
    assert tm.read(0, 8, 4) == bytes([0x21, 0xF8, 0x7E, 0x90])


def test_tensor_memory_block_and_info():
    cfg = parse_config({"name": "t", "board": "ulx3s", "tensor_memory": {"banks": 2},
                        "units": [{"name": "g", "unit": "gelu", "in": "fixed<8,3>",
                                   "out": "fixed<8,3>"}]}, "t")
    info = describe(cfg)
    assert info["protocol"] == 2
    assert info["tensor_memory"] == {"banks": 2, "bank_bytes": 131072, "word_bytes": 32}
    assert info["program_bytes"] == 4096
    for bad, match in [({"word_bytes": 24}, "word_bytes 24 is not a power of two"),
                       ({"banks": 0}, "banks"), ({"size": 3}, "size")]:
        with pytest.raises(ConfigError, match=match):
            parse_config({"name": "t", "board": "ulx3s", "tensor_memory": bad,
                          "units": cfg.model_dump()["units"]}, "t")
