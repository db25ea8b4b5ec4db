# palisade build and test entry points. Everything builds with CGO_ENABLED=0.
GO        ?= go
BIN       ?= bin/palisade
STATICCHECK_VERSION ?= v0.8.2
export CGO_ENABLED = 0

.PHONY: build test lint unit bench fuzz conformance clean install

build:
	$(GO) build -trimpath -ldflags='-s -w' -o $(BIN) ./cmd/palisade

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
