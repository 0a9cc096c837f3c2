#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what the tests need,
# checks formatting and vet, runs every test (race detector on the packages
# with concurrency), and a one-iteration smoke run of every benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race (packages with concurrency)"
go test -race -count=1 -timeout 20m ./shuffle/... ./sortjob/... ./jobs/... ./node/... ./coordinator/... ./bench/coordbench/... ./erasure/... ./burstbuffer/... ./s3/... ./cache/... ./internal/... ./gensort/... ./bench/edgebench/...

echo "== go test (all, including end-to-end tests of the real binaries)"
go test -count=1 -timeout 30m ./...

echo "== benchmark smoke run (one iteration each; real comparisons: docs/benchmarks.md)"
go test -run '^$' -bench . -benchtime 1x -timeout 10m ./... > /tmp/engine-bench-smoke.txt
grep -E '^(Benchmark|ok|FAIL|PASS)' /tmp/engine-bench-smoke.txt
