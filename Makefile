# collector: build, test and try it. `sudo make demo` and `sudo make test`
# install what a fresh Debian or Ubuntu machine lacks first.

SHELL := /bin/bash
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BINARY := collector
# Stamped into the binary (`collector version`, package cli); a plain
# `go build` leaves dev/unknown.
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
STAMPED := github.com/back2basic/collector/cli
LDFLAGS := -X $(STAMPED).version=$(VERSION) -X $(STAMPED).commit=$(COMMIT)
# Where `make deb` leaves the package.
DIST ?= dist
# What each command needs from Debian's packages, as NEED:PACKAGE: NEED
# is a command on PATH, or a file when it starts with /. The demo runs
# the committed BPF objects in a lab of network namespaces: ip and
# sqlite3 (which shows the stored rows) are all it needs.
DEMO_DEPS := ip:iproute2 sqlite3:sqlite3
# The tests add the BPF compiler and headers (make generate), tc and
# ethtool for the lab tests, shellcheck, systemd-analyze, dpkg-deb (make
# deb), git, chromium for the dashboard's browser test and PostgreSQL for
# the sync tests.
TEST_DEPS := $(DEMO_DEPS) clang:clang llvm-strip:llvm tc:iproute2 ethtool:ethtool shellcheck:shellcheck \
	systemd-analyze:systemd dpkg-deb:dpkg git:git chromium:chromium \
	/usr/include/bpf/bpf_helpers.h:libbpf-dev /usr/lib/postgresql:postgresql
