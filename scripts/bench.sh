#!/usr/bin/env bash
# Runs microshop's benchmarks (docs/benchmarks.md explains them and has the
# figures) on the real binary, built once:
#   1. start to ready and resident memory, `up` and every child of `up --split`;
#   2. the gateway against nginx in front of the same catalog (and users)
#      instance, with wrk, a signed-in customer's token on every request;
#   3. completed checkouts a second and p99 acceptance latency with
#      `microshop load`, one process and split, at rising rates until one is
#      not sustained, then a CPU profile (pprof) of the one-process shop at it;
#   4. BenchmarkEventFlow (outbox -> broker -> inbox).
# The raw output goes to docs/benchmarks.txt and to the terminal. It installs
# nothing: a missing tool is named with its apt-get line, and it exits.
#
# BENCH_QUICK=1 shortens every part (about 3 minutes instead of 9); BENCH_STARTS,
# BENCH_WRK_DURATION, BENCH_LOAD_DURATION, BENCH_RATES and BENCH_EVENTS set
# them one by one. BENCH_OUT=- keeps docs/benchmarks.txt as it is;
# BENCH_COMMIT names the commit measured when the tree is no git checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

missing() { echo "bench: $1 is not installed: apt-get install -y $2" >&2; exit 1; }
command -v wrk >/dev/null || missing wrk wrk
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing nginx nginx-light
command -v jq >/dev/null || missing jq jq
command -v curl >/dev/null || missing curl curl
command -v python3 >/dev/null || missing python3 python3
command -v go >/dev/null || { echo "bench: go is not on PATH" >&2; exit 1; }
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

quick=${BENCH_QUICK:-0}
if [ "$quick" = 1 ]; then d_starts=1 d_wrk=5 d_load=8 d_rates="10 50" d_events=500
else d_starts=3 d_wrk=10 d_load=15 d_rates="10 25 50 100 200 400 800" d_events=2000; fi
starts=${BENCH_STARTS:-$d_starts}
wrk_duration=${BENCH_WRK_DURATION:-$d_wrk}
load_duration=${BENCH_LOAD_DURATION:-$d_load}
rates=${BENCH_RATES:-$d_rates}
events=${BENCH_EVENTS:-$d_events}
out=${BENCH_OUT:-docs/benchmarks.txt}

work=$(mktemp -d /tmp/microshop-bench.XXXXXX)
bin=$work/microshop
admin_email=admin@bench.local
admin_password=bench-admin-$RANDOM$RANDOM
pids=() # processes to stop on the way out

# stop_all stops what the run started; run_all runs in a pipeline's
# subshell, so it sets this trap itself.
stop_all() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap 'rm -rf "$work"' EXIT

