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

.PHONY: build test lint unit race bench fuzz conformance clean install deb deb-test

build:
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/palisade

install: build
	install -m 0755 $(BIN) /usr/local/bin/palisade

## test: everything CI runs (lint + every test tier; root-only tiers skip elsewhere).
test: lint unit race

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

unit:
	$(GO) test -count=1 -timeout 20m ./...

## race: the race detector over every package whose tests need no root
## (-short skips the end-to-end daemon tests there). A package with
## kernel, namespace or real-sshd tests goes in RACE_EXCLUDE.
RACE_EXCLUDE ?= /internal/firewall/(ipset|nft|ufw|actionexec|detect|nstest|fwtest)$$|/internal/cloudflare$$|/internal/harden/|/test/e2e|/internal/cli$$|/internal/testbin$$
race:
	CGO_ENABLED=1 $(GO) test -race -short -count=1 -timeout 20m $$($(GO) list ./... | grep -v -E '$(RACE_EXCLUDE)')

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	bash bench/run.sh

FUZZTIME ?= 30s
fuzz:
	bash bench/fuzz.sh $(FUZZTIME)

conformance: build
	python3 ../shared/conformance/check.py --bin $(BIN)

## deb: palisade_VERSION_ARCH.deb, offline and reproducible (docs/packaging.md).
# Every timestamp is the commit time, so two builds of one commit are
# byte-identical. Cross-build with make deb GOARCH=arm64.
SOURCE_DATE_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null || stat -c %Y VERSION)
DEB_ARCH := $(shell GOARCH='$(GOARCH)' $(GO) env GOARCH | sed -e 's/^386$$/i386/' -e 's/^arm$$/armhf/' -e 's/^ppc64le$$/ppc64el/' -e 's/^mips64le$$/mips64el/')
DEB_MAINTAINER ?= palisade developers <palisade@example.org>
DEB       := palisade_$(VERSION)_$(DEB_ARCH).deb
DEB_BUILD := build/deb

deb:
	rm -rf $(DEB_BUILD)
	GOOS=linux $(GO) build $(GOFLAGS_BUILD) -o $(DEB_BUILD)/palisade ./cmd/palisade
	env -u GOOS -u GOARCH $(GO) run $(GOFLAGS_BUILD) ./internal/cli/gendoc -out $(DEB_BUILD)/gen -date $(SOURCE_DATE_EPOCH)
	VERSION='$(VERSION)' COMMIT='$(COMMIT)' DEB_ARCH='$(DEB_ARCH)' MAINTAINER='$(DEB_MAINTAINER)' \
	  SOURCE_DATE_EPOCH='$(SOURCE_DATE_EPOCH)' GO='$(GO)' \
	  bash packaging/deb/build.sh $(DEB_BUILD)/palisade $(DEB_BUILD)/gen $(DEB)

## deb-test: build the package and run its acceptance checks (test/deb/run.sh).
deb-test:
	bash test/deb/run.sh

clean:
	rm -rf bin build palisade_*.deb
