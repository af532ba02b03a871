#!/usr/bin/env bash
# repeat.sh N: runs every package with randomized tests (those that take
# their seed from testseed.Seed) N times, each time with a fresh seed in
# WEIR_TEST_SEED, and lists the seeds that failed with the tests that
# failed. The output of a failed run is kept in test-repeat-SEED.log.
# `make test-repeat N=…` calls it; it is not part of `make test`.
set -u
cd "$(dirname "$0")/../.."
runs=${1:-10}
mapfile -t pkgs < <(grep -rl --include='*_test.go' 'testseed\.Seed' . | xargs -n1 dirname | sort -u)
echo "packages: ${pkgs[*]}"
failed=()
for ((i = 1; i <= runs; i++)); do
	seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
	log="test-repeat-$seed.log"
	if WEIR_TEST_SEED=$seed go test -race -count=1 -timeout 30m "${pkgs[@]}" >"$log" 2>&1; then
		echo "run $i/$runs: seed $seed: ok"
		rm -f "$log"
	else
		echo "run $i/$runs: seed $seed: FAILED (output in $log)"
		grep -E '^\s*--- FAIL|^FAIL|^panic:' "$log" | sed 's/^/    /'
		failed+=("$seed")
	fi
done
echo "${#failed[@]} of $runs runs failed${failed[*]:+; seeds: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
