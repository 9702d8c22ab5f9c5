# The two commands users need: `make run` and `make test`. Both install what is missing first.
PRESET ?= release
BUILD_DIR := build/$(PRESET)
JOBS ?= 2
DATA_DIR ?= ./data

.PHONY: all deps node-deps configure build run test cluster cluster-down format clean

all: build

deps:
	@bash scripts/install-deps.sh

configure: deps
	@if [ ! -f $(BUILD_DIR)/CMakeCache.txt ]; then cmake --preset $(PRESET); fi

build: configure
	cmake --build $(BUILD_DIR) -j$(JOBS)

run: build
	mkdir -p $(DATA_DIR)
	$(BUILD_DIR)/apps/pigeond/pigeond --data-dir $(DATA_DIR)

# A 3-node cluster on this machine (ZooKeeper, Redis, MariaDB and three pigeond): see README.
cluster: build
	@bash scripts/cluster.sh up

cluster-down:
	@bash scripts/cluster.sh down

node-deps: deps
	@cd tests/node && if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then npm ci --no-audit --no-fund; fi

test: build node-deps
	cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS) --timeout 600

format:
	find src apps tests bench -name '*.h' -o -name '*.cc' | xargs clang-format -i

clean:
	rm -rf build
