# Two commands for a fresh machine:  `make run` (install + start on the embedded SQLite store)
# and `make test` (install + lint + the whole test suite).
# `make run` listens where conf/gateway.conf says (proxy :8000 and :8443, admin 127.0.0.1:8001); KONG_* variables
# override it, as for `gateway start`:  KONG_PROXY_LISTEN='127.0.0.1:18000, 127.0.0.1:18443 ssl' make run
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# the gateway's prefix for `make run` (`make run PREFIX=elsewhere`); not read from the environment, where PREFIX
# often means something else (an install prefix)
PREFIX := servroot

.PHONY: run test install system-deps lint format bench bench-stream soak clean uncompiled

# where the command is, said after an install and by `make run` (the virtualenv need not be activated)
WHERE := @echo 'gateway is $(BIN)/gateway; to call it as `gateway`: export PATH="$$PWD/$(BIN):$$PATH" (or: $(BIN)/python -m gateway)'

$(BIN)/gateway: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	@touch $@
	$(WHERE)

# The request path compiled with mypyc (gateway/compiled.py says why and how; its FILES are the list): extension
# modules next to their sources, built again whenever one of them changed. `make uncompiled` removes them;
# GATEWAY_PURE_PYTHON=1 runs the sources without removing anything.
MYPYC_FILES := $(shell grep -so '"gateway/[a-z0-9_/]*\.py"' gateway/compiled.py | tr -d '"')
COMPILED    := $(if $(MYPYC_FILES),build/compiled.stamp)

build/compiled.stamp: $(BIN)/gateway gateway/compiled.py $(MYPYC_FILES)
	@mkdir -p build
	@echo "compiling the request path with mypyc ($(words $(MYPYC_FILES)) modules; build/mypyc.log)"
	@rm -f ./*__mypyc.*.so  # the previous build's shared library (its name is a hash of the list)
	@find gateway -name '*.so' -delete  # and its modules' extensions: one no longer listed would import that library
	@$(BIN)/mypyc $(MYPYC_FILES) >build/mypyc.log 2>&1 || { tail -30 build/mypyc.log; exit 1; }
	@# a module's small extension is not rebuilt when only the group's library changed, and is copied with its old
	@# time: mark them all as built now, so the staleness check (gateway/compiled.py) compares with this build
	@for f in $(MYPYC_FILES); do touch $${f%.py}.*.so; done
	@touch $@

install: $(BIN)/gateway $(COMPILED)

# Debian packages the integration tests use as real peers (nginx, curl, openssl, wrk, ab, nghttp and h2load for
# HTTP/2), nginx's stream module (nginx-light builds it as a dynamic module, packaged as libnginx-mod-stream) for the
# stream tests' peers, and PostgreSQL's server (the tests start their own cluster with initdb/pg_ctl; the package's
# own is not used).
system-deps:
	@missing=""; \
	for pair in nginx:nginx-light curl:curl openssl:openssl wrk:wrk ab:apache2-utils nghttp:nghttp2-client; do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	dpkg -s libnginx-mod-stream >/dev/null 2>&1 || missing="$$missing libnginx-mod-stream"; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

run: install
	$(WHERE)
	$(BIN)/gateway start -c conf/gateway.conf -p $(PREFIX)

lint: install
	$(BIN)/ruff check gateway tests benchmarks
	$(BIN)/ruff format --check gateway tests benchmarks
	$(BIN)/mypy gateway tests benchmarks

format: install
	$(BIN)/ruff format gateway tests benchmarks
	$(BIN)/ruff check --fix gateway tests benchmarks

# the whole suite on the compiled request path, then the request path's own tests from its sources (gateway/compiled.py)
test: system-deps install lint
	$(BIN)/pytest -q
	GATEWAY_PURE_PYTHON=1 $(BIN)/pytest -q tests/unit tests/integration/proxy tests/integration/upstream

# The benchmark suite (benchmarks/run.py): the gateway next to nginx, one worker each, writes benchmarks/RESULTS.md
# and benchmarks/ratios.png. A few minutes; run it on an otherwise idle machine. BENCH_ARGS=--quick for a sanity pass.
bench: system-deps install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Stream throughput (benchmarks/stream.py): bulk TLS termination and passthrough, the gateway next to nginx's stream
# module; BENCH_ARGS=--quick for a short pass, --output benchmarks/STREAM.md to keep the table.
bench-stream: system-deps install
	$(BIN)/python -m benchmarks.stream $(BENCH_ARGS)

# The soak (benchmarks/soak.py): 1,000,000 keepalive requests, then 20,000 new TLS connections, through a gateway
# with 2 workers; RSS and descriptors of every gateway process sampled every 10 s; writes benchmarks/SOAK.md and
# benchmarks/soak.png. A few minutes. SOAK_ARGS="--requests 100000 --handshakes 4000 --interval 2" for a short pass
# (printed only: a run other than the standard one writes a report only with --output).
soak: system-deps install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.soak $(SOAK_ARGS)


uncompiled:
	find gateway -name '*.so' -delete
	rm -rf build ./*__mypyc.*.so

clean: uncompiled
	rm -rf $(VENV) $(PREFIX) .pytest_cache .mypy_cache .ruff_cache
