# kcp-tmc — the two commands a fresh machine needs:
#   make up     build the pinned toolchain if missing, then deploy STACK (default dev → rendered/dev/)
#   make test   build the pinned toolchain if missing, then vet and run every test
SHELL := bash
STACK ?= dev
export PULUMI_SKIP_UPDATE_CHECK := true

.PHONY: engine toolchain up preview destroy test vet fmt-check drill bench

# engine: pulumi CLI + Kubernetes plugin; toolchain: that plus the test judges.
engine:
	@hack/toolchain.sh engine >/dev/null

toolchain:
	@hack/toolchain.sh all >/dev/null

up: engine
	go run ./cmd/kcp-tmc up --stack $(STACK)

preview: engine
	go run ./cmd/kcp-tmc preview --stack $(STACK)

destroy: engine
	go run ./cmd/kcp-tmc destroy --stack $(STACK) --yes

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	go vet ./...

test: toolchain fmt-check vet
	go test -count=1 ./...

# The DR drill (seed §14) on real etcd: 10,000 keys, backup through the aws CLI
# to an S3-compatible server, cluster destroyed, restored, every key checked;
# prints the recovery time.
drill: toolchain
	go test -count=1 -run TestDisasterRecoveryDrill -v ./components/backup

# Benchmarks (README "Performance" and "Scale"): the program under mocks per
# stack and per cluster count, real-engine previews against an empty program,
# and a no-op up.
bench: engine
	go test -run XXX -bench . -benchtime=5x ./stacks ./automation
