# kafkagate — the two commands that matter:
#   make demo   the three demos on embedded defaults (real Vault dev server + embedded Kafka), then the live viewer
#   make test   install what the tests need, then vet and run every test with -race
#               (make test-ha adds the Vault HA tests: a three-node raft cluster behind HAProxy)
# Both work on a fresh machine: they install kcat, chromium, haproxy and python3-confluent-kafka (apt) and KafkaJS (npm) and build Vault (`make vault`).

SHELL := /usr/bin/env bash
GO ?= go
export PATH := $(PATH):/usr/local/go/bin
GOTEST_TIMEOUT ?= 60m

.PHONY: all build vault deps test test-ha vet fmt-check fuzz demo dev bench bench-micro clean

all: build

build:
	$(GO) build -o .bin/gateway ./cmd/gateway

## vault: build the pinned HashiCorp Vault into .bin/vault (reuses a cached build)
vault:
	@scripts/build-vault.sh

## deps: what the tests drive from outside: kcat (librdkafka's CLI),
## Debian's python3-confluent-kafka (for /usr/bin/python3), chromium (the
## viewer's headless browser test) and haproxy (the load balancer of the
## replica and Vault HA tests) from apt, and KafkaJS from the npm
## registry, pinned by internal/testkit/testdata/clients/package-lock.json and
## installed with `npm ci` into $(KAFKAJS_DIR) (outside the clone; the tests
## install it there themselves when it is missing)
KAFKAGATE_NODE_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kafkagate/node
KAFKAJS_LOCK := internal/testkit/testdata/clients/package-lock.json
KAFKAJS_DIR = $(KAFKAGATE_NODE_CACHE)/kafkajs-$(shell sha256sum $(KAFKAJS_LOCK) | cut -c1-12)
deps:
	@missing=; \
	command -v kcat >/dev/null 2>&1 || missing="$$missing kcat"; \
	command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing="$$missing haproxy"; \
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1 || missing="$$missing chromium"; \
	/usr/bin/python3 -c 'import confluent_kafka' >/dev/null 2>&1 || missing="$$missing python3-confluent-kafka"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$missing" >&2; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@if [ ! -f "$(KAFKAJS_DIR)/node_modules/kafkajs/package.json" ]; then \
	  echo "make deps: npm ci (KafkaJS) into $(KAFKAJS_DIR)" >&2; \
	  mkdir -p "$(KAFKAGATE_NODE_CACHE)" && tmp=$$(mktemp -d "$(KAFKAGATE_NODE_CACHE)/install-XXXXXX") && \
	  cp internal/testkit/testdata/clients/package.json $(KAFKAJS_LOCK) "$$tmp"/ && \
	  (cd "$$tmp" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) && \
	  { mv -T "$$tmp" "$(KAFKAJS_DIR)" 2>/dev/null || rm -rf "$$tmp"; }; \
	fi

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.bin/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## test: everything CI runs but the Vault HA tests (make test-ha)
test: deps vault fmt-check vet
	KAFKAGATE_REQUIRE_KCAT=1 KAFKAGATE_REQUIRE_CLIENTS=1 KAFKAGATE_REQUIRE_CHROMIUM=1 KAFKAGATE_REQUIRE_HAPROXY=1 KAFKAGATE_NODE_CACHE=$(KAFKAGATE_NODE_CACHE) $(GO) test -race -count=1 -timeout $(GOTEST_TIMEOUT) ./...
	@$(MAKE) --no-print-directory fuzz

## test-ha: the Vault HA tests (a three-node raft cluster behind HAProxy,
## its active node killed under load), skipped by `make test` because the
## cluster takes a while to start; CI runs them after `make test`
HA_TESTS := TestVaultLeaderLoss|TestBuiltGatewayVaultLeaderLoss|TestBuiltReplicasBehindHAProxy
test-ha: deps vault
	KAFKAGATE_HA=1 KAFKAGATE_REQUIRE_HAPROXY=1 $(GO) test -race -count=1 -timeout 15m -v -run '^($(HA_TESTS))$$' ./internal/vaultclient/ ./cmd/gateway/

## fuzz: run every fuzz target briefly (FUZZTIME executions each); a crash fails.
## The budget is a count, not a duration: a duration races Go's fuzz
## coordinator shutdown (golang/go#75804, unfixed in go1.26) and fails with
## "context deadline exceeded" and no crasher on a loaded machine.
FUZZTIME ?= 30000x
FUZZ_TARGETS := \
	envelope:FuzzOpenRecord envelope:FuzzFileDecoder envelope:FuzzLegacy \
	fpe:FuzzInput config:FuzzParse policy:FuzzFields \
	protect:FuzzLocate protect:FuzzFieldsHeader protect:FuzzReadPath httpapi:FuzzProduceBody \
	access/sasl:FuzzSession
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./internal/$$pkg >/tmp/kafkagate-fuzz.log 2>&1 || { cat /tmp/kafkagate-fuzz.log; exit 1; }; \
	done; echo "fuzz: all targets passed"

## demo: the original demo's three demos end to end on embedded defaults
## (real Vault dev server + embedded Kafka), printing what the broker's
## admin sees beside what the consumer sees; then the gateway and its live
## viewer (/ui) keep serving until Ctrl-C. DEMOFLAGS=--exit stops after the demos.
DEMOFLAGS ?=
demo: vault build
	.bin/gateway demo $(DEMOFLAGS)

## dev: the bare stack (Vault dev server, embedded Kafka, gateway) until Ctrl-C
dev: vault build
	.bin/gateway dev

## bench: measure against Vault's ceiling, the demo and plain Kafka, with each process's CPU per record (Vault, broker, gateway, client); print the table, write bench-results.json (BENCHFLAGS=-quick for a smoke run; never a pass/fail on time)
bench: vault
	$(GO) build -o .bin/gateway ./cmd/gateway
	$(GO) build -o .bin/bench ./cmd/bench
	.bin/bench $(BENCHFLAGS)

## bench-micro: Go micro-benchmarks of the hot functions, with ns/op, B/op and allocs/op:
## field location, fields header, EncryptRecords (protect), batch body and answer (transit,
## on a recorded Vault answer), envelope seal (memkms), FF1 (fpe), produce record decode and
## report encode (httpapi). No Vault is started;
## BENCHMICRO=. adds envelope's Vault-backed benchmarks (open, stream).
BENCHMICRO ?= Locate|FieldsHeader|EncryptRecords|Batch|SealMem|PlainCopy|FF1|Cards|ReportLine|DecodeRecord
bench-micro:
	$(GO) test -run '^$$' -bench '$(BENCHMICRO)' -benchmem -benchtime 2s ./internal/protect/ ./internal/transit/ ./internal/envelope/ ./internal/fpe/ ./internal/httpapi/

clean:
	rm -rf .bin/gateway
