# The README's commands. `make test` and `make serve` each do set-up, configure and build first.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
MODEL ?=
PORT ?= 8080

.PHONY: setup configure build test serve clean fuzz test-asan test-tsan

setup:
	@scripts/setup

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: setup $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# `make test` (the CI command) also runs the engine and server tests under ASan + UBSan and under
# TSan (scripts/sanitize ... ci); SANITIZE=0 leaves them out for a quicker local run.
SANITIZE ?= 1
test: build
	scripts/goldens $(BUILD)/golden
	cd $(BUILD) && WO_REQUIRE_GOLDENS=1 ctest --output-on-failure -j $(JOBS)
	JOBS=$(JOBS) FUZZ_SECONDS=$(FUZZ_SECONDS_TEST) scripts/fuzz-smoke $(BUILD)
ifneq ($(SANITIZE),0)
	JOBS=$(JOBS) scripts/sanitize asan $(BUILD) ci
	JOBS=$(JOBS) scripts/sanitize tsan $(BUILD) ci
endif

# Brief fuzzing in `make test`; `make fuzz` runs each target longer (findings go to
# $(BUILD)/asan/fuzz-runs/crash-*; add them to tests/fuzz/corpus/NAME/ as regression seeds).
FUZZ_SECONDS_TEST ?= 5
FUZZ_SECONDS ?= 300
fuzz: configure
	JOBS=$(JOBS) FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz-smoke $(BUILD)

# The full sanitizer runs: the unit, engine and server tests under ASan + UBSan, the engine and
# server tests under TSan, in clang build trees $(BUILD)/asan and $(BUILD)/tsan (the server
# tests start the instrumented worker-orcd). scripts/sanitize says which tests and why.
test-asan: configure
	scripts/goldens $(BUILD)/golden
	JOBS=$(JOBS) scripts/sanitize asan $(BUILD)
test-tsan: configure
	scripts/goldens $(BUILD)/golden
	JOBS=$(JOBS) scripts/sanitize tsan $(BUILD)

serve: build
	scripts/serve $(BUILD) "$(MODEL)" $(PORT)

clean:
	rm -rf $(BUILD)
