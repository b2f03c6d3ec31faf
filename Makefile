# tenantkv — see README.md. `make run` and `make test` are all a newcomer needs.
GO        ?= go
BIN       := bin/tenantkv
PKGS      := ./...
FUZZTIME  ?= 30s
SOAKTIME  ?= 10m
TEST_TIMEOUT ?= 20m
# The version `tenantkv version` and `tenantkv --version` print: git's name
# of the commit built (the nearest tag, the commits since it and the commit,
# -dirty with uncommitted changes; the commit alone without a tag), or "dev"
# outside a git checkout. Set VERSION to override it.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)

.PHONY: all build run test test-short lint vet fuzz bench bench-smoke bench-store bench-etcd soak attacks clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tenantkv

run: build
	./$(BIN) serve --data ./data

# The whole suite: vet, then every test with the race detector. Fuzz targets
# run over their seed corpus as ordinary tests here; `make fuzz` explores.
test: vet
	$(GO) test -race -timeout $(TEST_TIMEOUT) $(PKGS)

# The unit tier: no cluster, no process, no race detector; under a minute
# on two cores. Cluster tests skip themselves with -short (internal/testcluster).
test-short:
	$(GO) test -short -count=1 $(PKGS)

vet:
	$(GO) vet $(PKGS)

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Each fuzz target for FUZZTIME (go test -fuzz takes one target at a time).
fuzz:
	@set -e; for spec in $$($(GO) run ./internal/tools/fuzzlist); do \
		pkg=$${spec%%:*}; fn=$${spec##*:}; \
		echo "== fuzz $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# tenantkv and etcd 3.6 side by side (etcd built once into a cache outside
# the repository; the driver is its own module in bench/etcd).
bench-etcd:
	GO=$(GO) sh bench/etcd/run.sh $(BENCH_ETCD_FLAGS)

bench-store:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./store/ | tee bench-store.txt

# Every scenario of the bench suite except etcd (about 7 minutes on 2 cores),
# against a local cluster of real `tenantkv serve` processes.
bench: build
	./$(BIN) bench all --local 1 --json bench-results.json --html bench-report.html

bench-smoke: build
	./$(BIN) bench --local 1 --duration 1s --warmup 0 --keys 1000 --clients 4 --json bench-smoke.json
	./$(BIN) bench scenario isolation --local 1 --tenant-counts 1,10 --keys 200 --duration 1s --warmup 0

# Long fault-injection, crash, attack and load runs for SOAKTIME; prints a
# summary (histories, faults, crashes, attacks, violations).
soak:
	TENANTKV_SOAK_DURATION=$(SOAKTIME) $(GO) test -race -tags soak -run Soak -timeout 0 -v ./internal/proof/

# Issue 18's attack tests at full size and with their strict latency bounds,
# without the race detector (make test runs them smaller, under -race, with
# looser bounds): the most expensive writes on 1 and 3 nodes, bulk work,
# 56 MB of history before old commits, two joins against 170 MB.
attacks:
	TENANTKV_ATTACK_FULL=1 TENANTKV_HISTORY_ATTACK_MB=56 TENANTKV_JOIN_ATTACK_MB=170 \
		$(GO) test -count=1 -timeout 30m -v -run 'TestAttack' ./internal/proof/

# What the README says: ./bin and ./data, nothing else (not the data
# directories of other nodes, which may hold a cluster's only copy).
clean:
	rm -rf bin data
