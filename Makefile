# The README's commands. `make test` and `make serve` each do set-up, configure and build first.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
MODEL ?=
PORT ?= 8080

.PHONY: setup configure build test serve clean fuzz

setup:
	@scripts/setup

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: setup $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	scripts/goldens $(BUILD)/golden
	cd $(BUILD) && WO_REQUIRE_GOLDENS=1 ctest --output-on-failure -j $(JOBS)
	scripts/fuzz-smoke $(BUILD)

serve: build
	scripts/serve $(BUILD) "$(MODEL)" $(PORT)

clean:
	rm -rf $(BUILD)
