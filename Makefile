# VulnZero — the Makefile is the contract. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin
PKGS := ./...
GOLANGCI := $(BIN)/golangci-lint
GOLANGCI_VERSION := v2.15.0
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: help build test test-deps lint fmt demo demo-serve bench bench-ingest bench-rollout bench-twin images fuzz docker clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/vulnzero
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/vulnzero ./cmd/vulnzero

test-deps: ## install sshd, PostgreSQL, git, shellcheck if missing (needs root)
	bash scripts/test-deps.sh

test: test-deps ## run the whole test suite (real sshd, PostgreSQL, git)
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 20m $(PKGS)

bench-rollout: ## rollout figures: merge-to-first-host latency; one stage to 200 sshd hosts vs Ansible and parallel-ssh (root)
	bash bench/rollout/run.sh

images: ## build the twin base image vulnzero/twin-debian:12 (debootstrap + docker import; cached by recipe hash; root)
	bash scripts/build-twin-image.sh

bench-ingest: ## ingestion figures: 1M findings as Trivy JSON and .nessus; parse, then SQLite and PostgreSQL ingest, peak RSS
	$(GO) run ./bench/ingest -n 1000000

bench-twin: images ## time one whole Docker twin run (provision + 7 phases + removal) with a warm image
	$(GO) test ./twin/docker -run '^$$' -bench '^BenchmarkTwinRun$$' -benchtime 5x -count 1

fuzz: ## run each parser fuzz target for a few seconds
# Budgets are counts, not durations: with a duration, go1.26's fuzz
# coordinator can fail a clean run with "context deadline exceeded" at the
# deadline (go.dev/issue/75804). Each count is a few seconds here.
	$(GO) test ./scan -run '^$$' -fuzz '^FuzzTrivy$$' -fuzztime 4000x -fuzzminimizetime 200x
	$(GO) test ./scan -run '^$$' -fuzz '^FuzzCSV$$' -fuzztime 40000x -fuzzminimizetime 200x
	$(GO) test ./scan -run '^$$' -fuzz '^FuzzWazuh$$' -fuzztime 40000x -fuzzminimizetime 200x
	$(GO) test ./scan -run '^$$' -fuzz '^FuzzQualys$$' -fuzztime 40000x -fuzzminimizetime 200x
	$(GO) test ./scan -run '^$$' -fuzz '^FuzzNessus$$' -fuzztime 40000x -fuzzminimizetime 200x
	$(GO) test ./scan -run '^$$' -fuzz '^FuzzTenable$$' -fuzztime 40000x -fuzzminimizetime 200x
	$(GO) test ./scan -run '^$$' -fuzz '^FuzzFastXML$$' -fuzztime 4000x -fuzzminimizetime 200x
	$(GO) test ./scan -run '^$$' -fuzz '^FuzzGrype$$' -fuzztime 10000x -fuzzminimizetime 200x
	$(GO) test ./scan -run '^$$' -fuzz '^FuzzOSV$$' -fuzztime 8000x -fuzzminimizetime 200x
	$(GO) test ./scan -run '^$$' -fuzz '^FuzzOpenVAS$$' -fuzztime 10000x -fuzzminimizetime 200x
	$(GO) test ./scan -run '^$$' -fuzz '^FuzzTrivyFastDecoder$$' -fuzztime 6000x -fuzzminimizetime 200x
	$(GO) test ./scan -run '^$$' -fuzz '^FuzzNessusParallel$$' -fuzztime 15000x -fuzzminimizetime 200x

lint: $(GOLANGCI) ## golangci-lint with the curated set in .golangci.yml
	$(GOLANGCI) run $(PKGS)

$(GOLANGCI):
	GOBIN=$(abspath $(BIN)) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

demo: build ## run the whole remediation loop offline on embedded defaults
	$(BIN)/vulnzero demo

demo-serve: build ## the demo, then keep serving /healthz, /metrics and the status page
	$(BIN)/vulnzero demo --serve

docker: build ## build the static container image vulnzero:$(VERSION) (no registry needed)
	cp /etc/ssl/certs/ca-certificates.crt docker/ca-certificates.crt
	docker build -t vulnzero:$(VERSION) .

clean: ## remove build output and demo state
	rm -rf $(BIN)/vulnzero .demo dist
