package host_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/bus/natsbus/natsbustest"
	"github.com/microshop/microshop/internal/discovery"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fault"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/web"
)

// faulty is a running service with fault injection, announced to a fake
// registry that drops instances whose TTL passes.
type faulty struct {
	svc      *host.Service
	addr     string
	base     string
	reg      *fakeRegistry
	admin    string        // an admin's bearer token
	customer string        // a customer's bearer token
	starts   atomic.Int32  // worker runs started
	stops    atomic.Int32  // worker runs ended
	entered  chan struct{} // a request reached GET /api/v1/slow
}

// startFaulty runs a service named hello with faults until the test ends,
// after configure (if any) has added to it. Its routes: GET /api/v1/hello
// answers at once, GET /api/v1/slow only when its request ends. It runs a
// worker that counts its starts and stops.
func startFaulty(t *testing.T, configure ...func(*host.Service)) *faulty {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(key, time.Hour)
	f := &faulty{entered: make(chan struct{}, 16)}
	f.admin = bearer(t, signer, auth.RoleAdmin)
	f.customer = bearer(t, signer, auth.RoleCustomer)
	reg, regURL := newRegistry(t)
	f.reg = reg
	f.svc = newService("hello")
	f.svc.Verifier = auth.NewVerifier(signer)
	f.svc.Registry = discovery.NewClient(regURL, time.Hour)
	f.svc.RegistryTTL = time.Second // heartbeats every third of a second
	f.svc.Faults = fault.New("hello")
	fault.Mount(f.svc.Routes, f.svc.Faults)
	f.svc.Routes.HandleFunc("GET /api/v1/slow", func(w http.ResponseWriter, r *http.Request) {
		f.entered <- struct{}{}
		<-r.Context().Done()
	})
	f.svc.Workers = []host.Worker{func(ctx context.Context) {
		f.starts.Add(1)
		<-ctx.Done()
		f.stops.Add(1)
	}}
	for _, c := range configure {
		c(f.svc)
	}
	addrs := make(chan string, 1)
	f.svc.OnListen = func(addr string) { addrs <- addr }

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- f.svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run returned %v after cancellation, want nil", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after cancellation")
		}
	})
	select {
	case f.addr = <-addrs:
	case err := <-errc:
		t.Fatalf("Run returned before listening: %v", err)
	}
	f.base = "http://" + f.addr
	eventually(t, "the service is ready", f.svc.Health.Ready)
	return f
}

func bearer(t *testing.T, signer *auth.Signer, role string) string {
	t.Helper()
	tok, _, err := signer.Sign("someone-"+role, role)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

// freshClient opens a new connection for every request, as a caller that
// meets the instance for the first time does.
var freshClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// faults sends a request to the fault route with authorization and body,
// and returns the status and the decoded state (zero unless 200).
func (f *faulty) faults(t *testing.T, method, authorization, body string) (int, fault.State) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.base+fault.Path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, fault.Path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var st fault.State
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatalf("decoding %s: %v", raw, err)
		}
	} else if ct := resp.Header.Get("Content-Type"); ct != web.ProblemContentType {
		t.Errorf("%s %s = %d with Content-Type %q, want a problem", method, fault.Path, resp.StatusCode, ct)
	}
	return resp.StatusCode, st
}

// set puts settings in force through the admin route, failing the test
// unless it is answered 200.
func (f *faulty) set(t *testing.T, s fault.Settings) fault.State {
	t.Helper()
	body, _ := json.Marshal(s)
	code, st := f.faults(t, http.MethodPut, f.admin, string(body))
	if code != http.StatusOK {
		t.Fatalf("PUT %s %s = %d, want 200", fault.Path, body, code)
	}
	return st
}

