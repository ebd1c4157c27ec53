package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// loadReport is what the test reads of `microshop load --json`.
type loadReport struct {
	Arrivals           int64 `json:"arrivals"`
	Requests           int64 `json:"requests"`
	OK                 int64 `json:"ok"`
	Failed             int64 `json:"failed"`
	OrdersPlaced       int64 `json:"orders_placed"`
	CheckoutsCompleted int64 `json:"checkouts_completed"`
	Cancelled          int64 `json:"cancelled"`
	Pending            int64 `json:"pending"`
	Unexpected         int64 `json:"unexpected"`
	LatencyMS          map[string]struct {
		P50   float64 `json:"p50"`
		P99   float64 `json:"p99"`
		Count int64   `json:"count"`
	} `json:"latency_ms"`
	Outcomes map[string]int `json:"outcomes"`
	Errors   map[string]int `json:"errors"`
}

// TestLoadCommand runs `microshop load` against a real shop, as the binary,
// and holds its report against the shop's own audit: every order it placed
// ended, each kind the way it should, and the invariants hold after it.
func TestLoadCommand(t *testing.T) {
	p := start(t, t.TempDir(), nil, "up")
	c := newClient(t, p.addrs["gateway"])
	seeded(t, c)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "load", "--target", p.addrs["gateway"],
		"--rate", "20", "--duration", "3s", "--json", "--admin-email", adminEmail)
	cmd.Env = append(os.Environ(), "MICROSHOP_ADMIN_PASSWORD="+adminPassword)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("microshop load: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("stdout has %d lines, want a report and then the JSON:\n%s", len(lines), stdout.String())
	}
	var rep loadReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		t.Fatalf("the last line of stdout is not the JSON report: %v\n%s", err, stdout.String())
	}
	t.Logf("report: %s", lines[len(lines)-1])

	if rep.Arrivals < 40 || rep.Requests < rep.Arrivals {
		t.Errorf("arrivals %d, requests %d; want about 60 arrivals (20/s for 3s), each a request at least", rep.Arrivals, rep.Requests)
	}
	if rep.Failed != 0 || len(rep.Errors) != 0 {
		t.Errorf("%d requests failed (%v); a healthy shop answers every one", rep.Failed, rep.Errors)
	}
	if rep.OrdersPlaced == 0 || rep.CheckoutsCompleted == 0 {
		t.Fatalf("orders placed %d, completed %d; want both above 0", rep.OrdersPlaced, rep.CheckoutsCompleted)
	}
	if rep.CheckoutsCompleted+rep.Cancelled != rep.OrdersPlaced || rep.Pending != 0 {
		t.Errorf("of %d orders: %d completed, %d cancelled, %d pending; want every one ended", rep.OrdersPlaced, rep.CheckoutsCompleted, rep.Cancelled, rep.Pending)
	}
	if rep.Unexpected != 0 {
		t.Errorf("%d orders ended otherwise than meant: %v", rep.Unexpected, rep.Outcomes)
	}
	if rep.LatencyMS["place_order"].Count != rep.OrdersPlaced || rep.LatencyMS["checkout"].Count != rep.OrdersPlaced {
		t.Errorf("latency samples: place_order %d, checkout %d; want one per order (%d)",
			rep.LatencyMS["place_order"].Count, rep.LatencyMS["checkout"].Count, rep.OrdersPlaced)
	}
	if !strings.Contains(stderr.String(), "orders") {
		t.Errorf("no progress on stderr:\n%s", stderr.String())
	}

	// The shop's own count agrees, and its invariants hold.
	admin := c.login(adminEmail, adminPassword)
	var audit struct {
		OK     bool `json:"ok"`
		Counts struct {
			Orders, Completed, Cancelled int64
		} `json:"counts"`
	}
	c.must(200, "GET", "/api/v1/admin/audit", admin, nil).json(t, &audit)
	if !audit.OK {
		t.Errorf("the audit after the load is not ok: %s", c.call("GET", "/api/v1/admin/audit", admin, nil).Body)
	}
	if audit.Counts.Orders != rep.OrdersPlaced || audit.Counts.Completed != rep.CheckoutsCompleted || audit.Counts.Cancelled != rep.Cancelled {
		t.Errorf("the shop counts %+v; the load report %d placed, %d completed, %d cancelled",
			audit.Counts, rep.OrdersPlaced, rep.CheckoutsCompleted, rep.Cancelled)
	}
}

// TestLoadCommandRefusesBadFlags: a bad flag or value prints the usage and
// exits 2, before any request.
func TestLoadCommandRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--rate", "0"},
		{"--rate", "lots"},
		{"--target", "ftp://127.0.0.1:1"},
		{"--duration", "-1s"},
		{"--no-such-flag"},
		{"stray"},
	} {
		cmd := exec.Command(binary, append([]string{"load"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("microshop load %v: %v, want exit code 2", args, err)
		}
		if !strings.Contains(stderr.String(), "Usage: microshop load") {
			t.Errorf("microshop load %v printed no usage:\n%s", args, stderr.String())
		}
	}
}
