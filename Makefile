# meshward Makefile. `make help` lists the targets.
#
# Everything the tests need is installed here on first use and cached per
# user in $(CACHE_DIR), so a fresh clone on a warm machine rebuilds nothing.

SHELL := /usr/bin/env bash -o pipefail
.DEFAULT_GOAL := help

GO            ?= go
CACHE_DIR     ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/meshward
BIN           := $(CURDIR)/bin
KUBE_VERSION  := v1.36.3
GOLANGCI_VERSION := v2.15.0
BENCHSTAT_VERSION := v0.0.0-20260908200009-22c9c6c9d4da
CONTROLLER_TOOLS_VERSION := v0.23.0
DEMO_DIR      ?= examples/bookstore-grpc

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/meshward/meshward/internal/version.Version=$(VERSION)

KUBE_APISERVER := $(CACHE_DIR)/kube-apiserver-$(KUBE_VERSION)/kube-apiserver
GOLANGCI_LINT  := $(CACHE_DIR)/golangci-lint-$(GOLANGCI_VERSION)/golangci-lint
BENCHSTAT      := $(CACHE_DIR)/benchstat-$(BENCHSTAT_VERSION)/benchstat
CONTROLLER_GEN := $(CACHE_DIR)/controller-gen-$(CONTROLLER_TOOLS_VERSION)/controller-gen

export KUBEBUILDER_ASSETS := $(BIN)

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: build
build: ## Build bin/meshward.
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/meshward ./cmd/meshward

.PHONY: demo
demo: ## Serve the end-to-end xDS scenario (examples/bookstore-grpc) to proxyless gRPC workloads, no cluster needed.
	$(GO) run -ldflags '$(LDFLAGS)' ./cmd/meshward serve --dir $(DEMO_DIR) --xds-flavor grpc --cert-dir $(CACHE_DIR)/demo-certs

.PHONY: test
test: envtest $(BIN)/nginx ## Run every test (installs etcd and nginx, builds kube-apiserver, on first use).
	$(GO) test -count=1 ./...

BENCH_COUNT ?= 6
BENCH_PKGS  ?= ./...

.PHONY: bench
bench: $(BENCHSTAT) ## Run the benchmarks; raw results in bench/latest.txt, medians in bench/summary.txt.
	@mkdir -p bench
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) $(BENCH_PKGS) | tee bench/latest.txt
	$(BENCHSTAT) bench/latest.txt | tee bench/summary.txt

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Regenerate generated code and manifests.
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=charts/meshward/crds
	$(GO) generate ./...

.PHONY: verify
verify: ## Check formatting, go.mod tidiness and that generated files are current.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) mod tidy -diff
	$(MAKE) generate
	@git diff --exit-code -- . ':!go.sum' || { echo "generated files are stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- api charts)" || { echo "generated files are not committed:"; git status --porcelain --untracked-files=all -- api charts; exit 1; }
	$(GO) vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

##@ Test dependencies

.PHONY: envtest
envtest: $(BIN)/kube-apiserver $(BIN)/etcd ## Provide kube-apiserver and etcd in bin/ for envtest.

$(BIN)/kube-apiserver: $(KUBE_APISERVER)
	@mkdir -p $(BIN)
	ln -sf $(KUBE_APISERVER) $@

# kube-apiserver is built from the Go module proxy (setup-envtest's download
# is not reachable from every build machine). hack/tools/kube-apiserver pins
# k8s.io/kubernetes and its staging modules.
$(KUBE_APISERVER):
	@mkdir -p $(dir $@)
	@echo "building kube-apiserver $(KUBE_VERSION) into $(dir $@) (several minutes, once per machine)"
	cd hack/tools/kube-apiserver && CGO_ENABLED=0 $(GO) build -trimpath \
		-ldflags '-s -w -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=36' \
		-o $@.tmp k8s.io/kubernetes/cmd/kube-apiserver
	mv $@.tmp $@

$(BIN)/etcd:
	@mkdir -p $(BIN)
	@command -v etcd >/dev/null 2>&1 || hack/install-packages.sh etcd-server
	ln -sf "$$(command -v etcd)" $@

# nginx runs the auth_request end-to-end tests.
$(BIN)/nginx:
	@mkdir -p $(BIN)
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || hack/install-packages.sh nginx
	ln -sf "$$(command -v nginx || echo /usr/sbin/nginx)" $@

$(BENCHSTAT):
	@mkdir -p $(dir $@)
	GOBIN=$(dir $@) $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)

$(GOLANGCI_LINT):
	@mkdir -p $(dir $@)
	GOBIN=$(dir $@) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

# controller-gen writes the deepcopy functions of api/ and the CRDs generated
# from its types into charts/meshward/crds (next to the hand-written SMI CRDs,
# which it leaves alone).
$(CONTROLLER_GEN):
	@mkdir -p $(dir $@)
	GOBIN=$(dir $@) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: clean
clean: ## Remove bin/ (the per-user cache is kept).
	rm -rf $(BIN)
