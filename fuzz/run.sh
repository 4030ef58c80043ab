#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) on one core, one after another,
# starting from the corpus in the repository; inputs that reach new code are added to a
# scratch copy (fuzz/corpus is only extended by hand, with what is worth keeping). Stops
# at the first crash, leaving its input under fuzz/artifacts/<target>/.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
targets=("$@")
if [[ ${#targets[@]} == 0 ]]; then
    targets=(request connect four_letter zoo_cfg log_segment snapshot_file tree_ops zookeeper_files certificate_subject key_store)
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# Recovery writes a data directory per input: on tmpfs it costs no disk syncs.
export TMPDIR=/dev/shm
cargo +nightly fuzz build -O
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    echo "--- $target: ${seconds} s"
    log="$scratch/$target.log"
    if ! cargo +nightly fuzz run -O "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        exit 1
    fi
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+ +DONE' "$log"
done
