# callbackd — build and test. `make test` works on a fresh Debian machine that has Go:
# it installs redis-server (the test suite runs against a real one) when it is missing.

GO       ?= go
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BIN      := bin/callbackd
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# Where `make install-sounds` puts the prompts: Debian's asterisk reads /usr/share/asterisk/sounds
# (/var/lib/asterisk/sounds links there); SOUNDS_DIR=… for another layout.
SOUNDS_DIR  ?= /usr/share/asterisk/sounds
SOUND_LANGS ?= en nl

.PHONY: all build test test-short vet fmt bench fuzz deps demo clean sounds sounds-check install-sounds

all: vet test build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/callbackd

# deps installs what the tests need from Debian: redis-server, and gcc for the race detector.
deps:
	@command -v redis-server >/dev/null 2>&1 && command -v gcc >/dev/null 2>&1 || { \
		echo "installing redis-server and gcc with apt-get"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server gcc libc6-dev; }

test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

test-short: deps
	$(GO) test -short ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./queue/ ./ari/ ./ari/detect/ ./config/ ./dialer/

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

# install-sounds copies the prompts (.ulaw and .alaw) into $(SOUNDS_DIR)/<lang>/ for Asterisk.
install-sounds:
	@for l in $(SOUND_LANGS); do \
		echo "installing deploy/sounds/$$l into $(DESTDIR)$(SOUNDS_DIR)/$$l"; \
		install -d -m 0755 $(DESTDIR)$(SOUNDS_DIR)/$$l && \
		install -m 0644 deploy/sounds/$$l/*.ulaw deploy/sounds/$$l/*.alaw $(DESTDIR)$(SOUNDS_DIR)/$$l/ || exit 1; \
	done

clean:
	rm -rf bin
