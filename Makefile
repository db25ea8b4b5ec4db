# palisade build and test entry points. Everything builds with CGO_ENABLED=0.
GO        ?= go
BIN       ?= bin/palisade
STATICCHECK_VERSION ?= v0.8.2
export CGO_ENABLED = 0

# Version stamping (internal/version): the release number is the VERSION file
# (override: make VERSION=0.2.0), the commit and a dirty flag come from git.
# VCS stamping by the toolchain is off (-buildvcs=false) so a build gives the
# same bytes whatever GOFLAGS says and works in a tree git refuses to read.
VERSION  := $(shell cat VERSION)
COMMIT   := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
MODIFIED := $(shell git status --porcelain 2>/dev/null | grep -q . && echo true)
VERSION_PKG := github.com/palisade-project/palisade/internal/version
LDFLAGS  := -s -w -X $(VERSION_PKG).version=$(VERSION) -X $(VERSION_PKG).commit=$(COMMIT) -X $(VERSION_PKG).modified=$(MODIFIED)
GOFLAGS_BUILD := -trimpath -buildvcs=false -ldflags='$(LDFLAGS)'

.PHONY: build test lint unit bench fuzz conformance clean install

build:
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/palisade

install: build
	install -m 0755 $(BIN) /usr/local/bin/palisade

## test: everything CI runs (lint + every test tier; root-only tiers skip elsewhere).
test: lint unit

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

unit:
	$(GO) test -count=1 -timeout 20m ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	bash bench/run.sh

FUZZTIME ?= 30s
fuzz:
	bash bench/fuzz.sh $(FUZZTIME)

conformance: build
	python3 ../shared/conformance/check.py --bin $(BIN)

clean:
	rm -rf bin
