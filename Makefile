# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LISTEN ?= 127.0.0.1:50051
CONSOLE_LISTEN ?= 127.0.0.1:8080
RULESETS ?= rulesets
REGISTRY ?= data/registry
METRICS_LISTEN ?= 127.0.0.1:9464

.PHONY: run test test-setup install gen gen-check proto-check lint bench fuzz drill clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	mkdir -p var
	$(BIN)/miaopi-server --listen $(LISTEN) --rulesets $(RULESETS) --state-dir var \
	  --registry $(REGISTRY) --console-listen $(CONSOLE_LISTEN) \
	  $(if $(METRICS_LISTEN),--metrics-listen $(METRICS_LISTEN))

# What the tests need from Debian, installed only when missing: the console's browser tests
# drive Debian's chromium (a browser download fails here) with a CJK font so Chinese renders
# as text; the notice tests read PDFs back with poppler (pdftotext, and pdftoppm with its
# Chinese CMaps and a font standing in for STSong-Light) and decode the QR code with zbar;
# the shared audit store's tests start a real PostgreSQL themselves (tests/postgres.py).
TEST_PACKAGES := chromium fonts-noto-cjk poppler-utils poppler-data fonts-wqy-zenhei zbar-tools \
  postgresql
test-setup:
	@dpkg -s $(TEST_PACKAGES) >/dev/null 2>&1 || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	   apt-get install -y -q --no-install-recommends $(TEST_PACKAGES))

test: $(STAMP) test-setup
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# Regenerate protobuf/gRPC code from proto/ (committed; see gen-check).
gen: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=proto --pyi_out=proto \
	  --grpc_python_out=proto proto/miaopi/v1/*.proto

# Fails when the committed generated code differs from what the .proto files produce.
gen-check: $(STAMP)
	rm -rf build/gen && mkdir -p build/gen
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=build/gen --pyi_out=build/gen \
	  --grpc_python_out=build/gen proto/miaopi/v1/*.proto
	diff -r -x '__init__.py' -x '*.proto' -x '__pycache__' build/gen/miaopi proto/miaopi

# The contract window vendors build on: buf lint (STANDARD) and buf breaking (WIRE_JSON)
# against the last released miaopi.v1 (the commit named in .ci/proto-released). buf comes
# from the npm registry into build/buf (not committed).
BUF := build/buf/node_modules/.bin/buf
$(BUF):
	mkdir -p build/buf
	npm install --prefix build/buf --silent --no-audit --no-fund @bufbuild/buf@1.75.0

proto-check: $(BUF)
	rm -rf build/released && mkdir -p build/released
	git archive $$(cat .ci/proto-released) proto/miaopi/v1/approval.proto | tar -x -C build/released
	cp buf.yaml build/released/
	$(BUF) lint
	$(BUF) breaking --against build/released

# Benchmarks (not part of `make test`, ~12 minutes on 2 cores): installs what it needs
# (tests/bench/install.sh: h2load and strace via apt, zen-engine, rule-engine and py-spy into
# the venv), then writes docs/BENCHMARKS.md and docs/benchmarks.json. Scratch in build/bench/.
bench: $(STAMP)
	@started=$$(date +%s.%N); \
	bash tests/bench/install.sh $(BIN) && \
	BENCH_STARTED=$$started $(BIN)/python -m tests.bench.run

# Failover drill (not part of `make test`, about half a minute): a PostgreSQL primary and a
# synchronous standby on loopback, two nodes, a burst of decisions; the primary is killed and
# the standby promoted mid-burst; every acknowledged decision must be there and the log verify
# (tests/drill/failover.py; the nodes' logs stay in build/drill/).
drill: $(STAMP) test-setup
	$(BIN)/python -m tests.drill.failover

# Fuzz the rule-set gate with generated rule files for FUZZ_SECONDS (a few seeds run in
# `make test`); failing sets are kept under build/fuzz/. FUZZ_SEED=N replays from seed N.
FUZZ_SECONDS ?= 300
fuzz: $(STAMP)
	MIAOPI_FUZZ_SECONDS=$(FUZZ_SECONDS) $(if $(FUZZ_SEED),MIAOPI_FUZZ_SEED=$(FUZZ_SEED)) \
	  $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/test_gate_fuzz.py -k for_a_while

lint: $(STAMP)
	$(BIN)/ruff check server clients tests

clean:
	rm -rf $(VENV) build *.egg-info
