# shopstream: `make run` serves on http://localhost:3000, `make test` runs everything.
# Without DATABASE_URL both start PostgreSQL from the system's binaries (cmd/devdb).

GO      ?= go
BIN     := .bin/shopstream
DEVDB   := .bin/devdb
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# The commit, its time and whether the tree had changes go into the binary's
# build information (`shopstream version`), even where GOFLAGS turns that off.
BUILDVCS := -buildvcs=auto

.DEFAULT_GOAL := help
# staticcheck, pinned: `go run` fetches this version from the module proxy on a
# fresh machine and caches it after.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# The browser client's npm package; TypeScript, pinned in its package-lock.json,
# type-checks it (a dev dependency only: the client itself has none).
CLIENT  := web/client
TSC     := $(CLIENT)/node_modules/.bin/tsc
# The official JSON Schemas of OpenAPI 3.1 and AsyncAPI 3.0 (npm, pinned in
# docs/package-lock.json): internal/contract checks docs/*.yaml against them.
APISPECS := docs/node_modules/.package-lock.json
# The README's React app (Vite, React, TanStack Query, pinned in its
# package-lock.json; the package from web/client): typecheck runs its tsc,
# TestReactExample builds it with Vite and drives it in Chromium.
EXAMPLE  := examples/react-dashboard
EXAMPLEDEPS := $(EXAMPLE)/node_modules/.package-lock.json

.PHONY: help build run test suite stress-test check typecheck deps test-tools fuzz bench clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build .bin/shopstream (and the dev database helper)
	@echo "building shopstream (the first build fetches modules, can take 2 minutes)..."
	$(GO) build $(BUILDVCS) -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/shopstream
	$(GO) build -o $(DEVDB) ./cmd/devdb

run: build ## serve on :3000 with a local database in .data/ and the demo shop
	SHOPSTREAM_ENV=$${SHOPSTREAM_ENV:-development} LISTEN_ADDR=$${LISTEN_ADDR:-127.0.0.1:3000} \
		$(DEVDB) -dir .data/pg -- $(BIN) serve --dev

check: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

test: ## checks, then the whole suite, with the race detector, against a throwaway PostgreSQL
	@$(MAKE) --no-print-directory -j3 check build deps
	@$(MAKE) --no-print-directory suite

suite: typecheck $(APISPECS) ## the tests alone (what make test runs after its checks)
	node --test $(CLIENT)/test/
	$(DEVDB) -fast -- $(GO) test -race -count=1 -timeout 12m ./...

stress-test: build deps ## the suite STRESS_RUNS times (default 10) with one core kept busy; stops at the first failure
	bash .ci/stress-test $${STRESS_RUNS:-10}

typecheck: $(TSC) $(EXAMPLEDEPS) ## tsc --strict over the browser client's type fixture (web/client/typecheck) and the React example
	$(TSC) -p $(CLIENT)/typecheck
	$(TSC) -p $(CLIENT)/typecheck/tsconfig.bundler.json
	$(EXAMPLE)/node_modules/.bin/tsc -p $(EXAMPLE)

# npm ci installs the locked TypeScript when it is missing or the lock changed.
$(TSC): $(CLIENT)/package-lock.json | test-tools
	cd $(CLIENT) && npm ci --no-audit --no-fund
	@touch $@

# Node.js 20.19+ or 22.12+ with npm (the client's tests and type check, the
# README walkthrough's socket, Vite 8 for the React example), curl and psql (the walkthrough): installed with
# apt-get as root on Debian/Ubuntu when missing, else named.
test-tools:
	@missing=""; for t in node:nodejs npm:npm curl:curl psql:postgresql-client; do \
		command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing$$missing (Debian packages) for the tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "the tests need:$$missing (Node.js 20.19+ or 22.12+)"; exit 1; fi; fi
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 22 || (a === 22 && b >= 12) || (a === 20 && b >= 19) ? 0 : 1)' || { \
		echo "Node.js $$(node --version) is too old: the tests need 20.19+ or 22.12+ (WebSocket; Vite 8 for the React example); install one from nodejs.org"; exit 1; }

