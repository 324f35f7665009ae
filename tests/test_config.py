"""Config files -> typed, frozen configs, and one clear line for every malformed file."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from generators.config import (
    BoardConfig,
    config_to_dict,
    load_config,
    parse_config,
    replace_config,
)
from generators.errors import ConfigError, UserError
from generators.gelu import GeluParams
from generators.mac_array import MacArrayParams
from generators.numerics import Format
from generators.requant import RequantParams
from generators.softmax import SoftmaxParams
from generators.sparse_chain import SparseChainParams

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
# every file the project ships in configs/ must load (a stray file there is a failure too)
GOOD = sorted(p for p in (ROOT / "configs").iterdir() if p.is_file())
BAD = sorted((HERE / "bad_configs").glob("*.yaml"))

BASE = {
    "name": "m",
    "unit": "mac_array",
    "rows": 2,
    "cols": 3,
    "a": "int8",
    "b": "int8",
    "acc": "int32",
}


def mac(**changes) -> MacArrayParams:
    cfg = parse_config({**BASE, **changes}, "test")
    assert isinstance(cfg, MacArrayParams)
    return cfg


# -- good configs ----------------------------------------------------------------------------


def test_there_are_example_configs():
    names = {p.name for p in GOOD}
    assert {"mac8x8.yaml", "mac16x16_ws.yaml", "mac4x4_int4x8_sat.yaml", "softmax64.yaml",
            "gelu8.yaml", "gelu16.yaml"} <= names


def _is_board(path) -> bool:
    return "board" in (yaml.safe_load(path.read_text()) or {})


GOOD_UNITS = [p for p in GOOD if not _is_board(p)]
GOOD_BOARDS = [p for p in GOOD if _is_board(p)]


@pytest.mark.parametrize("path", GOOD_BOARDS, ids=lambda p: p.name)
def test_board_config_loads_and_round_trips(path, tmp_path):
    cfg = load_config(path)
    assert isinstance(cfg, BoardConfig)
    assert cfg.units and all(isinstance(u, (MacArrayParams, SparseChainParams, SoftmaxParams,
                                            GeluParams)) for u in cfg.units)
    hash(cfg)
    with pytest.raises(ValidationError):
        cfg.board = "icebreaker"
    plain = config_to_dict(cfg)
    assert parse_config(plain, "dict") == cfg
    dumped = tmp_path / "again.yaml"
    dumped.write_text(yaml.safe_dump(plain, sort_keys=False))
    assert load_config(dumped) == cfg


def test_board_defaults():
    cfg = parse_config({"name": "d", "board": "icebreaker",
                        "units": [{**BASE, "name": "m1"}]}, "test")
    assert cfg.link.uart == 3_000_000 and cfg.buffer_bytes == 16384
    assert cfg.units[0] == mac(name="m1")


@pytest.mark.parametrize("path", GOOD_UNITS, ids=lambda p: p.name)
def test_good_config_loads_frozen_and_round_trips(path, tmp_path):
    cfg = load_config(path)
    assert isinstance(cfg, (MacArrayParams, SparseChainParams, SoftmaxParams, GeluParams,
                            RequantParams))
    assert cfg.name == path.stem  # the examples are named after their files
    with pytest.raises(ValidationError):
        cfg.name = "other"
    with pytest.raises(ValidationError):
        cfg.acc = Format.parse("int64")
    hash(cfg)  # frozen configs are values: usable as cache keys

    plain = config_to_dict(cfg)
    # a nested block (mac_array's requant) is a mapping of the same plain values
    flat = [v for v in plain.values() if not isinstance(v, dict)]
    flat += [x for v in plain.values() if isinstance(v, dict) for x in v.values()]
    scalars = [v for v in flat if not isinstance(v, list)]
    lists = [v for v in flat if isinstance(v, list)]
    assert all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in scalars)
    assert all(isinstance(x, str) for v in lists for x in v)
    assert parse_config(plain, "dict") == cfg
    dumped = tmp_path / "again.yaml"
    dumped.write_text(yaml.safe_dump(plain, sort_keys=False))
    assert load_config(dumped) == cfg
    assert load_config(str(dumped)) == cfg  # str and PathLike both accepted


def test_mac8x8_defaults_and_derived():
    cfg = load_config(ROOT / "configs" / "mac8x8.yaml")
    assert (cfg.rows, cfg.cols) == (8, 8)
    assert (str(cfg.a), str(cfg.b), str(cfg.acc)) == ("int8", "int8", "int32")
    assert (cfg.overflow, cfg.dataflow) == ("wrap", "output_stationary")
    assert (cfg.tile_m, cfg.max_k) == (64, 65536)
    assert str(cfg.product) == "int16"
    assert cfg.internal_width == 32
    assert cfg.macs_per_cycle == 64
    assert list(config_to_dict(cfg)) == [
        "name",
        "unit",
        "rows",
        "cols",
        "a",
        "b",
        "acc",
        "overflow",
        "dataflow",
        "tile_m",
        "max_k",
    ]


def test_sat_example_keeps_guard_bits():
    cfg = load_config(ROOT / "configs" / "mac4x4_int4x8_sat.yaml")
    assert str(cfg.product) == "int12"
    assert cfg.internal_width == 12 + 12  # max_k = 4096 -> 12 guard bits


def test_fixed_point_product():
    cfg = mac(a="fixed<8,3>", b="fixed<8,3>", acc="fixed<32,22>")
    prod = cfg.product
    assert (prod.width, prod.frac_bits, prod.signed) == (16, 10, True)
    assert str(cfg.acc) == "fixed<32,22>"


@pytest.mark.parametrize(
    "a, b, acc, overflow, max_k, width",
    [
        ("int8", "int8", "int32", "wrap", 2**24, 32),
        ("int8", "int8", "int32", "sat", 65536, 32),
        ("int8", "int8", "int32", "sat", 2**24, 40),
        ("int8", "int8", "int32", "sat", 65537, 33),
        ("int8", "int8", "int16", "sat", 1, 16),
        ("int8", "int8", "int16", "sat", 2, 17),
        ("int8", "int8", "int16", "sat", 3, 18),
        ("uint8", "uint8", "uint32", "sat", 65536, 32),
        ("uint8", "uint8", "int32", "sat", 65536, 33),  # sign bit on top of an unsigned product
        ("int8", "uint8", "int16", "sat", 256, 24),
        ("int16", "int16", "int64", "sat", 2**24, 64),
    ],
)
def test_internal_acc_width(a, b, acc, overflow, max_k, width):
    assert mac(a=a, b=b, acc=acc, overflow=overflow, max_k=max_k).internal_width == width


def _range(fmt: Format) -> tuple[int, int]:
    return fmt.min_code, fmt.max_code


SMALL_FORMATS = ["int4", "uint4", "int2", "uint3"]


@pytest.mark.parametrize("a, b", list(itertools.product(SMALL_FORMATS, repeat=2)))
def test_product_format_holds_every_product(a, b):
    fa, fb = Format.parse(a), Format.parse(b)
    acc = "int16" if fa.signed or fb.signed else "uint16"
    prod = mac(a=a, b=b, acc=acc).product
    lo, hi = _range(prod)
    products = [
        x * y
        for x in range(fa.min_code, fa.max_code + 1)
        for y in range(fb.min_code, fb.max_code + 1)
    ]
    assert lo <= min(products) and max(products) <= hi


@pytest.mark.parametrize(
    "a, b, acc",
    [
        ("int8", "int8", "int16"),
        ("uint8", "uint8", "int17"),
        ("uint8", "uint8", "uint16"),
        ("int8", "uint8", "int16"),
        ("int4", "int8", "int12"),
    ],
)
@pytest.mark.parametrize("max_k", [1, 2, 3, 1000, 65536])
def test_sat_internal_width_holds_the_exact_sum(a, b, acc, max_k):
    cfg = mac(a=a, b=b, acc=acc, overflow="sat", max_k=max_k)
    corners = [x * y for x in _range(cfg.a) for y in _range(cfg.b)]
    w = cfg.internal_width
    lo, hi = (-(2 ** (w - 1)), 2 ** (w - 1) - 1) if cfg.acc.signed else (0, 2**w - 1)
    assert lo <= max_k * min(corners) and max_k * max(corners) <= hi


@pytest.mark.parametrize(
    "a, b, acc",
    [
        ("int8", "int8", "int16"),
        ("int8", "uint8", "int16"),
        ("uint8", "uint8", "uint16"),
        ("uint8", "uint8", "int17"),
        ("int2", "int2", "int4"),
        ("int16", "int16", "int64"),
        ("fixed<8,3>", "int8", "fixed<32,27>"),
        ("ufixed<8,0>", "ufixed<8,0>", "ufixed<16,0>"),
    ],
)
def test_narrowest_accepted_acc(a, b, acc):
    assert str(mac(a=a, b=b, acc=acc).acc) == acc


def test_tile_m_is_accepted_and_ignored_for_output_stationary():
    cfg = mac(tile_m=8)
    assert (cfg.dataflow, cfg.tile_m) == ("output_stationary", 8)


def test_python_construction_and_format_objects():
    cfg = MacArrayParams(
        name="m", unit="mac_array", rows=2, cols=2, a=Format.parse("int8"), b="int8", acc="int32"
    )
    assert cfg == mac(rows=2, cols=2)
    with pytest.raises(ValidationError):
        MacArrayParams(
            name="m", unit="mac_array", rows=True, cols=2, a="int8", b="int8", acc="int32"
        )


def test_replace_config():
    cfg = mac()
    bigger = replace_config(cfg, rows=16, overflow="sat")
    assert (bigger.rows, bigger.overflow, bigger.cols) == (16, "sat", cfg.cols)
    assert cfg.rows == 2
    with pytest.raises(ConfigError, match=r"^<m with changes>: rows: 99 is out of range"):
        replace_config(cfg, rows=99)


def test_every_field_is_documented():
    schema = MacArrayParams.model_json_schema()
    for key, prop in schema["properties"].items():
        assert prop.get("description"), key


# -- bad configs -----------------------------------------------------------------------------


def _expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name}: first line must be '# expect: ...'"
    return first.removeprefix("# expect: ")


def test_bad_corpus_is_large_enough():
    assert len(BAD) >= 22


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_config_gives_one_exact_line(path):
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg == f"{path}: {_expected(path)}"
    assert "\n" not in msg
    assert isinstance(info.value, UserError) and info.value.exit_code == 2
    # no chained traceback material: raised fresh or `from None`
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such file \(allowed: a YAML config"):
        load_config(path)


def test_folder(tmp_path):
    with pytest.raises(ConfigError, match=r": is a folder \(allowed: a YAML config file\)$"):
        load_config(tmp_path)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1\.yaml: is not UTF-8 text"):
        load_config(path)


@pytest.mark.parametrize(
    "data, problem",
    [
        (
            None,
            "the top level is a NoneType (allowed: a mapping of config keys such as name, unit, "
            "rows)",
        ),
        (
            [BASE],
            "the top level is a list (allowed: a mapping of config keys such as name, unit, rows)",
        ),
        ({**BASE, None: 1}, "key null is not a string (allowed: config key names such as rows)"),
        ({**BASE, "rows": 8.5}, "rows: expected an integer, got 8.5"),
        ({**BASE, "overflow": ["wrap"]}, "overflow: a list is not allowed (allowed: wrap, sat)"),
        (
            {**BASE, "unit": None},
            "unit: null is not a unit (allowed: mac_array, sparse_chain, softmax, gelu, "
            "requant, network, copy)",
        ),
        (
            {**BASE, "unit": "gelu"},
            "rows: unknown key (allowed: in, lanes, name, out, unit)",
        ),
    ],
)
def test_parse_config_names_the_source(data, problem):
    with pytest.raises(ConfigError) as info:
        parse_config(data, "from-somewhere")
    assert str(info.value) == f"from-somewhere: {problem}"


def test_first_error_is_deterministic_and_unknown_keys_come_first():
    data = {k: v for k, v in BASE.items() if k != "rows"}
    data.update(rows_=8, cols=0, a="int99")
    msgs = set()
    for _ in range(3):
        with pytest.raises(ConfigError) as info:
            parse_config(dict(reversed(list(data.items()))), "f")
        msgs.add(str(info.value))
    assert msgs == {
        "f: rows_: unknown key, did you mean 'rows'? (allowed: a, acc, b, cols, "
        "dataflow, max_k, name, overflow, packing, requant, rows, tile_m, unit)"
    }


def test_field_errors_come_in_field_order():
    with pytest.raises(ConfigError, match=r"^f: rows: 0 is out of range"):
        parse_config({**BASE, "rows": 0, "cols": 0, "acc": "int8"}, "f")


def test_nonlinear_configs_keep_in_as_the_key():
    sm = load_config(ROOT / "configs" / "softmax64.yaml")
    assert isinstance(sm, SoftmaxParams)
    assert (sm.length, sm.lanes, str(sm.inp), str(sm.out)) == (64, 1, "fixed<8,3>", "ufixed<8,0>")
    assert list(config_to_dict(sm)) == ["name", "unit", "length", "lanes", "in", "out"]
    g = replace_config(load_config(ROOT / "configs" / "gelu8.yaml"), lanes=4)
    assert isinstance(g, GeluParams) and g.lanes == 4 and str(g.inp) == "fixed<8,3>"
    with pytest.raises(ConfigError, match=r"in: fixed<13,3> is 13 bits"):
        replace_config(sm, **{"in": "fixed<13,3>"})
