# rollcall: `make run` runs the whole system on this machine, `make test` tests it.
GO      ?= go
BIN     := $(CURDIR)/bin
DEVDIR  ?= $(CURDIR)/.rollcall-dev
# Extra flags for rollcall dev, e.g. DEVFLAGS="-services-config tour.yml".
DEVFLAGS ?=
# Packages tested in parallel; the end-to-end tests each start etcd, CoreDNS
# and systemd, so two at a time suits a 2-core machine.
TESTP   ?= 2
# A fuzz budget in executions, not seconds: with a wall-clock -fuzztime, Go's
# fuzz coordinator can fail a run with a bare "context deadline exceeded" when
# the deadline races a busy worker (nothing found, no input written). A count
# has no deadline to race. 20000 runs take 1-10 s per target here.
FUZZTIME ?= 20000x

.PHONY: all build run test vet fmt-check fuzz bench clean help test-deps

all: build

help:
	@echo "make build   build bin/coredns, bin/servicereg, bin/rollcall"
	@echo "make run     run the whole system here (rollcall dev): DNS on 127.0.0.1:1053"
	@echo "make test    gofmt, go vet and staticcheck, then every test (real etcd, CoreDNS, systemd), then short fuzz runs"
	@echo "make bench   benchmarks side by side; writes BENCHMARKS.md"
	@echo "make clean   remove bin/ and the dev data dir"

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

run: build
	$(BIN)/rollcall dev -data-dir $(DEVDIR) $(DEVFLAGS)

# gofmt, go vet, then staticcheck: its version is pinned by the tool line in
# go.mod, so `go tool` builds that version (and caches it) on any machine.
vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

# ROLLCALL_LONG=1: the fault tests that take a minute or more run too (a
# plain `go test ./...` skips them).
# What tests leave to look at (test/web's screenshots of the status page)
# goes to $(TEST_OUTPUT)/_artifacts, a folder per test; the test's log names
# the file (go test -v).
TEST_OUTPUT ?= $(CURDIR)/test-output

test: build vet test-deps
	mkdir -p $(TEST_OUTPUT)
	ROLLCALL_BIN=$(BIN) ROLLCALL_LONG=1 $(GO) test -count=1 -p $(TESTP) -timeout 20m -artifacts -outputdir $(TEST_OUTPUT) ./...
	$(MAKE) --no-print-directory fuzz

# Programs from Debian's packages that tests run for real, as binary:package
# pairs: test/resolvers puts unbound, dnsmasq and BIND's named in front of
# bin/coredns; test/web points Prometheus and Chromium at the plugin's http
# option.
TEST_DEPS ?= unbound:unbound dnsmasq:dnsmasq-base named:bind9 prometheus:prometheus chromium:chromium

# As root, install the missing ones. A policy-rc.d that denies every start
# (unless one is there already) keeps the packages' services from starting on
# install: nothing takes port 53 or 9090, or rewrites resolv.conf. A failed
# install does not fail `make test`: the tests that need a missing binary
# skip, naming it.
test-deps:
	@[ "$$(id -u)" = 0 ] || exit 0; \
	missing=; \
	for bp in $(TEST_DEPS); do \
	  b=$${bp%%:*}; command -v $$b >/dev/null 2>&1 || [ -x /usr/sbin/$$b ] || missing="$$missing $${bp#*:}"; \
	done; \
	[ -n "$$missing" ] || exit 0; \
	echo "installing$$missing (Debian packages) for the tests that run them"; \
	if [ ! -e /usr/sbin/policy-rc.d ]; then \
	  trap 'rm -f /usr/sbin/policy-rc.d' EXIT; \
	  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; \
	fi; \
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; } \
	  || echo "apt-get install$$missing failed: the tests that need them skip"

# Short fuzz runs keep the fuzz targets and their seed corpora working.
fuzz:
	@set -e; for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs grep -H -o '^func Fuzz[A-Za-z0-9_]*' | sed 's/:func /:/'); do \
	  file=$${spec%%:*}; fn=$${spec##*:}; pkg=./$$(dirname $${file#./}); \
	  echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

bench: build
	@command -v dnsperf >/dev/null || { echo "installing dnsperf (Debian package)"; apt-get update -qq && apt-get install -y -qq dnsperf; }
	$(GO) run ./bench -bin $(BIN) -out BENCHMARKS.md

clean:
	rm -rf $(BIN) $(DEVDIR)
