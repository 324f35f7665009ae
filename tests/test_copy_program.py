"""The copy unit inside programs: a 1-lane copy from a ``row`` place to a ``col`` place is a
transpose, done by the address generators (``program_streams`` through ``host.program``'s
``play``/``store``, then as a program on model:// and (``rtl``) on the Verilator-built board),
and the boards serve the unit op by op too, the host splitting large inputs."""

from __future__ import annotations

import numpy as np
import pytest

from generators.board_info import describe
from generators.config import BoardConfig, TensorMemoryConfig
from generators.copy import CopyParams
from generators.copy import family as copy_family
from generators.numerics import Format
from generators.tm import Place
from host import open_board
from host import program as P

WORD = 32


def _up(v, m):
    return -(-v // m) * m


@pytest.mark.parametrize("r,n,fmt", [(13, 7, "int8"), (1, 9, "int8"), (33, 5, "int16"),
                                     (6, 40, "int32")])
def test_row_to_col_is_the_transpose(r, n, fmt):
    """x [R, N] in row layout, y placed col: the bytes of y are x.T stored by rows with y's
    ld, its padding zero, and nothing written outside it."""
    p = CopyParams(name="cp", format=Format.parse(fmt))
    cfg = BoardConfig(name="t", board="ulx3s",
                      tensor_memory=TensorMemoryConfig(word_bytes=WORD), units=(p,))
    info = describe(cfg)
    streams, tmd = info["units"][0]["streams"], info["tensor_memory"]
    eb = p.format.width // 8
    rng = np.random.default_rng(r * 100 + n)
    x = rng.integers(p.format.min_code, p.format.max_code + 1, (r, n))
    ldx, ldy = _up(n * eb, WORD), _up(r * eb, WORD)   # rows padded to the word size
    tm = P.TensorMemory(tmd["banks"], tmd["bank_bytes"], tmd["word_bytes"])
    tm.write(0, 64, P.layout_bytes(x, "row", p.format.width, ldx))
    places = {"x": Place(0, 64, "row", ldx, (r, n)), "y": Place(1, 96, "col", ldy, (r, n))}
    descs = copy_family.program_streams(p, (r * n,), places, streams)
    assert list(descs) == ["i_stream", "o_stream"]
    for s, d in descs.items():
        P.check_descriptor(d, streams[s]["fields"], tmd["bank_bytes"], tmd["word_bytes"],
                           tmd["banks"], s)
    beats = P.play(tm.mem[0], descs["i_stream"], streams["i_stream"]["fields"])
    want, _, ctx = copy_family.schedule(p, {"x": x})
    for f in ("data", "last"):
        assert np.array_equal(beats[f], want["i_stream"][f]), f
    # the unit passes its beats unchanged (tests/test_copy_sim.py): its output beats
    out = copy_family.disassemble(p, ctx, copy_family.golden(p, {"x": x}))["o_stream"]
    assert np.array_equal(out["data"], beats["data"])
    P.store(tm.mem[1], descs["o_stream"], streams["o_stream"]["fields"], out)
    got = tm.read(1, 96, n * ldy)
    assert got == P.layout_bytes(x.T, "row", p.format.width, ldy)
    assert np.array_equal(P.layout_codes(got, "row", (n, r), p.format.width, True, ldy), x.T)
    assert not tm.mem[1][:96].any() and not tm.mem[1][96 + n * ldy:].any()


DESIGN = """name: cpb
board: ulx3s
buffer_bytes: 256
tensor_memory: {banks: 2, bytes: 8192, word_bytes: 32, program_bytes: 256}
units:
  - {name: cp, unit: copy}
  - {name: cp4, unit: copy, format: int16, lanes: 4}
"""


@pytest.fixture(scope="module", params=["model", pytest.param("rtl", marks=pytest.mark.rtl)])
def url(request, tmp_path_factory):
    """The design on model://, and (``rtl``) the Verilator-built board served over TCP."""
    path = tmp_path_factory.mktemp("cpb") / "cpb.yaml"
    path.write_text(DESIGN)
    if request.param == "model":
        yield f"model://{path}"
        return
    import socket

    from host.model import board_config
    from sim import board as sim_board

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = sim_board.start(board_config(str(path)), port, timeout=60.0)
    try:
        yield f"socket://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def board(url):
    with open_board(url, progress=False) as b:
        yield b


def test_a_program_transposes_on_the_board(board, url):
    r, n = 13, 7
    x = np.random.default_rng(7).integers(-128, 128, (r, n))
    ldx = ldy = WORD
    board.tm_write(0, 0, P.layout_bytes(x, "row", 8, ldx))
    u = board.unit("cp")
    fam, params = u.family()
    streams = board.info()["units"][u.index]["streams"]
    places = {"x": Place(0, 0, "row", ldx, (r, n)), "y": Place(1, 0, "col", ldy, (r, n))}
    descs = fam.program_streams(params, (r * n,), places, streams)
    board.prog_write(0, P.to_bytes(P.Program((P.Op(u.index, 0, (r * n,),
                                                   tuple(descs.values())),))))
    total, per_op = board.prog_run(0, 1)
    want = params.expected_cycles(r * n)
    assert want == r * n + 1 and total == per_op[0] and len(per_op) == 1
    if url.startswith("model://"):
        assert per_op[0] == want
    else:   # measured: the unit at full rate plus the address generators' few cycles
        assert want <= per_op[0] <= want + 8, per_op
    y = P.layout_codes(board.tm_read(1, 0, n * ldy), "row", (n, r), 8, True, ldy)
    assert np.array_equal(y, x.T)


def test_the_board_serves_it_op_by_op_and_the_host_splits_it(board):
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (30, 50))
    assert np.array_equal(board.run("cp", {"x": x})["y"], x)
    assert board.last_run["runs"] > 1      # 1500 codes do not fit 256-byte buffers
    x = rng.integers(-32768, 32768, (7, 9))
    assert np.array_equal(board.run("cp4", {"x": x})["y"], x)
