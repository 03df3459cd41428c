#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, one after the other, and fails if any crashes.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]     (default 60)
#
# Environment: FUZZ_SANITIZER=address|none (default address; `none` where ASan does not build),
# FUZZ_TARGETS="a b" to run only some targets.
#
# Seeds are read from fuzz/corpus/<target>/ and fuzz/regressions/<target>/ (inputs that once
# crashed; both committed); what the fuzzer finds goes to
# fuzz/target/corpus/<target>/ (ignored by git) and is read again by the next run. A crash or
# timeout stops that target, leaves its input in fuzz/artifacts/<target>/, and makes this script
# exit non-zero after the other targets have run. Not run by CI: it needs minutes per target.
set -euo pipefail

secs="${1:-60}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

# cargo-fuzz passes -Z flags to rustc; RUSTC_BOOTSTRAP lets a stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi

sanitizer="${FUZZ_SANITIZER:-address}"
read -r -a targets <<<"${FUZZ_TARGETS:-$(cargo fuzz list | tr '\n' ' ')}"
# -a: debug assertions, so integer overflow panics instead of wrapping silently.
build=(-a --sanitizer "$sanitizer")

echo "== building ${targets[*]} (sanitizer: $sanitizer)"
for t in "${targets[@]}"; do
    cargo fuzz build "${build[@]}" "$t"
done

mkdir -p target/fuzz-logs
failed=()
for t in "${targets[@]}"; do
    work="target/corpus/$t"
    log="target/fuzz-logs/$t.log"
    mkdir -p "$work" "corpus/$t" "regressions/$t" "artifacts/$t"
    dict=()
    if [ -f "dict/$t.dict" ]; then
        dict=(-dict="dict/$t.dict")
    fi
    echo "== $t: ${secs}s (log: fuzz/$log)"
    # One process (no -jobs/-workers): the machine's cores are shared. -timeout flags any
    # single input slower than 10 s (quadratic behaviour) as a failure.
    if cargo fuzz run "${build[@]}" "$t" "$work" "corpus/$t" "regressions/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "${dict[@]}" >"$log" 2>&1; then
        grep -E '^Done [0-9]+ runs' "$log" || true
        grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true
    else
        failed+=("$t")
        echo "!! $t FAILED; the end of its log:"
        tail -n 40 "$log"
        artifact="$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -n 1 | cut -d' ' -f5 || true)"
        if [ -n "$artifact" ]; then
            echo "!! crash input: $artifact"
            echo "!! reproduce:   (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run ${build[*]} $t $artifact)"
        fi
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "== FAILED: ${failed[*]}"
    exit 1
fi
echo "== all targets ran ${secs}s without a crash"