# The sync tests start PostgreSQL servers of their own: Debian's package
# is told not to create and start a cluster of its own on this machine.
NO_PG_CLUSTER := [ -e /etc/postgresql-common/createcluster.conf ] || { mkdir -p /etc/postgresql-common && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf; }
# install_missing NEED:PACKAGE...: apt-get install what is missing, each
# package once, without recommends (chromium's would bring avahi-daemon),
# and with a policy-rc.d that refuses every service start while apt runs
# (unless the machine has a policy of its own): the project needs no
# service running, and a Sia host should get none from it.
define install_missing
	@if [ ! -x "$(GO)" ]; then \
		echo "make: no Go on PATH or in /usr/local/go; go.mod needs Go $$(sed -n 's/^go //p' go.mod) or newer (https://go.dev/dl/), which Debian 12's golang-go is not" >&2; \
		exit 1; \
	fi
	@missing=""; \
	add() { case " $$missing " in *" $$1 "*) ;; *) missing="$$missing $$1";; esac; }; \
	for d in $(1); do \
		need=$${d%%:*}; \
		case $$need in /*) [ -e "$$need" ];; *) command -v "$$need" >/dev/null;; esac || add $${d##*:}; \
	done; \
	[ -n "$$missing" ] || exit 0; \
	echo "installing:$$missing"; \
	case "$$missing" in *postgresql*) $(NO_PG_CLUSTER);; esac; \
	policy=/usr/sbin/policy-rc.d; \
	if [ ! -e $$policy ]; then \
		trap 'rm -f '$$policy EXIT; \
		printf '#!/bin/sh\n# make deps: no service starts while packages install\nexit 101\n' >$$policy && chmod 755 $$policy; \
	fi; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $$missing
endef
# Debian's promtool, unpacked (see the promtool target).
PROMTOOL := build/tools/usr/bin/promtool

.PHONY: all build generate test test-here demo bench deps deps-demo vet clean deb install uninstall test-kernels vm-clean test-fresh

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BINARY) .

## deb: the Debian package, in $(DIST)/; built without cgo, so it needs
## no particular libc and installs on Ubuntu 22.04 as on Debian 12, and
## without symbol tables (-s -w), as Debian ships binaries
deb:
	mkdir -p $(DIST)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS) -s -w' -o $(DIST)/collector .
	packaging/build-deb.sh $(DIST)/collector '$(VERSION)' $(DIST)

## install: build and install on this machine (sudo make install), or
## stage the files under DESTDIR
install: build
	./install.sh $(if $(DESTDIR),--root '$(DESTDIR)')

## uninstall: remove it again; data and settings stay (./uninstall.sh --purge removes them)
uninstall:
	./uninstall.sh $(if $(DESTDIR),--root '$(DESTDIR)')

## generate: rebuild the BPF objects from bpf/*.c (needs clang)
generate: deps
	$(GO) generate ./bpf

## test: the whole suite (sudo make test): the tests on this machine's
## kernel, then the kernel tests on Debian's 5.10, 6.1, 6.12 and sid
## kernels and the Debian package under systemd on 6.1 and 5.10, each in
## a VM (about 30 minutes from nothing, on two cores without KVM)
test: test-here test-kernels test-service-guest

## test-here: the tests on this machine's kernel only; kernel tests need
## root
test-here: deps $(PROMTOOL)
	$(GO) vet ./...
	@PATH="$(abspath $(dir $(PROMTOOL))):$$PATH" $(GO) test -count=1 -timeout 30m -v ./... 2>&1 | tee test.log; \
	status=$${PIPESTATUS[0]}; \
	echo "$$(grep -c -- '--- PASS' test.log) passed, $$(grep -c -- '--- FAIL' test.log) failed, $$(grep -c -- '--- SKIP' test.log) skipped"; \
	exit $$status

## demo: run the real daemon in a throwaway network lab (sudo make demo)
demo: deps-demo build
	./$(BINARY) demo $(ARGS)

## bench: packet cost against an empty program, flush cost, the file, the
## readers, the start and the daemon's memory against a flood's database,
## a 1,000-host fleet syncing into PostgreSQL; ends with every figure that has a goal beside it (lines GOAL in the log)
bench: deps
	@mkdir -p build; : > build/bench.log; status=0; \
	for run in "-benchtime 2000000x ./bpfgo" "./agg" "./store" "-benchtime 3x ./alert" \
		"-benchtime 20x ./live" "-benchtime 1x ./e2e/datapath" "-timeout 60m ./pgsync"; do \
		$(GO) test -run '^$$' -bench . $$run 2>&1 | tee -a build/bench.log; \
		[ $${PIPESTATUS[0]} -eq 0 ] || status=1; \
	done; \
	echo; echo "figure | before | now | goal | verdict"; \
	grep '^GOAL | ' build/bench.log | cut -d'|' -f2- ; \
	exit $$status

## promtool: Debian's promtool, which checks the metrics and the alerting
## rules, unpacked into build/tools: installing the prometheus package would
## also start a Prometheus server on this machine
$(PROMTOOL):
	@mkdir -p build/tools/deb
	cd build/tools/deb && { apt-get download prometheus 2>/dev/null || { apt-get update -qq && apt-get download prometheus; }; }
	dpkg-deb -x build/tools/deb/prometheus_*.deb build/tools
	@touch $@

## deps: install the Debian packages the tests need, if missing
deps:
	$(call install_missing,$(TEST_DEPS))

## deps-demo: install the Debian packages the demo needs, if missing
deps-demo:
	$(call install_missing,$(DEMO_DEPS))

## test-kernels: the kernel tests in a VM (qemu) on each of Debian's
## kernels, KERNELS="5.10 6.1 6.12 sid" by default (vmtest/kernels.conf);
## one PASS/FAIL line each. Kernels, root image and logs in build/vm
## (vmtest/README.md). The tests are built as the invoking user, the
## rest needs root: sudo is used when not root. KVM when a probe guest
## runs under it, else software emulation; VM_ACCEL=kvm or tcg forces one
## (vmtest/accel.sh).
KERNELS ?= 5.10 6.1 6.12 sid
VM_DIR ?= build/vm
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
test-kernels:
	@[ -x "$(GO)" ] || $(MAKE) --no-print-directory deps
	GO=$(GO) vmtest/mkpayload.sh $(VM_DIR)/payload
	$(SUDO) env VM=$(abspath $(VM_DIR)) VM_ACCEL=$(VM_ACCEL) vmtest/test-kernels.sh $(KERNELS)

## vm-clean: forget the VM cache (kernels, root tree, images, logs)
vm-clean:
	$(SUDO) rm -rf $(VM_DIR)

## test-service-guest: the Debian package's life under a real systemd in a
## VM per kernel, KERNELS="6.1 5.10" unless given: dpkg -i, counting real
## traffic exactly, restart and SIGKILL under traffic, restart policy,
## dpkg -r, dpkg -P; one PASS/FAIL line each (vmtest/test-service.sh).
## Needs root: sudo is used when not root.
.PHONY: test-service-guest
SERVICE_KERNELS := $(if $(filter command line environment,$(origin KERNELS)),$(KERNELS),6.1 5.10)
test-service-guest:
	@[ -x "$(GO)" ] || $(MAKE) --no-print-directory deps
	$(if $(filter 0,$(shell id -u)),,sudo) env VM=$(CURDIR)/build/vm VM_ACCEL=$(VM_ACCEL) GO=$(GO) vmtest/test-service.sh $(SERVICE_KERNELS)

## test-fresh: the README's `make demo` and `make test-here`, as root
## without sudo, on a fresh Debian 12 (debootstrap minbase with make and
## git, chroot) that has only /usr/local/go and a clean clone of HEAD:
## `make deps` must install the rest. Not part of test. Logs in
## build/fresh/logs (vmtest/test-fresh.sh). Needs root: sudo is used
## when not root.
test-fresh:
	$(SUDO) vmtest/test-fresh.sh

clean:
	rm -rf $(BINARY) test.log $(DIST)
