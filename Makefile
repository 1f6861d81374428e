# ExfilGuard. `make` alone lists the targets.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 30s
BIN      ?= bin/exfilguard

.DEFAULT_GOAL := help
.PHONY: help build test vet fmt fuzz bench check

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build a static binary into bin/ (CGO_ENABLED=0, -trimpath, version stamped)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

test: ## run every test with the race detector
	$(GO) test -race ./...

vet: ## go vet
	$(GO) vet ./...

fmt: ## fail when gofmt would change a file
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

fuzz: ## run each fuzz target for FUZZTIME (default 30s)
	@set -e; for target in $$($(GO) test ./fuzz -list '^Fuzz' | grep '^Fuzz'); do \
		echo "== $$target ($(FUZZTIME))"; \
		$(GO) test ./fuzz -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME); \
	done

bench: ## run every benchmark once, as a smoke test
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

check: fmt vet test ## what CI runs: fmt, vet and test
