# tensorfab — thin wrappers around the `tensorfab` command and pytest.
# Every target creates or refreshes the project venv first (pinned versions in pyproject.toml).

PYTHON ?= python3.11
VENV   ?= .venv
SIM    ?= verilator
WAVES  ?= 0
CONFIG ?= configs/mac8x8.yaml
OUT    ?= out
JOBS   ?= 2
TARGET ?= ecp5
SEED   ?= 1
PYTEST_ARGS ?=
BOARD  ?= ulx3s
PORT   ?= 5555
# demo, serve and bitstream work on a board design: configs/demo.yaml unless CONFIG is given
# on the command line (for demo, a mac_array config runs a GEMM on that unit's RTL in $(SIM))
BOARD_CONFIG := $(if $(filter command line,$(origin CONFIG)),$(CONFIG),configs/demo.yaml)

BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export WAVES

.PHONY: all venv test test-fast regress demo bench generate rtl synth timing serve bitstream program lint clean distclean help

all: test

help:
	@echo "make test       fast and rtl tests (Verilator; a smaller Icarus set when iverilog is present)"
	@echo "                JOBS=$(JOBS) xdist workers"
	@echo "make test-fast  the tests that need no simulator"
	@echo "make regress    long sweeps (many shapes and configurations), JOBS=$(JOBS)"
	@echo "make demo       the board demo: build (cached) and serve $(BOARD_CONFIG)'s simulated"
	@echo "                board, run an attention head (GEMM, softmax, GEMM, GELU) and a sparse"
	@echo "                projection through host.open_board, check every result, print a table"
	@echo "                (CONFIG=configs/mac8x8.yaml: a GEMM on that unit's RTL in SIM=$(SIM) instead)"
	@echo "make bench      measure utilization, emission time, simulation speed, softmax/GELU"
	@echo "                accuracy against I-BERT and hls4ml -> bench/RESULTS.md, bench/*.png"
	@echo "make generate   CONFIG=$(CONFIG) OUT=$(OUT)   emit Verilog + manifest into OUT"
	@echo "make rtl        regenerate the reference Verilog in rtl/ from configs/"
	@echo "make synth      CONFIG=$(CONFIG) TARGET=$(TARGET) (ecp5|ice40|xilinx|ultrascale|generic)   Yosys"
	@echo "                resource report in OUT/synth-TARGET/"
	@echo "make timing     CONFIG=$(CONFIG) TARGET=$(TARGET) (ecp5|ice40) SEED=$(SEED)   nextpnr place"
	@echo "                and route, Fmax, in OUT/timing-TARGET/"
	@echo "make serve      CONFIG=$(BOARD_CONFIG) PORT=$(PORT)   the simulated board over TCP"
	@echo "make bitstream  CONFIG=$(BOARD_CONFIG) BOARD=$(BOARD)   bitstream via amaranth-boards + YoWASP"
	@echo "                in OUT/bitstream-BOARD/"
	@echo "make program    BOARD=$(BOARD)   load OUT/bitstream-BOARD/ with openFPGALoader"
	@echo "make lint       ruff on the sources and tests"
	@echo "make venv       create or refresh $(VENV) (pip install -e '.[dev]')"
	@echo "make clean      remove OUT=$(OUT), build/ and .pytest_cache"
	@echo "make distclean  make clean, and remove $(VENV) too"
	@echo "make all        the same as make test"
	@echo "knobs: SIM=$(SIM) (verilator|icarus) WAVES=$(WAVES) (1: record waveforms) OUT=$(OUT)"
	@echo "       PYTEST_ARGS=...   extra pytest arguments for make test (e.g. -k board --durations=20)"
	@echo "       PYTHON=$(PYTHON) VENV=$(VENV); CONFIG defaults to $(BOARD_CONFIG) for demo, serve"
	@echo "       and bitstream, to $(CONFIG) for the others"

# The venv is (re)built when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing tensorfab and its pinned tools into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/python -m pip install -e '.[dev]' > $(VENV)/install.log 2>&1 || \
	  { tail -30 $(VENV)/install.log; echo "pip install failed: see $(VENV)/install.log"; exit 1; }
	@touch $(STAMP)

venv: $(STAMP)

# `make bench` also needs the bench extra (matplotlib, hls4ml 1.3.0 for its C++ softmax).
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	@echo "installing the bench extra into $(VENV) (log: $(VENV)/install-bench.log)"
	@$(BIN)/python -m pip install -e '.[dev,bench]' > $(VENV)/install-bench.log 2>&1 || \
	  { tail -30 $(VENV)/install-bench.log; echo "pip install failed: see $(VENV)/install-bench.log"; exit 1; }
	@touch $(BENCH_STAMP)

# The Icarus set needs Debian's iverilog (.ci/run installs it); without it, say so and leave
# that set out rather than fail on a missing tool.
ICARUS_SEL := $(shell command -v iverilog >/dev/null 2>&1 && echo "" || echo "and not icarus")

test: $(STAMP)
	@test -z "$(ICARUS_SEL)" || echo "note: iverilog not found: the Icarus tests are left out (apt-get install iverilog)"
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadgroup -m "not regress and not board $(ICARUS_SEL)" tests $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not rtl and not icarus" tests

regress: $(STAMP)
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadgroup -m "regress" tests

demo: $(STAMP)
	$(BIN)/python -m bench.demo --config $(BOARD_CONFIG) --sim $(SIM)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run

generate: $(STAMP)
	$(BIN)/tensorfab generate $(CONFIG) --out $(OUT)

rtl: $(STAMP)
	$(BIN)/python -m bench.refresh_rtl

# Reports land in $(OUT)/synth-$(TARGET)/report.json and $(OUT)/timing-$(TARGET)/report.json.
synth: $(STAMP)
	$(BIN)/tensorfab synth $(CONFIG) --target $(TARGET) --out $(OUT)/synth-$(TARGET)

timing: $(STAMP)
	$(BIN)/tensorfab synth $(CONFIG) --target $(TARGET) --pnr --seed $(SEED) --out $(OUT)/timing-$(TARGET)

# Board designs: the simulated board on PORT, a bitstream for BOARD, programming it.
serve: $(STAMP)
	$(BIN)/tensorfab serve $(BOARD_CONFIG) --port $(PORT)

bitstream: $(STAMP)
	$(BIN)/tensorfab bitstream $(BOARD_CONFIG) --out $(OUT)/bitstream-$(BOARD)

program:
	@command -v openFPGALoader >/dev/null 2>&1 || { echo "openFPGALoader not found (apt-get install openfpgaloader)"; exit 2; }
	openFPGALoader -b $(BOARD) $(firstword $(wildcard $(OUT)/bitstream-$(BOARD)/*.bit $(OUT)/bitstream-$(BOARD)/*.bin))

lint: $(STAMP)
	$(BIN)/ruff check generators host sim boards tensorfab tests bench models

clean:
	rm -rf $(OUT) build .pytest_cache

distclean: clean
	rm -rf $(VENV)
