package fault

import (
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/fail"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Settings
		want string // a part of the error; empty for valid settings
	}{
		{"none", Settings{}, ""},
		{"everything at its bound", Settings{LatencyMS: 29_000, LatencyJitterMS: 1_000, ErrorRate: 1, Down: true}, ""},
		{"negative latency", Settings{LatencyMS: -1}, "latency_ms must not be negative"},
		{"negative jitter", Settings{LatencyJitterMS: -5}, "latency_jitter_ms must not be negative"},
		{"latency past the bound", Settings{LatencyMS: 30_001}, "at most 30000"},
		{"latency and jitter past the bound", Settings{LatencyMS: 20_000, LatencyJitterMS: 10_001}, "at most 30000"},
		{"huge latency does not overflow", Settings{LatencyMS: math.MaxInt, LatencyJitterMS: math.MaxInt}, "at most 30000"},
		{"error rate above 1", Settings{ErrorRate: 1.01}, "error_rate"},
		{"negative error rate", Settings{ErrorRate: -0.5}, "error_rate"},
		{"NaN error rate", Settings{ErrorRate: math.NaN()}, "error_rate"},
		{"every problem named", Settings{LatencyMS: -1, ErrorRate: 2}, "latency_ms must not be negative; error_rate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate(%+v) = %v, want nil", tc.s, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !fail.Is(err, fail.Invalid)):
				t.Errorf("Validate(%+v) = %v, want fail.Invalid containing %q", tc.s, err, tc.want)
			}
		})
	}
}

func TestExpect(t *testing.T) {
	for _, tc := range []struct {
		s    Settings
		want Expect
	}{
		{Settings{}, Expect{Latency: "no latency added", ErrorRate: "no errors injected", Down: "up: serving, consuming and heartbeating"}},
		{Settings{LatencyMS: 200}, Expect{Latency: "every request waits 200 ms before it is served"}},
		{Settings{LatencyMS: 200, LatencyJitterMS: 100}, Expect{Latency: "every request waits 200 to 300 ms before it is served"}},
		{Settings{LatencyJitterMS: 50}, Expect{Latency: "every request waits 0 to 50 ms before it is served"}},
		{Settings{ErrorRate: 1}, Expect{ErrorRate: "every request is answered 503 at once"}},
		{Settings{ErrorRate: 0.25}, Expect{ErrorRate: "about 25% of requests are answered 503 at once"}},
		{Settings{ErrorRate: 0.001}, Expect{ErrorRate: "about 0.1% of requests are answered 503 at once"}},
	} {
		got := tc.s.Expect()
		for _, f := range []struct{ name, got, want string }{
			{"latency", got.Latency, tc.want.Latency},
			{"error_rate", got.ErrorRate, tc.want.ErrorRate},
			{"down", got.Down, tc.want.Down},
		} {
			if f.want != "" && f.got != f.want {
				t.Errorf("%+v: expect %s = %q, want %q", tc.s, f.name, f.got, f.want)
			}
		}
	}
	if got := (Settings{Down: true}).Expect().Down; !strings.Contains(got, "reset") || !strings.Contains(got, "TTL") {
		t.Errorf("expect down = %q, want it to say connections reset and the registry drops it after its TTL", got)
	}
}

func TestDelayStaysWithinTheRange(t *testing.T) {
	s := Settings{LatencyMS: 10, LatencyJitterMS: 5}
	seen := map[time.Duration]bool{}
	for range 2000 {
		d := s.delay()
		if d < 10*time.Millisecond || d > 15*time.Millisecond {
			t.Fatalf("delay = %v, want 10 to 15 ms", d)
		}
		seen[d] = true
	}
	if len(seen) != 6 {
		t.Errorf("delays seen: %d distinct values, want all 6 of 10..15 ms", len(seen))
	}
}

// TestSetSwitchesOnlyOnChange: the host hears of going down and coming up
// once each, in order; the Up channel follows; invalid settings change
// nothing.
func TestSetSwitchesOnlyOnChange(t *testing.T) {
	in := New("hello")
	var calls []bool
	in.OnSwitch(func(down bool) {
		calls = append(calls, down)
		// The switch sees the instance already down, or not yet up, so
		// that no request is served while the work is stopped.
		if !in.Down() {
			t.Errorf("switch(%v) ran while the instance served requests", down)
		}
	})
	closed := func() bool {
		select {
		case <-in.Up():
			return true
		default:
			return false
		}
	}
	if !closed() {
		t.Fatal("Up() is open on a new injector, want closed (up)")
	}
	steps := []struct {
		s        Settings
		wantUp   bool
		switches int
	}{
		{Settings{LatencyMS: 5}, true, 0},
		{Settings{Down: true}, false, 1},
		{Settings{Down: true, ErrorRate: 0.5}, false, 1}, // still down: no second switch
		{Settings{}, true, 2},
		{Settings{}, true, 2},
	}
	for i, st := range steps {
		got, err := in.Set(st.s)
		if err != nil {
			t.Fatalf("step %d: Set(%+v) = %v", i, st.s, err)
		}
		if got.Settings != st.s || got.Service != "hello" {
			t.Errorf("step %d: state %+v, want %+v of hello", i, got, st.s)
		}
		if closed() != st.wantUp || len(calls) != st.switches {
			t.Errorf("step %d: up=%v after %d switches, want up=%v after %d", i, closed(), len(calls), st.wantUp, st.switches)
		}
	}
	if len(calls) == 2 && (!calls[0] || calls[1]) {
		t.Errorf("switches = %v, want [true false]", calls)
	}
	if _, err := in.Set(Settings{ErrorRate: 3}); err == nil || in.Settings() != (Settings{}) {
		t.Errorf("Set(out of range) = %v, settings now %+v; want an error and nothing changed", err, in.Settings())
	}
}

// TestCutSparesTheAdminsConnection opens three connections through the
// injector's listener, takes the instance down as if from the first, and
// checks that the other two are reset and the first still works.
func TestCutSparesTheAdminsConnection(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in := New("hello")
	ln := in.Listener(raw)
	defer ln.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	var servers []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
		servers = append(servers, <-accepted)
	}
	admin := clients[0].LocalAddr().String() // what the server sees as its remote address
	if _, err := in.set(Settings{Down: true}, admin); err != nil {
		t.Fatal(err)
	}
	reset := 0
	for _, c := range clients[1:] {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, io.EOF) {
			reset++ // an RST, not an orderly end
		}
	}
	if reset != 2 {
		t.Errorf("connections reset = %d, want 2", reset)
	}
	if _, err := servers[0].Write([]byte("x")); err != nil {
		t.Errorf("the admin's connection was cut: %v", err)
	}
	if n := len(in.conns.open); n != 1 {
		t.Errorf("connections still tracked = %d, want 1 (the admin's)", n)
	}
}

// TestGateResetsAllButTheFaultRoute serves through Gate on a real server.
func TestGateResetsAllButTheFaultRoute(t *testing.T) {
	in := New("hello")
	srv := httptest.NewServer(in.Gate(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})))
	defer srv.Close()
	if _, err := in.Set(Settings{Down: true}); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for _, tc := range []struct {
		path     string
		answered bool
	}{{"/api/v1/things", false}, {"/healthz", false}, {Path, true}, {Path + "/", false}} {
		resp, err := client.Get(srv.URL + tc.path)
		if err == nil {
			resp.Body.Close()
		}
		if (err == nil) != tc.answered {
			t.Errorf("GET %s while down: error %v, want answered=%v", tc.path, err, tc.answered)
		}
	}
}