now_ms() { date +%s%3N; }
section() { printf '\n=== %s\n' "$*"; }
mb() { awk -v kb="$1" 'BEGIN {print kb / 1024}'; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# The shop's environment: the real configuration (rate limiting, metrics,
# tracing and authentication all on), loopback ports chosen by the kernel.
# The per-client rate limit is raised from 100/s to 100000/s, because wrk
# and the load generator send more than 100 requests a second as one
# customer (or from one address while signing up): the limiter still
# runs for every request, it just never refuses one.
# A one-process shop also serves Go's profiles on a free loopback port (the
# children of a split shop serve none).
pprof_addr=127.0.0.1:$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
shop_env=(
  MICROSHOP_ADDR=127.0.0.1:0 MICROSHOP_REGISTRY_ADDR=127.0.0.1:0 MICROSHOP_BROKER_ADDR=127.0.0.1:0
  MICROSHOP_PPROF_ADDR=$pprof_addr
  MICROSHOP_ADMIN_EMAIL=$admin_email MICROSHOP_ADMIN_PASSWORD=$admin_password
  MICROSHOP_RATE_LIMIT_RPS=100000 MICROSHOP_RATE_LIMIT_BURST=100000
  LOG_FORMAT=json LOG_LEVEL=info
)

# start_shop DIR ARGS... starts microshop ARGS in a new data directory DIR
# and waits for its banner: it sets shop_pid, t0 (ms) and ready_ms.
start_shop() {
  local dir=$1
  shift
  mkdir -p "$dir"
  t0=$(now_ms)
  (cd "$dir" && exec env "${shop_env[@]}" MICROSHOP_DATA_DIR="$dir" "$bin" "$@" >"$dir/stdout" 2>"$dir/stderr") &
  shop_pid=$!
  pids+=("$shop_pid")
  local deadline=$((t0 + 60000))
  until grep -q '^  gateway ' "$dir/stdout" 2>/dev/null; do
    if ! kill -0 "$shop_pid" 2>/dev/null || [ "$(now_ms)" -gt "$deadline" ]; then
      echo "bench: microshop $* did not come up; its last lines:" >&2
      tail -20 "$dir/stderr" >&2
      exit 1
    fi
    sleep 0.005
  done
  ready_ms=$(($(now_ms) - t0))
}

stop_shop() {
  kill -TERM "$shop_pid" 2>/dev/null || true
  wait "$shop_pid" 2>/dev/null || true
  local kept=()
  for p in "${pids[@]}"; do [ "$p" = "$shop_pid" ] || kept+=("$p"); done
  pids=("${kept[@]}")
}

# addr NAME DIR is the address the banner gives for NAME.
addr() { awk -v n="$1" '/^  / && $1 == n {print $2}' "$2/stdout"; }

# children lists "name pid" for each child of a split shop.
children() {
  ps --ppid "$shop_pid" -o pid=,args= | sed -n 's/^ *\([0-9]*\) .*--services=\([a-z]*\).*/\2 \1/p' | sort
}

# rss_table prints each process's resident memory.
rss_table() {
  local total=0 name pid kb
  if [ "$1" = one ]; then
    kb=$(rss_kb "$shop_pid")
    printf '  %-12s %7.1f MB\n' "microshop" "$(mb "$kb")"
    return
  fi
  while read -r name pid; do
    kb=$(rss_kb "$pid"); total=$((total + kb))
    printf '  %-12s %7.1f MB\n' "$name" "$(mb "$kb")"
  done < <(children)
  kb=$(rss_kb "$shop_pid"); total=$((total + kb))
  printf '  %-12s %7.1f MB\n' "supervisor" "$(mb "$kb")"
  printf '  %-12s %7.1f MB\n' "all" "$(mb "$total")"
}

# machine_ticks is the CPU the whole machine has spent busy (user, nice,
# system, interrupts, steal) since it booted, in clock ticks; shop_ticks is
# the shop's own (its process, and in a split shop its children).
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
shop_ticks() {
  local t p
  t=$(awk '{print $14 + $15}' "/proc/$shop_pid/stat")
  for p in $(pgrep -P "$shop_pid"); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
# cpu_mark and cpu_said bracket a measurement: what the machine spent, what
# the shop spent, of what the machine had. Other work on the machine (the
# difference, less wrk or the load generator) competes with the shop.
cpu_mark() { mark_wall=$(now_ms) mark_machine=$(machine_ticks) mark_shop=$(shop_ticks); }
cpu_said() {
  local wall=$(($(now_ms) - mark_wall)) hz
  hz=$(getconf CLK_TCK)
  said_machine=$(awk -v t="$(($(machine_ticks) - mark_machine))" -v hz="$hz" 'BEGIN {print t / hz}')
  said_shop=$(awk -v t="$(($(shop_ticks) - mark_shop))" -v hz="$hz" 'BEGIN {print t / hz}')
  awk -v wall="$wall" -v m="$said_machine" -v s="$said_shop" -v n="$(nproc)" \
    'BEGIN {printf "    CPU over the %.1f s: the machine busy %.1f of %.1f core-seconds, the shop %.1f\n", wall / 1000, m, n * wall / 1000, s}'
}

# cpu_ticks prints "name ticks" (user+system, in clock ticks) per child.
cpu_ticks() {
  local name pid
  while read -r name pid; do
    echo "$name $(awk '{print $14 + $15}' "/proc/$pid/stat")"
  done < <(children)
}

# startups MODE ARGS... starts the shop $starts times on new data
# directories, reporting start to ready and idle memory; the last one is
# left running.
startups() {
  local mode=$1
  shift
  local runs=$work/startups-$mode.jsonl i
  for i in $(seq 1 "$starts"); do
    [ "$i" = 1 ] || stop_shop
    start_shop "$work/$mode-$i" "$@"
    python3 scripts/bench/startup.py "$mode" "$work/$mode-$i/stderr" "$t0" "$ready_ms" >>"$runs"
  done
  python3 scripts/bench/startup.py summary "$runs"
  sleep 2
  echo "resident memory (VmRSS), idle 2 s after the banner of the last start:"
  rss_table "$mode"
  shop_dir=$work/$mode-$starts
}

# signin signs up a customer through the gateway at $1 and prints a token.
signin() {
  local email=bench-$RANDOM$RANDOM@example.com password=bench-password-$RANDOM$RANDOM
  curl -fsS -X POST -H 'Content-Type: application/json' "$1/api/v1/users" \
    -d "{\"email\":\"$email\",\"name\":\"Bench\",\"password\":\"$password\"}" >/dev/null
  curl -fsS -X POST -H 'Content-Type: application/json' "$1/api/v1/auth/login" \
    -d "{\"email\":\"$email\",\"password\":\"$password\"}" | jq -r .access_token
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_nginx CATALOG USERS proxies to the same instances the gateway
# reaches, over kept-alive upstream connections, and prints its base URL.
start_nginx() {
  local dir=$work/nginx port
  port=$(free_port)
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log $dir/access.log;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  upstream catalog { server ${1#http://}; keepalive 64; }
  upstream users { server ${2#http://}; keepalive 64; }
  server {
    listen 127.0.0.1:$port;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host \$proxy_host;
    proxy_set_header X-Forwarded-For \$remote_addr;
    location /.well-known/ { proxy_pass http://users; }
    location / { proxy_pass http://catalog; }
  }
}
EOF
  "$nginx_bin" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout" 2>&1 &
  nginx_pid=$!
  pids+=("$nginx_pid")
  local i
  for i in $(seq 1 200); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/.well-known/jwks.json" 2>/dev/null && break
    sleep 0.02
  done
  nginx_url=http://127.0.0.1:$port
}

# wrk_run NAME URL [profile] runs wrk with the token and prints one summary
# line; with profile, the shop is profiled (pprof) while it runs.
wrk_run() {
  local raw=$work/wrk-$RANDOM.txt
  cpu_mark
  wrk -t2 -c32 -d"${wrk_duration}s" --latency -H "Authorization: Bearer $token" "$2" >"$raw" &
  local wrk_pid=$!
  if [ "${3:-}" = profile ]; then
    sleep 1
    pprof_top $((wrk_duration > 3 ? wrk_duration - 2 : 1))
  fi
  wait "$wrk_pid"
  cpu_said
  sed 's/^/    /' "$raw"
  awk -v name="$1" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { bad = $NF }
    END { printf "RESULT %s rps=%.0f p50_ms=%.2f p99_ms=%.2f non2xx=%d\n", name, rps, p50, p99, bad }' "$raw"
  if grep -q Non-2xx "$raw"; then
    echo "    one request of them now: $(curl -sS -H "Authorization: Bearer $token" -w ' (%{http_code})' "$2" | head -c 300)"
  fi
}

# load_run RATE writes microshop load's JSON report for RATE to $work and
# prints its summary; it returns 1 when the rate was not sustained: orders
# refused or skipped, or ending seconds after the last arrival.
load_run() {
  local rate=$1 label=$2 json
  json=$work/load-$label-$rate.json
  cpu_mark
  MICROSHOP_ADMIN_PASSWORD=$admin_password "$bin" load --target "$gateway" --rate "$rate" \
    --duration "${load_duration}s" --drain 20s --customers 20 --order 1 --browse 0 --stock 0 --legacy 0 \
    --declined 0 --short-stock 0 --admin-email "$admin_email" --json 2>"$json.progress" | tee "$json.txt" | sed 's/^/    /' | grep -v '^    {'
  tail -1 "$json.txt" >"$json"
  cpu_said
  if ! [ -s "$json" ] || ! jq -e 'type == "object" and has("orders_placed")' "$json" >/dev/null 2>&1; then
    echo "    the load generator failed; its last lines:"
    tail -5 "$json.progress" | sed 's/^/      /'
    return 2
  fi
  # The shop's CPU per completed checkout (the customers' sign-ups, bcrypt,
  # included) depends much less on what else runs than the rates do.
  jq -r --arg s "$said_shop" '"    the shop'"'"'s CPU per completed checkout: \(if .checkouts_completed > 0 then ($s | tonumber) * 1000 / .checkouts_completed | floor | tostring else "-" end) ms"' "$json"
  jq -r --arg mode "$label" '"RESULT checkouts \($mode) rate=\(.rate) completed_per_s=\(.completed_per_s) placed=\(.orders_placed) completed=\(.checkouts_completed) failed=\(.failed) skipped=\(.skipped) pending=\(.pending) drain_s=\(.drain_s) p50_accept_ms=\(.latency_ms.place_order.p50) p99_accept_ms=\(.latency_ms.place_order.p99) p99_checkout_ms=\(.latency_ms.checkout.p99)"' "$json"
  jq -e '.failed == 0 and .skipped == 0 and .pending == 0 and .drain_s < 5' "$json" >/dev/null
}

# ladder LABEL runs load at each of $rates until one is not sustained, and
# sets top_rate to it (or to the last rate).
ladder() {
  local rate
  top_rate=
  for rate in $rates; do
    top_rate=$rate
    if [ "$1" = split ]; then cpu_ticks >"$work/cpu-before"; fi
    local ran=0
    load_run "$rate" "$1" || ran=$?
    case $ran in
      0) echo "  sustained at $rate/s" ;;
      1) echo "  NOT sustained at $rate/s" ;;
      *) return 1 ;;
    esac
    if [ "$1" = split ]; then
      echo "  CPU seconds per process during the run:"
      cpu_ticks | join "$work/cpu-before" - | awk -v hz="$(getconf CLK_TCK)" '{printf "    %-10s %6.1f s\n", $1, ($3 - $2) / hz}'
    fi
    [ "$ran" = 0 ] || break
  done
}

# pprof_top SECONDS takes a CPU profile of the one-process shop for SECONDS
# through its profiles address (MICROSHOP_PPROF_ADDR, loopback) and prints
# where it spent its CPU: cumulative (a function and what it called), then
# flat (the function's own).
pprof_top() {
  local file=$work/cpu.pprof
  if ! curl -fsS -o "$file" "http://$pprof_addr/debug/pprof/profile?seconds=$1"; then
    echo "  no profile from $pprof_addr"
    return
  fi
  echo "  go tool pprof of a ${1}s CPU profile (MICROSHOP_PPROF_ADDR); cumulative:"
  go tool pprof -top -cum -nodecount=60 "$file" 2>/dev/null | sed -n '/flat%/,$p' |
    grep -Ev 'runtime\.(goexit|systemstack|mcall|park_m|schedule|mstart)|net/http\.\(\*conn\)|gowrap|\.func[0-9]' | head -40 | sed 's/^/    /' || true
  echo "  flat:"
  go tool pprof -top -nodecount=25 "$file" 2>/dev/null | sed -n '/flat%/,$p' | head -26 | sed 's/^/    /' || true
}

# profile RATE runs load at RATE once more (not counted) and profiles the
# shop while orders arrive, once the load's customers have signed up.
profile() {
  local log=$work/profile-load.txt i
  MICROSHOP_ADMIN_PASSWORD=$admin_password "$bin" load --target "$gateway" --rate "$1" \
    --duration "${load_duration}s" --drain 20s --customers 20 --order 1 --browse 0 --stock 0 --legacy 0 \
    --declined 0 --short-stock 0 --admin-email "$admin_email" >"$log" 2>&1 &
  local load_pid=$!
  for i in $(seq 1 600); do
    grep -q 'orders [1-9]' "$log" 2>/dev/null && break
    sleep 0.1
  done
  sleep 2 # the last customers sign up (bcrypt) as they first arrive
  pprof_top $((load_duration > 4 ? load_duration - 2 : 2))
  wait "$load_pid" || true
  if grep -q '^ *orders ' "$log"; then
    echo "  the profiled run: $(grep -m1 '^ *orders ' "$log" | sed 's/^ *//')"
  else
    echo "  the profiled run failed; its last lines:"
    tail -5 "$log" | sed 's/^/    /'
  fi
}

# settle waits (at most 60 s) until the gateway answers 200 on the routes
# measured again: a profiled run can slow a service enough for the
# gateway's circuit breaker to it to open, and the next run would then
# measure the breaker.
settle() {
  local started i
  started=$(now_ms)
  for i in $(seq 1 600); do
    if curl -fsS -o /dev/null "$gateway/.well-known/jwks.json" 2>/dev/null &&
      curl -fsS -o /dev/null "$gateway/api/v1/products" 2>/dev/null; then
      [ "$i" = 1 ] || echo "  (the gateway answered 200 again after $(($(now_ms) - started)) ms)"
      return 0
    fi
    sleep 0.1
  done
  echo "  the gateway still does not answer 200 after 60 s"
  return 1
}

run_all() {
  trap stop_all EXIT
  section "machine"
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit:  ${BENCH_COMMIT:-$(commit_of | paste -sd " ")}"
  echo "cpu:     $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "memory:  $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "kernel:  $(uname -sr)"
  echo "go:      $(go version)"
  echo "nginx:   $("$nginx_bin" -v 2>&1)"
  echo "wrk:     $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
  echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (load average before the run: other work on the machine shows here and in each part's CPU line)"
  echo "command: scripts/bench.sh (BENCH_QUICK=$quick starts=$starts wrk=${wrk_duration}s load=${load_duration}s rates='$rates' events=$events)"

  section "build"
  go build -o "$bin" ./cmd/microshop
  echo "go build -o \$tmp/microshop ./cmd/microshop: $(($(stat -c %s "$bin") / 1048576)) MB"

  section "one process (microshop up): start to ready"
  startups one up
  gateway=$(addr gateway "$shop_dir")

  section "gateway against nginx, same catalog and users instances (wrk -t2 -c32 -d${wrk_duration}s --latency)"
  token=$(signin "$gateway")
  local catalog users id
  catalog=$(addr catalog "$shop_dir")
  users=$(addr users "$shop_dir")
  id=$(curl -fsS "$gateway/api/v1/products" | jq -r '.items[0].id')
  start_nginx "$catalog" "$users"
  echo "gateway $gateway, nginx $nginx_url ($(nginx_workers) workers), catalog $catalog, users $users"
  local route
  for route in "/api/v1/products/$id" /api/v1/products /.well-known/jwks.json; do
    echo "  GET $route"
    wrk_run "wrk gateway $route" "$gateway$route"
    wrk_run "wrk nginx $route" "$nginx_url$route"
  done
  echo "  GET /.well-known/jwks.json through the gateway once more (not counted), profiled:"
  wrk_run "wrk gateway-profiled /.well-known/jwks.json" "$gateway/.well-known/jwks.json" profile
  kill -TERM "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
  settle || true

  section "one process: checkouts (microshop load, orders only, ${load_duration}s of arrivals a rate)"
  ladder one || echo "  the checkout runs stopped: the load generator failed"
  echo "resident memory after the load:"
  rss_table one
  section "one process: CPU profile at $top_rate/s, a load run of its own"
  profile "$top_rate"
  stop_shop

  section "split (microshop up --split): start to ready, each process from its own start"
  startups split up --split
  gateway=$(addr gateway "$shop_dir")
  section "split: checkouts"
  ladder split || echo "  the checkout runs stopped: the load generator failed"
  echo "resident memory after the load:"
  rss_table split
  stop_shop

  section "BenchmarkEventFlow"
  go test -run '^$' -bench '^BenchmarkEventFlow$' -benchtime="${events}x" -count=1 ./internal/bench
}

# commit_of names the commit the tree is at, and whether it has changes.
commit_of() {
  if ! git -C "$repo" rev-parse --short HEAD 2>/dev/null; then
    echo "unknown (no git checkout; BENCH_COMMIT names it)"
    return
  fi
  git -C "$repo" diff --quiet 2>/dev/null || echo "(with uncommitted changes)"
}

nginx_workers() { pgrep -P "$nginx_pid" | wc -l; }

if [ "$out" = - ]; then
  run_all 2>&1
else
  run_all 2>&1 | tee "$out.partial"
  mv "$out.partial" "$out"
fi
