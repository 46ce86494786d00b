# Sluice build, lint and test entry points. `make help` lists the targets.

GO          ?= go
TEST_TIMEOUT ?= 20m
# Tools are built from tools/go.mod, so their versions are pinned apart from the main module.
TOOLS_DEPS  := tools/go.mod tools/go.sum
# The container tier runs images built here and removes its own containers; testcontainers'
# reaper is an image to pull, which a machine without a registry cannot.
export TESTCONTAINERS_RYUK_DISABLED ?= true

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9\/_.-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: demo
demo: ## build the CLI and run the example pipeline, ending in a rollout, on an in-process fleet
	@scripts/install-deps demo
	@$(MAKE) --no-print-directory bin/sluice bin/k6
	bin/sluice demo

.PHONY: test
test: deps lint bin/k6 images ## install what the tiers need, lint, build the images, then every test tier
	@rm -f .build/fleet-report.txt
	SLUICE_FLEET_REPORT=$(CURDIR)/.build/fleet-report.txt $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	@if [ -f .build/fleet-report.txt ]; then echo "container tier: $$(cat .build/fleet-report.txt)"; fi

.PHONY: images
images: ## build the fleet's images (sluice/base, nats, sluice, worker); unchanged inputs are not rebuilt
	scripts/build-images

.PHONY: fleet
fleet: bin/sluice ## stand up compose.yaml's fleet (3 NATS nodes, 2 coordinators, workers, the example app) and wait until healthy
	scripts/fleet up

.PHONY: fleet-down
fleet-down: ## stop the compose fleet (its JetStream volumes stay; FLEET_VOLUMES=drop removes them)
	scripts/fleet down

.PHONY: deps
deps: ## install the Debian packages the test tiers need (as root; otherwise it says how)
	scripts/install-deps test

.PHONY: lint
lint: proto-check proto-breaking bin/buf bin/staticcheck ## fail on stale generated code, breaking wire changes, buf lint, go vet, staticcheck, gofmt
	bin/buf lint
	$(GO) vet ./...
	bin/staticcheck ./...
	@out="$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt: these files need formatting (run gofmt -w):"; echo "$$out"; exit 1; fi

# Generates into a scratch copy of proto/ (hand-written files copied, *.pb.go left out) and
# compares it with proto/: a missing, stale or orphaned *.pb.go fails.
.PHONY: proto-check
proto-check: bin/buf bin/protoc-gen-go
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	mkdir -p "$$tmp/proto" && \
	(cd proto && find . -type f ! -name '*.pb.go' -exec cp --parents {} "$$tmp/proto/" \;) && \
	bin/buf generate -o "$$tmp" && \
	if ! diff -r proto "$$tmp/proto"; then \
		echo "generated code in proto/ is stale: run 'make proto' and commit the result"; exit 1; \
	fi

# Tasks, results and events are a public contract (other systems subscribe to the events):
# a change that breaks the wire format of BUF_AGAINST (default: the previous commit) fails.
BUF_AGAINST ?= .git\#ref=HEAD~1
.PHONY: proto-breaking
proto-breaking: bin/buf
	@if git rev-parse -q --verify HEAD~1 >/dev/null; then \
		bin/buf breaking --against '$(BUF_AGAINST)'; \
	else \
		echo "proto-breaking: no previous commit to compare with"; \
	fi

.PHONY: proto
proto: bin/buf bin/protoc-gen-go ## regenerate the *.pb.go files beside the .proto files
	bin/buf generate

.PHONY: bench
bench: bin/sluice ## measure Sluice beside the JetStream floor (`sluice bench`; run it on a quiet machine)
	bin/sluice bench

.PHONY: bench-go
bench-go: ## run the Go benchmarks of every package (engines, worker, coordinator)
	$(GO) test -run '^$$' -bench . -benchmem -timeout $(TEST_TIMEOUT) ./...

# go build decides itself whether the binary is stale, so this target always asks it.
.PHONY: bin/sluice
bin/sluice: ## build the CLI (its version names the commit: git describe)
	@echo "building bin/sluice (the first build downloads and compiles its modules: minutes; later ones seconds)"
	@scripts/progress "building bin/sluice" $(GO) build -ldflags "-X github.com/sluice-ci/sluice/internal/version.commit=$$(git describe --always --dirty 2>/dev/null)" -o $@ ./cmd/sluice

bin/buf: $(TOOLS_DEPS) ## build buf from tools/go.mod
	cd tools && $(GO) build -o ../$@ github.com/bufbuild/buf/cmd/buf

bin/protoc-gen-go: $(TOOLS_DEPS) ## build protoc-gen-go from tools/go.mod
	cd tools && $(GO) build -o ../$@ google.golang.org/protobuf/cmd/protoc-gen-go

bin/staticcheck: $(TOOLS_DEPS) ## build staticcheck from tools/go.mod
	cd tools && $(GO) build -o ../$@ honnef.co/go/tools/cmd/staticcheck

bin/k6: $(TOOLS_DEPS) ## build k6 from tools/go.mod
	@echo "building bin/k6 from tools/go.mod for the load stage (a first build takes a few minutes)"
	@cd tools && ../scripts/progress "building bin/k6" $(GO) build -o ../$@ go.k6.io/k6

.PHONY: clean
clean: ## remove built binaries, image build contexts and the dev data dir (not .fleet: it holds the fleet's keys)
	rm -rf bin .build .sluice
