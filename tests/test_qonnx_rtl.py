"""QONNX models on the RTL board (Verilator), driven as a real board is: every output code
must equal the integer golden model (``QModel.golden``), which tests/test_qonnx.py checks
against qonnx's ``execute_onnx``.

In ``make test`` (the board of tests/tm_rtl_design.yaml, built once for
tests/test_graph_rtl.py too): the digits MLP's last two layers on 32 held-out images (its
first layer's 4 KiB of weights do not fit that design's 4 KiB banks), and a random QONNX MLP
with zero points. In ``make regress``: the whole digits MLP on its own board
(models/digits/board.yaml) over the whole held-out split, accuracy equal to QONNX's to the
image; and the network unit with requant layers in RTL (a random QONNX MLP, and the digits
MLP over the whole split), each its own Verilator build."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from qonnx_cases import DIGITS, execute, mlp

from generators.qonnx import QModel, load, read
from host import open_board
from host.model import board_config
from host.qonnx import to_graph

ROOT = Path(__file__).resolve().parent.parent
TM_DESIGN = str(Path(__file__).parent / "tm_rtl_design.yaml")
DIGITS_BOARD = str(ROOT / "models/digits/board.yaml")
sys.path.insert(0, str(ROOT / "models/digits"))

pytestmark = [pytest.mark.rtl]


def _serve(design: str):
    from sim import board as sim_board

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return sim_board.start(board_config(design), port, timeout=60.0), f"socket://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def tm_url():
    proc, url = _serve(TM_DESIGN)
    try:
        yield url
    finally:
        proc.kill()
        proc.wait()


def _run(url, qm: QModel, codes: np.ndarray, rows: int, design: str) -> np.ndarray:
    g = to_graph(qm, rows, board_config(design))
    with open_board(url, progress=False) as board:
        prog = board.compile(g)
        out = []
        for i in range(0, len(codes), rows):
            c = codes[i:i + rows]
            pad = np.zeros((rows - len(c), c.shape[1]), np.int64)
            out.append(prog(x=np.concatenate([c, pad]))["y"][:len(c)])
    return np.concatenate(out)


@pytest.mark.xdist_group("tm_rtl_board")
def test_digits_last_layers_on_the_rtl_board(tm_url):
    import train

    qm = read(ROOT / DIGITS)
    _, x_te, _, _ = train.split()
    h = QModel("h", qm.output_name, qm.layers[0].out, qm.layers[1:])
    codes = QModel(qm.input_name, "h", qm.input, qm.layers[:1]).golden(
        qm.quantize_input(x_te[:32]))
    got = _run(tm_url, h, codes, 16, TM_DESIGN)
    assert np.array_equal(got, h.golden(codes))
    assert len(np.unique(got)) > 10


@pytest.mark.xdist_group("tm_rtl_board")
def test_random_qonnx_mlp_with_zero_points_on_the_rtl_board(tm_url):
    rng = np.random.default_rng(160)
    m = mlp(rng, [24, 20, 12, 6], in_zp=3, act_zp=2, abits=(5, 7), per_channel=True)
    qm = read(m)
    x = rng.uniform(-1, 1, (40, 24)).astype(np.float32)
    codes = qm.quantize_input(x)
    got = _run(tm_url, qm, codes, 8, TM_DESIGN)
    assert np.array_equal(got, qm.golden(codes))
    ref = qm.output.codes(execute(m, x).astype(np.float64))
    assert np.array_equal(got.argmax(1), ref.argmax(1))


@pytest.mark.regress
@pytest.mark.xdist_group("digits_board")
def test_digits_whole_split_on_its_rtl_board():
    import train

    qm = read(ROOT / DIGITS)
    _, x_te, _, y_te = train.split()
    codes = qm.quantize_input(x_te)
    proc, url = _serve(DIGITS_BOARD)
    try:
        got = _run(url, qm, codes, 32, DIGITS_BOARD)
    finally:
        proc.kill()
        proc.wait()
    assert np.array_equal(got, qm.golden(codes))
    ref = execute(load(ROOT / DIGITS), x_te).argmax(1)
    assert np.array_equal(got.argmax(1), ref)
    assert (got.argmax(1) == y_te).mean() == (ref == y_te).mean()


def _network_rtl(qm, x, name, reuse):
    from generators.network import family
    from generators.qonnx.network import to_network
    from sim.unit import simulate

    p = family.params(to_network(qm, name=name, reuse_factor=reuse))
    arrays = family.check_inputs(p, {"x": x})
    res = simulate(family, p, arrays, sim="verilator", name=name, config={"name": name})
    return res, p


@pytest.mark.regress        # its own Verilator build: 83 s on the busy 2-core machine
def test_random_qonnx_mlp_as_a_network_unit_in_rtl():
    """The dataflow unit with requant layers (a RequantLane per output after each Dense
    stage): codes equal the golden, cycles equal the cycle model's."""
    rng = np.random.default_rng(3)
    qm = read(mlp(rng, [12, 9, 7, 5], in_zp=3, act_zp=2, abits=(5,)))
    x = qm.quantize_input(rng.uniform(-1, 1, (300, 12)).astype(np.float32))
    res, p = _network_rtl(qm, x, "qonnx_small", 4)
    assert np.array_equal(res.outputs["y"], qm.golden(x))
    assert res.cycles == p.expected_cycles(300)


@pytest.mark.regress
def test_digits_as_a_network_unit_in_rtl():
    import train

    qm = read(ROOT / DIGITS)
    _, x_te, _, y_te = train.split()
    x = qm.quantize_input(x_te)
    res, p = _network_rtl(qm, x, "digits_mlp", 64)
    assert np.array_equal(res.outputs["y"], qm.golden(x))
    assert res.cycles == p.expected_cycles(len(x))
