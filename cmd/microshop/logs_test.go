package main

import (
	"database/sql"
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// logLine is one JSON log line of the shop, and the text it was.
type logLine struct {
	fields map[string]any
	raw    string
}

func (l logLine) str(key string) string { s, _ := l.fields[key].(string); return s }

// logLines returns the JSON lines the shop wrote to its log (stderr), in
// order; its stdout lines, and anything not JSON, are left out.
func (p *proc) logLines(t *testing.T) []logLine {
	t.Helper()
	var out []logLine
	for _, raw := range strings.Split(p.logs.String(), "\n") {
		if !strings.HasPrefix(raw, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			continue // a line cut short by a concurrent write is no line of ours
		}
		out = append(out, logLine{fields: m, raw: raw})
	}
	return out
}

var (
	traceIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
	spanIDPattern  = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

// TestLogsOfOneCheckoutCarryItsTrace places one orchestrated checkout on a
// shop logging at debug, and follows it through the logs by the trace id
// its answer gave: every service that worked on it, for the request or for
// the events and commands that followed, logged in that trace, and every
// such line says its trace, its span and its service.
func TestLogsOfOneCheckoutCarryItsTrace(t *testing.T) {
	dir := t.TempDir()
	shop := start(t, dir, []string{"LOG_LEVEL=debug", "MICROSHOP_SAGA_MODE=orchestration"}, "up")
	c := newClient(t, shop.addrs["gateway"])
	placed, order := checkout(t, c, "logs@example.com")
	tp := placed.Header.Get("Traceparent")
	if !traceparent.MatchString(tp) {
		t.Fatalf("the placing answered traceparent %q", tp)
	}
	traceID := strings.Split(tp, "-")[1]
	orderID := order["id"].(string)

	// Services that must have logged in the checkout's trace: the gateway
	// and orders for the request; payments, inventory and shipping for the
	// commands the orchestrator sent them, which reach them only as events.
	want := []string{"gateway", "orders", "payments", "inventory", "shipping"}
	var lines []logLine
	services := map[string]int{}
	waitFor(t, 15*time.Second, "lines of every service in the checkout's trace", func() bool {
		lines, services = nil, map[string]int{}
		for _, l := range shop.logLines(t) {
			if l.str("trace_id") == traceID {
				lines = append(lines, l)
				services[l.str("service")]++
			}
		}
		for _, s := range want {
			if services[s] == 0 {
				return false
			}
		}
		return true
	})
	applied := map[string]bool{} // services whose consumers logged an event of the checkout
	for _, l := range lines {
		if !spanIDPattern.MatchString(l.str("span_id")) || l.str("service") == "" {
			t.Errorf("a line of the checkout's trace lacks its span or service: %s", l.raw)
		}
		if l.str("msg") == "event applied" {
			applied[l.str("service")] = true
		}
	}
	for _, s := range []string{"payments", "inventory", "shipping", "orders"} {
		if !applied[s] {
			t.Errorf("no %q line of %s's consumer in the checkout's trace: did the events it handled leave the trace?", "event applied", s)
		}
	}
	t.Logf("logs: trace=%s lines=%d by_service=%v", traceID, len(lines), services)

	// Every line about an event's work, whatever the trace, says which.
	eventWork := []string{"event applied", "event already applied; dropped", "saga step sent", "saga step failed", "event dead-lettered"}
	checked := 0
	for _, l := range shop.logLines(t) {
		if !slices.Contains(eventWork, l.str("msg")) {
			continue
		}
		checked++
		if !traceIDPattern.MatchString(l.str("trace_id")) || !spanIDPattern.MatchString(l.str("span_id")) || l.str("service") == "" {
			t.Errorf("a line about an event's work lacks its trace, span or service: %s", l.raw)
		}
	}
	if checked < 10 {
		t.Errorf("only %d lines about events' work: is the shop logging at debug?", checked)
	}

	checkCommandsCarryTheTrace(t, dir, orderID, traceID)
}

// checkCommandsCarryTheTrace reads the commands the orchestrator committed
// for an order to the orders service's outbox, and checks that each carries
// the trace of the request that placed the order.
func checkCommandsCarryTheTrace(t *testing.T, dataDir, orderID, traceID string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "orders.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT topic, envelope FROM outbox WHERE type = 'Command' AND envelope LIKE ?`, "%"+orderID+"%")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var topics []string
	for rows.Next() {
		var topic, envelope string
		if err := rows.Scan(&topic, &envelope); err != nil {
			t.Fatal(err)
		}
		var e struct {
			TraceParent string `json:"traceparent"`
		}
		if err := json.Unmarshal([]byte(envelope), &e); err != nil {
			t.Fatal(err)
		}
		topics = append(topics, topic)
		if !strings.HasPrefix(e.TraceParent, "00-"+traceID+"-") {
			t.Errorf("the orchestrator's %s carries traceparent %q, want the checkout's trace %s", topic, e.TraceParent, traceID)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"payments.command.charge", "inventory.command.reserve", "shipping.command.schedule", "inventory.command.commit"} {
		if !slices.Contains(topics, step) {
			t.Errorf("the orchestrator sent %v for the order, want each of its four forward steps", topics)
			break
		}
	}
}

// TestLogLevelWarnKeepsOnlyWarnings runs a shop at LOG_LEVEL=warn: it says
// nothing at info or debug (not even that it is ready, which it says at
// info), and still says what is a warning.
func TestLogLevelWarnKeepsOnlyWarnings(t *testing.T) {
	shop := start(t, t.TempDir(), []string{"LOG_LEVEL=warn"}, "up")
	c := newClient(t, shop.addrs["gateway"])
	checkout(t, c, "quiet@example.com")
	admin := c.login(adminEmail, adminPassword)
	c.unchecked().must(200, "PUT", "/api/v1/admin/faults/catalog", admin, map[string]any{}) // logged as a warning

	var warned bool
	waitFor(t, 10*time.Second, "the fault change's warning", func() bool {
		for _, l := range shop.logLines(t) {
			warned = warned || l.str("msg") == "faults injected"
		}
		return warned
	})
	levels := map[string]int{}
	for _, l := range shop.logLines(t) {
		levels[l.str("level")]++
		if lv := l.str("level"); lv == "INFO" || lv == "DEBUG" {
			t.Errorf("at LOG_LEVEL=warn the shop logged at %s: %s", lv, l.raw)
		}
	}
	t.Logf("logs at warn: by_level=%v", levels)
}
