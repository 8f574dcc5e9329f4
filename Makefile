# nestrank: the two commands are `make demo` and `make test`; both set up
# what they need on a fresh machine (wasm target, wasm-bindgen-cli at the
# version Cargo.lock pins, npm tools, Chromium and WebKitGTK for the browser
# tests, Bun for JavaScriptCore).
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)

WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/ { getline; gsub(/"/, "", $$3); print $$3; exit }' Cargo.lock)
WASM_OPT := tools/node_modules/.bin/wasm-opt
ESBUILD := tools/node_modules/.bin/esbuild
BUN := tools/node_modules/.bin/bun
WASM_RAW := target/wasm32-unknown-unknown/release/nestrank.wasm
WASM_SIMD_RAW := target/simd/wasm32-unknown-unknown/release/nestrank.wasm
# The demo's builder: without the query engine (its logs fit in memory),
# so `make demo` does not compile DataFusion and Ballista.
BUILDER := target/demo/builder/model-builder
SAMPLE := data/taobao-userbehavior-sample/UserBehavior_head_with_header.csv
DEMO_DAY := 2017-12-03
SHOP_DAY := 2026-11-01

.PHONY: experiment test-spec setup setup-fuzz fuzz setup-browser setup-webkit pkg builder builder-demo shop edge-sample test-edge setup-edge demo demo-data test test-native test-wasm test-node test-e2e lint golden clean bench-quick bench

setup:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@if [ "$$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $(WASM_BINDGEN_VERSION)" ]; then \
	  echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (the version Cargo.lock pins)"; \
	  cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --force; \
	fi
	@if [ ! -x $(WASM_OPT) ] || [ tools/package-lock.json -nt tools/node_modules/.package-lock.json ]; then \
	  npm ci --prefix tools --no-audit --no-fund; \
	fi

setup-browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  (apt-get update && apt-get install -y chromium chromium-driver) || \
	  { echo "error: could not install chromium and chromium-driver (needs root and Debian's packages)"; exit 1; }; \
	fi

# WebKitGTK's MiniBrowser and WebDriver on a virtual display, for the page's
# WebKit test (tests/e2e/webkit.test.mjs).
setup-webkit:
	@if ! command -v WebKitWebDriver >/dev/null || ! command -v Xvfb >/dev/null; then \
	  (apt-get update && apt-get install -y webkit2gtk-driver xvfb) || \
	  { echo "error: could not install webkit2gtk-driver and xvfb (needs root and Debian's packages)"; exit 1; }; \
	fi

# The core is built twice: nestrank_bg.wasm for every engine, and
# nestrank_simd_bg.wasm with wasm's 128-bit SIMD (Chrome 91, Safari 16.4,
# Firefox 89 and later; the package picks it where it validates). Both give
# the same results to the bit and share one JS glue, which the cmp checks.
pkg: setup
	cargo build --release --target wasm32-unknown-unknown --lib
	RUSTFLAGS="-C target-feature=+simd128" cargo build --release --target wasm32-unknown-unknown --lib --target-dir target/simd
	rm -rf pkg target/simd/pkg && mkdir -p pkg
	wasm-bindgen --target web --out-dir pkg --out-name nestrank $(WASM_RAW)
	wasm-bindgen --target web --out-dir target/simd/pkg --out-name nestrank $(WASM_SIMD_RAW)
	cmp pkg/nestrank.js target/simd/pkg/nestrank.js
	$(WASM_OPT) -Oz pkg/nestrank_bg.wasm -o pkg/nestrank_bg.wasm
	$(WASM_OPT) -Oz --enable-simd target/simd/pkg/nestrank_bg.wasm -o pkg/nestrank_simd_bg.wasm
	cp pkg-template/package.json pkg-template/README.md pkg-template/*.js pkg-template/index.d.ts pkg/
	@for w in pkg/nestrank_bg.wasm pkg/nestrank_simd_bg.wasm; do echo "$$w: $$(stat -c %s $$w) bytes, $$(gzip -9c $$w | wc -c) gzipped"; done
	@# The demo page's script with the package in it, as a shop's bundler
	@# would make it: one module to fetch and evaluate instead of six.
	@# (wasm-bindgen's glue names its inline snippet twice in one object.)
	$(ESBUILD) www/app.js --bundle --format=esm --alias:nestrank=./pkg/index.js \
	  --log-override:duplicate-object-key=silent --outfile=target/www/app.js

# The native builder has its own profile (Cargo.toml: no fat LTO over
# DataFusion and Ballista). It builds every target of the workspace, as
# `cargo test --workspace` does, so that both resolve the same features and
# share one compile of DataFusion and Ballista instead of two.
builder:
	cargo build --workspace --all-targets --profile builder

builder-demo:
	cargo build -p model-builder --no-default-features --profile builder --target-dir target/demo

# The synthetic mother-and-baby shop (deterministic), its daily blob and its
# families' nightly profiles (out/shop-users):
# what the demo page and the e2e tests load.
shop: builder-demo
	$(BUILDER) synth --kind mother-baby --out out/shop --end $(SHOP_DAY)
	$(BUILDER) build --data out/shop --as-of $(SHOP_DAY) --out out/shop-model \
	  --specials out/shop/specials.txt --max-items 3000 --k 20 --complement-k 5
	$(BUILDER) users --data out/shop --model out/shop-model --out out/shop-users

# An A/B test on the synthetic shop's families (the shop's order against
# nestrank's, 7 days) and its report: out/experiment/report.html.
experiment: shop
	$(BUILDER) simulate --data out/shop --model out/shop-model --days 7 --out out/experiment
	$(BUILDER) report --data out/experiment --model out/shop-model --out out/experiment/report.html

# The edge worker's bundled sample (committed): the shop's specials, the
# origin page, a small daily blob.
edge-sample: shop
	$(BUILDER) build --data out/shop --as-of $(SHOP_DAY) --out out/edge-model \
	  --specials out/shop/specials.txt --max-items 1000 --k 20
	node edge/scripts/make-sample.mjs out/shop out/edge-model

# Everything the demo shows: the package, the shop's model, and the bundled
# Taobao sample's daily blob (its last day's specials + the 5,000 most
# recently active items) reranked for three users through wasm under Node.
demo-data: pkg builder-demo shop
	$(BUILDER) import taobao $(SAMPLE) --out out/taobao
	node scripts/specials.mjs out/taobao/events.csv $(DEMO_DAY) > out/specials.txt
	$(BUILDER) build --data out/taobao --as-of $(DEMO_DAY) --out out/model \
	  --max-items 5000 --specials out/specials.txt
	$(BUILDER) verify out/model/$$(node -p 'require("./out/model/manifest.json").file')
	node scripts/demo.mjs out/taobao out/model $(DEMO_DAY)

# The demo: the above, then the mobile page on http://127.0.0.1:8080/.
demo: demo-data
	node scripts/serve.mjs --port 8080 --model out/shop-model --data out/shop

lint:
	cargo fmt --all -- --check
	cargo fmt --manifest-path fuzz/Cargo.toml -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target wasm32-unknown-unknown --lib --test wasm -- -D warnings
	RUSTFLAGS="-C target-feature=+simd128" cargo clippy --target wasm32-unknown-unknown --lib --target-dir target/simd -- -D warnings

test-native:
	cargo test --workspace --profile builder

test-wasm: setup setup-browser
	cargo test --target wasm32-unknown-unknown --test wasm
	WASM_BINDGEN_USE_BROWSER=1 CHROMEDRIVER=/usr/bin/chromedriver \
	  WASM_BINDGEN_TEST_WEBDRIVER_JSON=$(CURDIR)/tests/webdriver.json \
	  cargo test --target wasm32-unknown-unknown --test wasm

# The package's tests (the golden cases among them) under Node (V8) and
# Bun (JavaScriptCore, the engine of iPhone webviews).
test-node: pkg
	node --test tests/node/
	$(BUN) test tests/node/

# The edge worker in workerd (miniflare@4 from npm), against the native core.
setup-edge:
	@if [ ! -d edge/node_modules/miniflare ] || [ edge/package-lock.json -nt edge/node_modules/.package-lock.json ]; then \
	  npm ci --prefix edge --no-audit --no-fund; \
	fi

test-edge: pkg builder-demo setup-edge
	npm --prefix edge test

# Fuzzing (cargo-fuzz, nightly): every target is built and run for
# FUZZ_SECONDS each; new inputs go to out/fuzz-corpus, the committed seeds
# in fuzz/corpus stay as they are. `make fuzz FUZZ_SECONDS=600` for a long run.
FUZZ_TARGETS := decode_blob decode_profile signals_codec csv_rows rerank rules
FUZZ_SECONDS ?= 30
setup-fuzz:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked || cargo install cargo-fuzz

fuzz: setup-fuzz
	cd fuzz && cargo +nightly fuzz build
	@set -o pipefail; for t in $(FUZZ_TARGETS); do \
	  mkdir -p out/fuzz-corpus/$$t; \
	  echo "fuzzing $$t for $(FUZZ_SECONDS) s"; \
	  (cd fuzz && cargo +nightly fuzz run $$t ../out/fuzz-corpus/$$t corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -rss_limit_mb=4096 -print_final_stats=1 2>&1 | tail -15) || exit 1; \
	done

# The demo page in headless Chromium (playwright-core); a screenshot lands in test-artifacts/.
# One test file at a time, on any machine: node runs files in parallel on a
# machine with more than 2 cores, and Chromium and WebKitGTK sharing the CPU
# lost a WebDriver connection here (1 run of 3 at --test-concurrency=2).
test-e2e: pkg shop setup-browser setup-webkit setup-edge
	node --test --test-concurrency=1 tests/e2e/

# FORMAT.md against a second reader (Python, written from the spec alone):
# the golden blobs and a fresh daily blob.
test-spec: shop
	@command -v python3 >/dev/null || (apt-get update && apt-get install -y python3-minimal) || \
	  { echo "error: the spec test needs python3 (standard library only)"; exit 1; }
	bash tests/spec/run.sh out/shop-model

# Everything: lint, native unit/property/golden/replay tests, wasm tests
# under Node and in headless Chromium, the package tests under Node, and
# the demo page end to end in headless Chromium, the edge worker in workerd,
# the blob format against an independent reader, and every fuzz target for
# 30 seconds.
test: setup lint test-native test-wasm test-node test-e2e test-edge test-spec fuzz

# Rewrites tests/data/golden-expected.json and golden-v4-expected.json from the
# native core (review the diff!).
golden:
	UPDATE_GOLDEN=1 cargo test --profile builder --test golden

clean:
	rm -rf pkg out test-artifacts target/wasm32-unknown-unknown target/simd target/www

# Quick rerank timings of the wasm package under Node (the demo's inputs).
bench-quick: demo-data
	node bench/node-rerank.mjs out/taobao out/model $(DEMO_DAY)

# Benchmarks: the native core (criterion), the wasm package under Node
# (beside a plain-JS reference of the same scoring), in headless Chromium,
# and the demo page's load path on a 4x-throttled CPU.
bench: demo-data builder setup-browser
	cargo bench -p model-builder --bench core --profile builder
	node bench/node-rerank.mjs out/taobao out/model $(DEMO_DAY)
	node bench/chromium.mjs out/taobao out/model $(DEMO_DAY)
	node bench/load-path.mjs
	node bench/cards.mjs
	bench/als-vs-implicit.sh out/taobao