# axe-core, pinned in its package-lock.json, for the dashboard's accessibility
# checks in the Chromium tests (cmd/shopstream/dashboard_ux_test.go).
AXEDIR  := cmd/shopstream/testdata/axe
AXE     := $(AXEDIR)/node_modules/axe-core/axe.min.js

$(AXE): $(AXEDIR)/package-lock.json | test-tools
	cd $(AXEDIR) && npm ci --no-audit --no-fund
	@touch $@

$(APISPECS): docs/package-lock.json | test-tools
	cd docs && npm ci --no-audit --no-fund
	@touch $@

# After the client's npm ci: the example links web/client, whose node_modules
# hold the types its react.d.ts resolves.
$(EXAMPLEDEPS): $(EXAMPLE)/package-lock.json | test-tools $(TSC)
	cd $(EXAMPLE) && npm ci --no-audit --no-fund
	@touch $@

deps: $(TSC) $(AXE) $(APISPECS) $(EXAMPLEDEPS) test-tools ## install what the tests need and the machine lacks (Debian, as root: chromium, nodejs, npm, curl, postgresql-client; TypeScript, axe-core, the OpenAPI/AsyncAPI schemas and the React example's packages from npm)
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing chromium (Debian package) for the dashboard test"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "the dashboard test needs Chromium: install the chromium package"; exit 1; fi; }

fuzz: build ## run each fuzz target for FUZZTIME (default 20s)
	$(GO) test -run '^$$' -fuzz FuzzDecodeRequest -fuzztime $${FUZZTIME:-20s} ./internal/wsapi
	$(GO) test -run '^$$' -fuzz FuzzSignal -fuzztime $${FUZZTIME:-20s} ./internal/wsapi
	$(GO) test -run '^$$' -fuzz FuzzFrames -fuzztime $${FUZZTIME:-20s} ./internal/wsframe
	$(GO) test -run '^$$' -fuzz FuzzFilter -fuzztime $${FUZZTIME:-20s} ./internal/events
	$(GO) test -run '^$$' -fuzz FuzzBuild -fuzztime $${FUZZTIME:-20s} ./internal/events
	$(GO) test -run '^$$' -fuzz FuzzCanonicalNumber -fuzztime $${FUZZTIME:-20s} ./internal/events
	$(GO) test -run '^$$' -fuzz FuzzScanJSON -fuzztime $${FUZZTIME:-20s} ./internal/events
	$(GO) test -run '^$$' -fuzz FuzzString -fuzztime $${FUZZTIME:-20s} ./internal/termsafe
	$(GO) test -run '^$$' -fuzz FuzzAllowed -fuzztime $${FUZZTIME:-20s} ./internal/origin
	$(GO) test -run '^$$' -fuzz FuzzDecodeFrame -fuzztime $${FUZZTIME:-20s} ./client

bench: build deps ## benchmarks (BENCHFLAGS=-quick for a short pass): writes docs/benchmarks.md and docs/latency.svg
	$(GO) build -o .bin/shopbench ./cmd/shopbench
	$(GO) test -run '^$$' -bench . -benchmem ./internal/events ./internal/wsapi > .bin/gobench.txt || { cat .bin/gobench.txt; exit 1; }
	$(DEVDB) -fast -- $(GO) test -run '^$$' -bench DashboardBurst -benchtime 10x ./cmd/shopstream >> .bin/gobench.txt || { cat .bin/gobench.txt; exit 1; }
	cat .bin/gobench.txt
	$(DEVDB) -- .bin/shopbench -gobench .bin/gobench.txt $(BENCHFLAGS)

clean: ## remove build output (keeps .data/)
	rm -rf .bin
