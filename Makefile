# shopstream: `make run` serves on http://localhost:3000, `make test` runs everything.
# Without DATABASE_URL both start PostgreSQL from the system's binaries (cmd/devdb).

GO      ?= go
BIN     := .bin/shopstream
DEVDB   := .bin/devdb
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.DEFAULT_GOAL := help
.PHONY: help build run test check fuzz bench clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build .bin/shopstream (and the dev database helper)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/shopstream
	$(GO) build -o $(DEVDB) ./cmd/devdb

run: build ## serve on :3000 with a local database in .data/ and the demo shop
	SHOPSTREAM_ENV=$${SHOPSTREAM_ENV:-development} LISTEN_ADDR=$${LISTEN_ADDR:-127.0.0.1:3000} \
		$(DEVDB) -dir .data/pg -- $(BIN) serve --dev

check: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: check build ## the whole suite, with the race detector, against a throwaway PostgreSQL
	$(DEVDB) -fast -- $(GO) test -race -count=1 -timeout 12m ./...

fuzz: build ## run each fuzz target for FUZZTIME (default 20s)
	$(GO) test -run '^$$' -fuzz FuzzDecodeRequest -fuzztime $${FUZZTIME:-20s} ./internal/wsapi
	$(GO) test -run '^$$' -fuzz FuzzFilter -fuzztime $${FUZZTIME:-20s} ./internal/events
	$(GO) test -run '^$$' -fuzz FuzzBuild -fuzztime $${FUZZTIME:-20s} ./internal/events

bench: build ## Go benchmarks of the hot paths
	$(GO) test -run '^$$' -bench . -benchmem ./internal/events

clean: ## remove build output (keeps .data/)
	rm -rf .bin
