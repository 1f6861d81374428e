# ExfilGuard. `make` alone lists the targets.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 30s
LOAD     ?= 30s
SOAK     ?= 10m
LOADFLAGS = $(if $(CONNS),-load.concurrency $(CONNS)) $(if $(MIX),-load.mix '$(MIX)')
BIN      ?= bin/exfilguard
DIST     ?= dist
ARCH     ?= $(shell $(GO) env GOARCH)
IMAGE    ?= exfilguard

.DEFAULT_GOAL := help
.PHONY: help build test vet fmt fuzz bench check load soak deb image release

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

load: ## mixed load on the real binary for LOAD (30s), with its figures (CONNS=48, MIX=plain=4,churn=1,...)
	$(GO) test ./proxy/loadtest -run '^TestLoad$$' -count=1 -v -timeout 0 -load $(LOAD) $(LOADFLAGS)

soak: ## mixed load for SOAK (10m), failing unless RSS, goroutines and fds stay flat; abuse tests in full
	$(GO) test ./proxy/loadtest -count=1 -v -timeout 0 -soak $(SOAK) -full $(LOADFLAGS)

deb: ## build dist/exfilguard_<version>_<arch>.deb with dpkg-deb (ARCH=amd64 or arm64)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/deb/$(ARCH)/exfilguard .
	packaging/deb/build.sh $(DIST)/deb/$(ARCH)/exfilguard '$(VERSION)' $(ARCH) $(DIST)

image: ## build the container image exfilguard:<version> from packaging/Dockerfile
	docker build -f packaging/Dockerfile --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) .

release: ## static linux/amd64 and linux/arm64 binaries and SHA256SUMS in dist/
	GO=$(GO) packaging/release.sh '$(VERSION)' $(DIST)