// tally sends n requests for path, each on a new connection, and counts
// those answered with each status and those that got no answer at all.
func tally(base, path string, n int) (byStatus map[int]int, unanswered int) {
	byStatus = map[int]int{}
	for range n {
		resp, err := freshClient.Get(base + path)
		if err != nil {
			unanswered++
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		byStatus[resp.StatusCode]++
	}
	return byStatus, unanswered
}

// TestDownIsAsIfTheProcessDied takes a running instance down and back up
// through its admin route, and counts what callers, the registry and the
// workers see.
func TestDownIsAsIfTheProcessDied(t *testing.T) {
	f := startFaulty(t)
	id := "hello-" + f.addr
	eventually(t, "the instance is in the registry", func() bool { return len(f.reg.live("hello")) == 1 })

	// A request in flight when the instance goes down is cut.
	inFlight := make(chan error, 1)
	go func() {
		resp, err := freshClient.Get(f.base + "/api/v1/slow")
		if err == nil {
			resp.Body.Close()
		}
		inFlight <- err
	}()
	<-f.entered

	st := f.set(t, fault.Settings{Down: true})
	if !st.Down || !strings.Contains(st.Expect.Down, "reset") {
		t.Errorf("state after down = %+v, want down with what to expect", st)
	}
	cut := 0
	select {
	case err := <-inFlight:
		if err != nil {
			cut++
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request in flight was neither answered nor cut")
	}
	if cut != 1 {
		t.Errorf("request in flight: got an answer, want its connection cut")
	}
	if got := f.stops.Load(); got != 1 {
		t.Errorf("worker stops once down = %d, want 1 (stopped before the PUT was answered)", got)
	}

	const n = 20
	byStatus, unanswered := tally(f.base, "/api/v1/hello", n)
	if unanswered != n {
		t.Errorf("while down: %d of %d calls unanswered (answered %v), want all failing at the connection", unanswered, n, byStatus)
	}
	if _, healthUnanswered := tally(f.base, "/healthz", 1); healthUnanswered != 1 {
		t.Error("while down: /healthz answered, want no answer")
	}
	if code, st := f.faults(t, http.MethodGet, f.admin, ""); code != http.StatusOK || !st.Down {
		t.Errorf("GET the fault route while down = %d %+v, want 200 and down", code, st)
	}
	eventually(t, "the registry drops the instance once its TTL passes", func() bool { return len(f.reg.live("hello")) == 0 })
	f.reg.mu.Lock()
	deregistered := slices.Contains(f.reg.deleted, id)
	f.reg.mu.Unlock()
	if deregistered {
		t.Error("the instance deregistered itself; a dead process cannot, it must expire")
	}
	if f.svc.Health.Ready() {
		t.Error("ready while down")
	}

	st = f.set(t, fault.Settings{})
	if st.Down || !strings.HasPrefix(st.Expect.Down, "up") {
		t.Errorf("state after up = %+v, want up", st)
	}
	// Brought back, its workers are started again: each in a goroutine of
	// its own, so the count follows the answer shortly.
	eventually(t, "the workers started again", func() bool { return f.starts.Load() == 2 })
	upStatus, upUnanswered := tally(f.base, "/api/v1/hello", n)
	if upStatus[http.StatusOK] != n {
		t.Errorf("after up: answered %v, %d unanswered; want %d of %d answered 200", upStatus, upUnanswered, n, n)
	}
	eventually(t, "the instance is back in the registry", func() bool { return len(f.reg.live("hello")) == 1 })
	t.Logf("verdict: in_flight_cut=%d down_calls=%d unanswered=%d answered=%d deregistered=%t dropped_by_ttl=true worker_stops=%d; up_calls=%d answered_200=%d worker_starts=%d relisted=true",
		cut, n, unanswered, n-unanswered, deregistered, f.stops.Load(), n, upStatus[http.StatusOK], f.starts.Load())
}

// TestStopWhileDownLeavesTheRegistry: a clean stop of an instance that is
// down still ends Run and deregisters it.
func TestStopWhileDownLeavesTheRegistry(t *testing.T) {
	reg, regURL := newRegistry(t)
	svc := newService("hello")
	svc.Registry = discovery.NewClient(regURL, time.Hour)
	svc.RegistryTTL = time.Minute
	svc.Faults = fault.New("hello")
	addrs := make(chan string, 1)
	svc.OnListen = func(addr string) { addrs <- addr }
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(ctx) }()
	addr := <-addrs
	eventually(t, "ready", svc.Health.Ready)
	if _, err := svc.Faults.Set(fault.Settings{Down: true}); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return while down")
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if !slices.Contains(reg.deleted, "hello-"+addr) {
		t.Errorf("deleted %v, want hello-%s: a clean stop leaves the registry, down or not", reg.deleted, addr)
	}
}

// TestInjectedLatencyDelaysEveryRequest counts the answers that took at
// least the injected latency, and the requests the injector delayed.
func TestInjectedLatencyDelaysEveryRequest(t *testing.T) {
	f := startFaulty(t)
	const latency, jitter, n = 120, 60, 10
	st := f.set(t, fault.Settings{LatencyMS: latency, LatencyJitterMS: jitter})
	if want := "every request waits 120 to 180 ms before it is served"; st.Expect.Latency != want {
		t.Errorf("expect = %q, want %q", st.Expect.Latency, want)
	}
	slow := 0
	for range n {
		start := time.Now()
		resp, err := freshClient.Get(f.base + "/api/v1/hello")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status %d, want 200: latency changes no answer", resp.StatusCode)
		}
		if time.Since(start) >= latency*time.Millisecond {
			slow++
		}
	}
	f.set(t, fault.Settings{}) // the fault route is never delayed, nor counted
	delayed := scrape(t, f.base, "microshop_fault_delayed_requests_total")
	if slow != n || delayed != n {
		t.Errorf("answers that took at least %d ms = %d, requests delayed = %v; want %d and %d", latency, slow, delayed, n, n)
	}
	t.Logf("verdict: requests=%d took_at_least_latency=%d delayed_counted=%v", n, slow, delayed)
}

