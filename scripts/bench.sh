#!/usr/bin/env bash
# Runs microshop's benchmarks (docs/benchmarks.md explains them): events per
# second through outbox -> broker -> inbox on each broker, and completed
# checkouts per second end to end per saga style. The raw output goes to
# docs/benchmarks.txt and to the terminal. The machine's NATS (4222) and
# RabbitMQ (5672) are used when they run; their benchmarks are skipped when
# not. BENCH_EVENTS and BENCH_CHECKOUTS change how many of each are measured.
set -euo pipefail
cd "$(dirname "$0")/.."

events=${BENCH_EVENTS:-2000}
checkouts=${BENCH_CHECKOUTS:-500}
out=docs/benchmarks.txt

{
  go test -run '^$' -bench '^BenchmarkEventFlow$' -benchtime="${events}x" -count=1 ./internal/bench
  go test -run '^$' -bench '^BenchmarkCheckout$' -benchtime="${checkouts}x" -count=1 -timeout=30m ./cmd/microshop
} 2>&1 | tee "$out.partial"
mv "$out.partial" "$out"
