# kcp-tmc — the two commands a fresh machine needs:
#   make up     build the pinned toolchain if missing, then deploy STACK (default dev → rendered/dev/)
#   make test   build the pinned toolchain if missing, then vet and run every test
# A long first step prints a line when it starts and when it ends; the go
# command's output goes to a log under $(LOGS), named on that line.
SHELL := bash
STACK ?= dev
CACHE := $(or $(KCP_TMC_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kcp-tmc)
LOGS := $(CACHE)/logs
export PULUMI_SKIP_UPDATE_CHECK := true

.PHONY: engine toolchain modules cli up preview destroy test vet fmt-check drill bench bench-sync e2e cluster-e2e node-logging-e2e

# engine: pulumi CLI + Kubernetes plugin; toolchain: that plus the test judges.
engine:
	@hack/toolchain.sh engine >/dev/null

toolchain:
	@hack/toolchain.sh all >/dev/null

# Downloads first, into a log: otherwise a fresh machine's first go command
# prints hundreds of "go: downloading" lines.
modules:
	@hack/step.sh "downloading Go modules" $(LOGS)/go-mod-download.log go mod download

cli: modules
	@hack/step.sh "compiling bin/kcp-tmc" $(LOGS)/kcp-tmc-build.log go build -o bin/kcp-tmc ./cmd/kcp-tmc

up: engine cli
	bin/kcp-tmc up --stack $(STACK)

preview: engine cli
	bin/kcp-tmc preview --stack $(STACK)

destroy: engine cli
	bin/kcp-tmc destroy --stack $(STACK) --yes

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: modules
	@echo "make: go vet ./... (on a cold build cache this compiles every package first)" >&2
	go vet ./...

# Test binaries are linked without DWARF (-s -w): tracebacks keep their file
# and line, and each of the ~25 links is a quarter faster. tests/ runs about
# ten minutes of real-engine tests in one package, past go test's default
# 10m timeout on a loaded machine (2026-12-07).
test: toolchain fmt-check vet
	go test -count=1 -timeout 25m -ldflags='-s -w' ./...

# The monthly DR drill (docs/backup.md) on real etcd: 10,000 keys, backup through the aws CLI
# to an S3-compatible server, cluster destroyed, restored, every key checked;
# prints the recovery time.
drill: toolchain
	go test -count=1 -run TestDisasterRecoveryDrill -v ./components/backup

# Benchmarks (README "Performance" and "Scale"): the program under mocks per
# stack and per cluster count, real-engine previews against an empty program,
# and a no-op up; then, once each (minutes, not milliseconds), a real-engine
# preview of a 100-cluster stack and the state each cluster adds.
bench: engine
	go test -run XXX -bench . -benchtime=5x ./stacks
	go test -run XXX -bench '^Benchmark(Preview|NoOpUp)$$' -benchtime=5x ./automation
	go test -run XXX -bench '^Benchmark(PreviewProd|StatePerCluster)$$' -benchtime=1x ./automation

# Real-binary e2e (README "Real-binary e2e"): the stacks' etcd, kcp,
# front-proxy and api-syncagent as real processes; then the lost etcd
# member that rejoins by itself (three real etcd processes; also in make
# test); fluent-bit shipping a pod's logs as the logging DaemonSet runs it
# (as root). The kcp binaries are not in the Go module proxy; bring them
# (kcp's release archives) and name them; Traefik's too (the Gateway test),
# and fluent-bit's.
E2E_BINS := KCP_BIN KCP_FRONT_PROXY_BIN CACHE_SERVER_BIN API_SYNCAGENT_BIN
e2e: toolchain
	@missing=""; for v in $(E2E_BINS) TRAEFIK_BIN FLUENT_BIT_BIN; do [ -n "$${!v}" ] && [ -x "$${!v}" ] || missing="$$missing $$v"; done; \
	if [ -n "$$missing" ]; then echo "make e2e: set$$missing to executable kcp v0.32.3 / api-syncagent v0.7.0 / traefik v3.7.9 / fluent-bit v3.2.10 binaries (README \"Real-binary e2e\")" >&2; exit 2; fi
	@mkdir -p $(LOGS); echo "make e2e: full output in $(LOGS)/e2e.log (programs' JSON log lines left out here)"
	set -o pipefail; go test -count=1 -v -timeout 20m ./tests/e2e 2>&1 | tee $(LOGS)/e2e.log | grep -v '^        {'
	set -o pipefail; go test -count=1 -v -run TestLostMemberRejoinsByItself ./components/etcd 2>&1 | tee -a $(LOGS)/e2e.log | grep -v '^        {'
	set -o pipefail; go test -count=1 -v -run TestFluentBitShipsToElasticsearch ./tests 2>&1 | tee -a $(LOGS)/e2e.log | grep -v '^        \['

# Sync at scale (README "Sync at scale"): the dev stack with up to 10
# api-syncagent clusters, every program real, Widgets created through kcp
# per step of KCP_TMC_BENCH_SYNC_STEPS (agents:objects@rate, default
# tests/e2e/sync_bench_test.go's); prints latency, errors, throughput and
# CPU/memory per step. About an hour with the default steps; each run's
# log is its own (bench-sync-<UTC time>.log), the next keeps the last's figures.
bench-sync: toolchain
	@missing=""; for v in $(E2E_BINS); do [ -n "$${!v}" ] && [ -x "$${!v}" ] || missing="$$missing $$v"; done; \
	if [ -n "$$missing" ]; then echo "make bench-sync: set$$missing to executable kcp v0.32.3 / api-syncagent v0.7.0 binaries (README \"Real-binary e2e\")" >&2; exit 2; fi
	@mkdir -p $(LOGS); log=$(LOGS)/bench-sync-$$(date -u +%Y%m%dT%H%M%SZ).log; echo "make bench-sync: full output in $$log"; \
	set -o pipefail; go test -count=1 -v -run XXX -bench BenchmarkSync -benchtime=1x -timeout 3h ./tests/e2e 2>&1 | tee $$log | grep --line-buffered -v '^        [{EIW]'

# Cluster e2e (README "Cluster e2e"): `kcp-tmc up` of the dev stack onto a
# single-node cluster that runs its Pods (kubelet, containerd, kube-proxy,
# CoreDNS, cert-manager, Prometheus), smoke, a second up, destroy; an agent
# on the node; a lost etcd member; disruptions under load; the sharded
# topology with a shard's etcd restored. Root on Linux; installs Debian's
# containerd, runc, CNI plugins, nft and unshare (NetworkPolicy enforcement),
# static busybox (etcd's join and backup images) and jq (the runbook's
# restore) by name when missing; the kcp, api-syncagent and cert-manager binaries come from the
# variables below, as for make e2e.
CLUSTER_E2E_BINS := KCP_BIN KCP_FRONT_PROXY_BIN CACHE_SERVER_BIN API_SYNCAGENT_BIN CERT_MANAGER_CONTROLLER_BIN CERT_MANAGER_WEBHOOK_BIN CERT_MANAGER_CAINJECTOR_BIN TRAEFIK_BIN
NODE_PACKAGES := containerd runc containernetworking-plugins iptables iproute2 nftables util-linux mount busybox-static jq
cluster-e2e: toolchain
	@if [ "$$(uname -s)" != Linux ] || [ "$$(id -u)" != 0 ]; then echo "make cluster-e2e: needs root on Linux (it runs containerd, a kubelet and kube-proxy)" >&2; exit 2; fi
	@missing=""; for v in $(CLUSTER_E2E_BINS); do [ -n "$${!v}" ] && [ -x "$${!v}" ] || missing="$$missing $$v"; done; \
	if [ -n "$$missing" ]; then echo "make cluster-e2e: set$$missing to executable, statically linked kcp v0.32.3 / api-syncagent v0.7.0 / cert-manager v1.21.2 / Traefik v3.7.9 binaries (README \"Cluster e2e\")" >&2; exit 2; fi
	@if ! command -v containerd >/dev/null || ! command -v runc >/dev/null || [ ! -x /usr/lib/cni/bridge ] || [ ! -x /bin/busybox ] || ! command -v jq >/dev/null || ! command -v nft >/dev/null || ! command -v unshare >/dev/null; then \
	  echo "make cluster-e2e: installing $(NODE_PACKAGES) (Debian)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(NODE_PACKAGES) >/dev/null; fi
	@hack/toolchain.sh cluster >/dev/null
	@mkdir -p $(LOGS); echo "make cluster-e2e: full output in $(LOGS)/cluster-e2e.log"
	set -o pipefail; KCP_TMC_CLUSTER_E2E=1 go test -count=1 -v -timeout 90m ./tests/clustere2e 2>&1 | tee $(LOGS)/cluster-e2e.log | grep -v '^        {'

# node-logging-e2e: the logging DaemonSet on the same kind of node (no kcp):
# the real fluent-bit ships real containers' logs to an Elasticsearch
# stand-in while Prometheus scrapes it. Root on Linux; FLUENT_BIT_BIN.
node-logging-e2e: toolchain
	@if [ "$$(uname -s)" != Linux ] || [ "$$(id -u)" != 0 ]; then echo "make node-logging-e2e: needs root on Linux (it runs containerd, a kubelet and kube-proxy)" >&2; exit 2; fi
	@if [ -z "$$FLUENT_BIT_BIN" ] || [ ! -x "$$FLUENT_BIT_BIN" ]; then echo "make node-logging-e2e: set FLUENT_BIT_BIN to an executable fluent-bit v3.2.10 (README \"Real-binary e2e\")" >&2; exit 2; fi
	@if ! command -v containerd >/dev/null || ! command -v runc >/dev/null || [ ! -x /usr/lib/cni/bridge ] || [ ! -x /bin/busybox ] || ! command -v nft >/dev/null || ! command -v unshare >/dev/null; then \
	  echo "make node-logging-e2e: installing $(NODE_PACKAGES) (Debian)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(NODE_PACKAGES) >/dev/null; fi
	@hack/toolchain.sh cluster >/dev/null
	@mkdir -p $(LOGS); echo "make node-logging-e2e: full output in $(LOGS)/node-logging-e2e.log"
	set -o pipefail; KCP_TMC_CLUSTER_E2E=1 go test -count=1 -v -timeout 30m ./tests/nodelogging 2>&1 | tee $(LOGS)/node-logging-e2e.log