// scrape reads one unlabelled-but-for-service counter from /metrics.
func scrape(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(raw)) {
		if strings.HasPrefix(line, name+"{") {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v); err != nil {
				t.Fatalf("reading %q: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// TestInjectedErrorRate: a rate of 1 answers every request 503 before it
// reaches the routes, 0 none, and a rate between answers about that share.
func TestInjectedErrorRate(t *testing.T) {
	var reached atomic.Int64
	svc := newService("hello")
	svc.Faults = fault.New("hello")
	svc.Routes.HandleFunc("GET /api/v1/count", func(w http.ResponseWriter, _ *http.Request) {
		reached.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})
	h := svc.Handler()
	for _, tc := range []struct {
		rate     float64
		n        int
		min, max int // bounds on the 503s; for 0.5 they are 10 standard deviations apart from the mean
	}{
		{rate: 1, n: 50, min: 50, max: 50},
		{rate: 0, n: 50, min: 0, max: 0},
		{rate: 0.5, n: 1000, min: 340, max: 660},
	} {
		if _, err := svc.Faults.Set(fault.Settings{ErrorRate: tc.rate}); err != nil {
			t.Fatal(err)
		}
		reached.Store(0)
		failed := 0
		for range tc.n {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/count", nil))
			switch rec.Code {
			case http.StatusServiceUnavailable:
				failed++
				if ct := rec.Header().Get("Content-Type"); ct != web.ProblemContentType || !strings.Contains(rec.Body.String(), "injected") {
					t.Fatalf("injected error = %q %s, want a problem that says it was injected", ct, rec.Body)
				}
			case http.StatusNoContent:
			default:
				t.Fatalf("status %d, want 204 or 503", rec.Code)
			}
		}
		if failed < tc.min || failed > tc.max || int(reached.Load()) != tc.n-failed {
			t.Errorf("error_rate %v: %d of %d answered 503, %d reached the route; want %d to %d 503s and the rest reaching the route",
				tc.rate, failed, tc.n, reached.Load(), tc.min, tc.max)
		}
		t.Logf("verdict: error_rate=%v requests=%d answered_503=%d reached_route=%d", tc.rate, tc.n, failed, reached.Load())
	}
}

// TestFaultRouteIsForAdminsAndValidates: only an admin reads or sets
// faults, and values out of range are refused and change nothing.
func TestFaultRouteIsForAdminsAndValidates(t *testing.T) {
	f := startFaulty(t)
	f.set(t, fault.Settings{LatencyMS: 5})
	for _, tc := range []struct {
		name, method, authorization, body string
		want                              int
	}{
		{"anonymous read", "GET", "", "", http.StatusUnauthorized},
		{"customer read", "GET", f.customer, "", http.StatusForbidden},
		{"anonymous write", "PUT", "", `{"down":true}`, http.StatusUnauthorized},
		{"customer write", "PUT", f.customer, `{"down":true}`, http.StatusForbidden},
		{"negative latency", "PUT", f.admin, `{"latency_ms":-1}`, http.StatusUnprocessableEntity},
		{"negative jitter", "PUT", f.admin, `{"latency_jitter_ms":-1}`, http.StatusUnprocessableEntity},
		{"latency past the bound", "PUT", f.admin, `{"latency_ms":30000,"latency_jitter_ms":1}`, http.StatusUnprocessableEntity},
		{"error rate above 1", "PUT", f.admin, `{"error_rate":1.5}`, http.StatusUnprocessableEntity},
		{"negative error rate", "PUT", f.admin, `{"error_rate":-0.1}`, http.StatusUnprocessableEntity},
		{"unknown field", "PUT", f.admin, `{"down":true,"crash":true}`, http.StatusBadRequest},
		{"not a number", "PUT", f.admin, `{"latency_ms":"slow"}`, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _ := f.faults(t, tc.method, tc.authorization, tc.body); code != tc.want {
				t.Errorf("%s %s = %d, want %d", tc.method, tc.body, code, tc.want)
			}
			if got := f.svc.Faults.Settings(); got != (fault.Settings{LatencyMS: 5}) {
				t.Errorf("settings = %+v, want {LatencyMS:5} unchanged", got)
			}
		})
	}
}

// TestConsumerThatWasDownGetsEveryEvent runs a consumer of the service on
// a real JetStream broker, through Faults.Subscriber, takes the service
// down, publishes, and brings it back: every event published meanwhile
// arrives once, on its first attempt, none is dead-lettered, and the
// consumer itself ran once, subscribing across the outage (a consumer
// registers with its inbox once). A control consumer that stays up fences
// the count: once it has every event, the down one would have had them too
// if it were still taking deliveries.
func TestConsumerThatWasDownGetsEveryEvent(t *testing.T) {
	broker := natsbustest.Embedded(t, "hello")
	const topic = "faulttest.thing.happened"
	type tally struct {
		deliveries, firstAttempts, dead atomic.Int64
	}
	var down, control tally
	subscription := func(group string, tl *tally, ready chan struct{}) bus.Subscription {
		var once atomic.Bool
		return bus.Subscription{Group: group, Topics: []string{topic},
			DeadLetter: func(context.Context, bus.Delivery, []byte, error) error { tl.dead.Add(1); return nil },
			Ready: func() {
				if once.CompareAndSwap(false, true) {
					close(ready)
				}
			}}
	}
	handler := func(tl *tally) bus.Handler {
		return func(_ context.Context, d bus.Delivery) error {
			tl.deliveries.Add(1)
			if d.Attempt == 1 {
				tl.firstAttempts.Add(1)
			}
			return nil
		}
	}
	downReady, controlReady := make(chan struct{}), make(chan struct{})
	downSub := subscription("down", &down, downReady)
	var consumerRuns atomic.Int32
	f := startFaulty(t, func(svc *host.Service) {
		sub := svc.Faults.Subscriber(broker)
		svc.Consumers = append(svc.Consumers, func(ctx context.Context) {
			consumerRuns.Add(1)
			if err := sub.Subscribe(ctx, downSub, handler(&down)); err != nil {
				t.Errorf("subscribing: %v", err)
			}
		})
	})
	ctx, cancel := context.WithCancel(context.Background())
	controlDone := make(chan struct{})
	go func() {
		defer close(controlDone)
		_ = broker.Subscribe(ctx, subscription("control", &control, controlReady), handler(&control))
	}()
	t.Cleanup(func() { cancel(); <-controlDone })
	<-downReady
	<-controlReady

	f.set(t, fault.Settings{Down: true})
	const n = 30
	for i := range n {
		e, err := event.New("faulttest", topic, "ThingHappened", 1, fmt.Sprint(i), map[string]int{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		if err := broker.Publish(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the control consumer gets every event", func() bool { return control.deliveries.Load() == n })
	whileDown := down.deliveries.Load()

	f.set(t, fault.Settings{})
	eventually(t, "the consumer that was down gets every event", func() bool { return down.deliveries.Load() >= n })
	if runs := consumerRuns.Load(); runs != 1 {
		t.Errorf("consumer runs = %d, want 1: it must subscribe across the outage, not be started again", runs)
	}
	if whileDown != 0 || down.deliveries.Load() != n || down.firstAttempts.Load() != n || down.dead.Load() != 0 || control.dead.Load() != 0 {
		t.Errorf("delivered while down = %d, after up = %d (first attempts %d), dead letters %d (control %d); want 0, %d (%d), 0 (0)",
			whileDown, down.deliveries.Load(), down.firstAttempts.Load(), down.dead.Load(), control.dead.Load(), n, n)
	}
	t.Logf("verdict: published_while_down=%d delivered_while_down=%d delivered_after_up=%d first_attempts=%d dead_letters=%d consumer_runs=%d",
		n, whileDown, down.deliveries.Load(), down.firstAttempts.Load(), down.dead.Load(), consumerRuns.Load())
}
