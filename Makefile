# callbackd — build and test. `make test` works on a fresh Debian machine that has Go:
# it installs redis-server (the test suite runs against a real one) and gcc (for -race) when they
# are missing, saying so first, without starting or enabling Debian's system Redis (.ci/apt-install).

GO       ?= go
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BIN      := bin/callbackd
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# Where `make install-sounds` puts the prompts: Debian's asterisk reads /usr/share/asterisk/sounds
# (/var/lib/asterisk/sounds links there); SOUNDS_DIR=… for another layout.
SOUNDS_DIR  ?= /usr/share/asterisk/sounds
SOUND_LANGS ?= en nl

.PHONY: rules-test install all build test test-short vet fmt bench fuzz deps demo clean sounds sounds-check install-sounds chaos

all: vet test build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/callbackd

# deps installs what the tests need from Debian: redis-server, redis-sentinel (the failover
# tests; they skip without it), and gcc for the race detector.
deps:
	@command -v redis-server >/dev/null 2>&1 && command -v redis-sentinel >/dev/null 2>&1 && \
		command -v gcc >/dev/null 2>&1 || .ci/apt-install redis-server redis-sentinel gcc libc6-dev

test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	# The queue's tests once more with the store's scripts sent as scripts, as to a Redis
	# without Functions (Redis 6.2); above, they ran as the function library.
	CALLBACKD_QUEUE_SCRIPTS=1 $(GO) test -race -count=1 ./queue/
	@if command -v promtool >/dev/null 2>&1; then $(MAKE) --no-print-directory rules-test; \
	else echo "promtool not found: skipping the alert tests (apt-get install prometheus, or make rules-test)"; fi

# rules-test checks the recording rules and alerts and runs their unit tests (Debian's
# prometheus package ships promtool).
rules-test:
	promtool check rules deploy/prometheus/callbackd.rules.yml
	cd deploy/prometheus && promtool test rules callbackd.rules_test.yml

test-short: deps
	$(GO) test -short ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./queue/ ./ari/ ./ari/detect/ ./config/ ./dialer/

# chaos runs the long chaos suite (cmd/callbackd/chaos_long_test.go): compiled daemons against
# the fake Asterisk and a real Redis under kill -9, SIGTERM, Redis kills, ARI drops and a twin,
# one subtest per seed; CHAOS_SEEDS=1,2,3 CHAOS_CALLS=200 CHAOS_FAULTS=kill9,sigterm,redis,ari,twin.
chaos: deps
	CHAOS_SEEDS=$(CHAOS_SEEDS) CHAOS_CALLS=$(CHAOS_CALLS) CHAOS_FAULTS=$(CHAOS_FAULTS) \
		$(GO) test -tags chaos -count=1 -timeout 60m -v -run '^TestChaosLong$$' ./cmd/callbackd/

# fuzz runs every fuzzer for FUZZTIME each (go test -fuzz takes one target at a time).
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./ari/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeAndDetect$$' -fuzztime $(FUZZTIME) ./ari/detect/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./config/
	$(GO) test -run '^$$' -fuzz '^FuzzParseE164$$' -fuzztime $(FUZZTIME) ./internal/phone/

demo:
	$(GO) run ./cmd/callbackd demo

# sounds regenerates deploy/sounds/<lang>/ from deploy/sounds/prompts.<lang>.tsv (needs Debian's
# espeak-ng and sox); sounds-check fails when the committed files differ from what the lists make.
sounds:
	deploy/sounds/generate
sounds-check:
	deploy/sounds/generate --check

# install lays out what the README's production set-up describes: the binary, the systemd unit,
# the example configuration (never over an existing one), the sounds and the shell completion.
# DESTDIR=… stages it for a package. It creates no user: see the README.
PREFIX  ?= /usr/local
SYSCONF ?= /etc
UNITDIR ?= /etc/systemd/system
install: build install-sounds
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/callbackd
	install -D -m 0644 deploy/systemd/callbackd.service $(DESTDIR)$(UNITDIR)/callbackd.service
	install -d -m 0750 $(DESTDIR)$(SYSCONF)/callbackd
	@if [ -e $(DESTDIR)$(SYSCONF)/callbackd/callbackd.yml ]; then \
		echo "keeping $(DESTDIR)$(SYSCONF)/callbackd/callbackd.yml; the new example is callbackd.yml.example"; \
		install -m 0640 deploy/callbackd.example.yml $(DESTDIR)$(SYSCONF)/callbackd/callbackd.yml.example; \
	else install -m 0640 deploy/callbackd.example.yml $(DESTDIR)$(SYSCONF)/callbackd/callbackd.yml; fi
	install -d -m 0755 $(DESTDIR)/usr/share/bash-completion/completions
	$(BIN) completion bash > $(DESTDIR)/usr/share/bash-completion/completions/callbackd
	install -D -m 0644 deploy/prometheus/callbackd.rules.yml $(DESTDIR)$(PREFIX)/share/callbackd/prometheus/callbackd.rules.yml
	install -D -m 0644 deploy/man/callbackd.1 $(DESTDIR)$(PREFIX)/share/man/man1/callbackd.1
	@echo "installed; next: useradd callbackd, chgrp callbackd $(SYSCONF)/callbackd, edit the config (callbackd config check --strict -c $(SYSCONF)/callbackd/callbackd.yml), systemctl enable --now callbackd"

# install-sounds copies the prompts (.ulaw and .alaw) into $(SOUNDS_DIR)/<lang>/ for Asterisk.
install-sounds:
	@for l in $(SOUND_LANGS); do \
		echo "installing deploy/sounds/$$l into $(DESTDIR)$(SOUNDS_DIR)/$$l"; \
		install -d -m 0755 $(DESTDIR)$(SOUNDS_DIR)/$$l && \
		install -m 0644 deploy/sounds/$$l/*.ulaw deploy/sounds/$$l/*.alaw $(DESTDIR)$(SOUNDS_DIR)/$$l/ || exit 1; \
	done

clean:
	rm -rf bin

# dashboard regenerates deploy/grafana/callbackd.json from deploy/grafana/generate (the panels
# are code); dashboard-check fails when the committed file differs. deploy/dashboard_test.go
# runs every panel's query against a real Prometheus scraping the demo.
.PHONY: dashboard dashboard-check
dashboard:
	$(GO) run ./deploy/grafana/generate -o deploy/grafana/callbackd.json
dashboard-check:
	$(GO) run ./deploy/grafana/generate -check deploy/grafana/callbackd.json

# container builds localhost/callbackd:$(VERSION) from deploy/container/Containerfile with
# Debian's buildah (chroot isolation, vfs storage: no container engine, nothing pulled).
.PHONY: container
container:
	VERSION=$(VERSION) GO=$(GO) deploy/container/build localhost/callbackd:$(VERSION)

# man regenerates deploy/man/callbackd.1 from the built binary's help; man-check fails when the
# committed page differs (deploy/man_test.go runs it too).
.PHONY: man man-check
man: build
	deploy/man/generate $(BIN)
man-check: build
	deploy/man/generate $(BIN) --check
