# collector: build, test and try it. `sudo make demo` and `sudo make test`
# install what a fresh Debian or Ubuntu machine lacks first.

SHELL := /bin/bash
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BINARY := collector
# Debian package of each tool the build, the tests or the demo run.
APT_TOOLS := clang:clang llvm-strip:llvm ip:iproute2 ethtool:ethtool sqlite3:sqlite3
APT_HEADERS := /usr/include/bpf/bpf_helpers.h:libbpf-dev

.PHONY: all build generate test demo bench deps vet clean

all: build

build:
	$(GO) build -o $(BINARY) .

## generate: rebuild the BPF objects from bpf/*.c (needs clang)
generate: deps
	$(GO) generate ./bpf

## test: the whole suite; kernel tests need root (sudo make test)
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -v ./... 2>&1 | tee test.log; \
	status=$${PIPESTATUS[0]}; \
	echo "$$(grep -c -- '--- PASS' test.log) passed, $$(grep -c -- '--- FAIL' test.log) failed, $$(grep -c -- '--- SKIP' test.log) skipped"; \
	exit $$status

## demo: run the real daemon in a throwaway network lab (sudo make demo)
demo: deps build
	./$(BINARY) demo

## bench: packet cost against an empty XDP program, flush cost
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 2000000x ./bpfgo
	$(GO) test -run '^$$' -bench . ./agg

## deps: install the Debian packages this project needs, if missing
deps:
	@missing=""; \
	for t in $(APT_TOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t##*:}"; done; \
	for h in $(APT_HEADERS); do [ -e $${h%%:*} ] || missing="$$missing $${h##*:}"; done; \
	[ -x "$(GO)" ] || missing="$$missing golang-go"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

clean:
	rm -f $(BINARY) test.log
