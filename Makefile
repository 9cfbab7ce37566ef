# Ganger's build. `make demo` runs the demo; `make test` runs every test.
GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
IMAGE    ?= ganger-echo:latest
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(shell git rev-parse HEAD 2>/dev/null) -X main.buildDate=$(shell date -u -d @$${SOURCE_DATE_EPOCH:-$$(date +%s)} +%Y-%m-%dT%H:%M:%SZ)
export CGO_ENABLED := 0

.PHONY: all build dist image image-ganger redis-image busybox-image cluster-image docker demo test test-deps test-unit bench fuzz vet clean

all: build

## build: bin/ganger, bin/ganger-init and bin/ganger-echo (static)
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ganger ./cmd/ganger
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ganger-init ./cmd/ganger-init
	$(GO) build -trimpath -ldflags '-s -w' -o bin/ganger-echo ./cmd/ganger-echo

## dist: release tarballs for linux/amd64 and linux/arm64, static, in dist/ with SHA256SUMS
dist:
	VERSION='$(VERSION)' GO_LDFLAGS='$(LDFLAGS)' GO='$(GO)' bash scripts/dist.sh

## docker: make sure a Docker Engine answers (installs and starts one as root)
docker:
	@bash scripts/ensure-docker.sh

## image: the demo service image, FROM scratch, built locally (no registry)
image: build docker
	@bash scripts/build-image.sh bin/ganger-echo $(IMAGE)

## image-ganger: Ganger's own image, ganger:$(VERSION) and ganger:latest, FROM scratch (no registry, no builder)
image-ganger: build docker
	@bash scripts/build-ganger-image.sh $(VERSION)

## redis-image: a Redis server image FROM scratch, from Debian's redis-tools (for the benchmarks)
redis-image: docker
	@bash scripts/build-redis-image.sh ganger-redis:latest

## cluster-image: etcd, redis and busybox FROM scratch, from Debian's packages (mode: cluster's tests)
cluster-image: docker
	@bash scripts/build-cluster-image.sh ganger-cluster:latest

## busybox-image: busybox and bin/ganger-init FROM scratch (ganger-init's tests and benchmarks)
busybox-image: build docker test-deps
	@bash scripts/build-busybox-image.sh bin/ganger-init ganger-busybox:latest

## demo: run Ganger on 127.0.0.1:5454 with examples/ganger.yaml
demo: image
	bin/ganger serve --config examples/ganger.yaml

## test-deps: what the tests run besides Docker (Debian's docker-registry, chromium, postgresql)
test-deps:
	@bash scripts/ensure-test-deps.sh

## test: every test, integration tests against the real Docker Engine included
test: image redis-image busybox-image cluster-image test-deps vet
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 25m ./...

## test-unit: the tests that need no Docker Engine
test-unit:
	GANGER_SKIP_DOCKER=1 $(GO) test -count=1 -short ./...

## bench: benchmarks against a baseline measured in the same run
bench: image redis-image busybox-image cluster-image test-deps
	$(GO) test -count=1 -run '^$$' -bench 'ColdTTFB|Throughput' -benchtime 20x ./bench/
	$(GO) test -count=1 -run '^$$' -bench 'Burst20' -benchtime 5x ./bench/
	$(GO) test -count=1 -run '^$$' -bench 'PoolTTFB' -benchtime 100x ./bench/
	$(GO) test -count=1 -run '^$$' -bench 'PoolHit' -benchtime 100x ./bench/
	$(GO) test -count=1 -run '^$$' -bench 'AdaptivePool' -benchtime 1x -timeout 30m ./bench/
	$(GO) test -count=1 -run '^$$' -bench 'StartDataSilent' -benchtime 1x ./bench/
	$(GO) test -count=1 -run '^$$' -bench 'InstanceCreate' -benchtime 20x ./bench/
	$(GO) test -count=1 -run '^$$' -bench 'InstanceList' -benchtime 50x ./bench/
	$(GO) test -count=1 -run '^$$' -bench 'InstanceExpiry' -benchtime 1x -timeout 30m ./bench/
	$(GO) test -count=1 -run '^$$' -bench 'SharedMemory' -benchtime 1x ./bench/
	$(GO) test -count=1 -run '^$$' -bench '^BenchmarkInit' -benchtime 1x ./bench/
	$(GO) test -count=1 -run '^$$' -bench 'GangerInit' -benchtime 40x ./bench/
	$(GO) test -count=1 -run '^$$' -bench 'HostDiscovery' -benchtime 1x -timeout 10m ./bench/
	$(GO) test -count=1 -run '^$$' -bench 'ClusterForm' -benchtime 4x ./bench/
	$(GO) test -count=1 -run '^$$' -bench 'ClusterFailover' -benchtime 3x ./bench/
	$(GO) test -count=1 -run '^$$' -bench 'ClusterLongPoll' -benchtime 1000x ./internal/clusterd/

## fuzz: fuzz the config parser for FUZZTIME (default 60s); what it finds lands in internal/config/testdata/fuzz
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(or $(FUZZTIME),60s) ./internal/config/

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
