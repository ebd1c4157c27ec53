package facade

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/upstream"
	"github.com/microshop/microshop/internal/web"
)

// shopAPIs stands in for the HTTP APIs the facade calls: the monolith's
// export and handover API, users' and orders' import and public APIs. Each
// is a few lines of state; the facade's own logic (copy, pause, copy the
// rest, hand over, switch) is what is tested.
type shopAPIs struct {
	mu        sync.Mutex
	seq       int64
	profiles  map[string]legacyProfile // by customer id
	profSeq   map[string]int64
	handovers []handover
	users     map[string]legacyProfile // the users service's accounts
	imported  map[string]json.RawMessage
	failNext  string // a call path prefix that fails once
	calls     []string
}

func newShopAPIs() *shopAPIs {
	return &shopAPIs{profiles: map[string]legacyProfile{}, profSeq: map[string]int64{}, users: map[string]legacyProfile{}, imported: map[string]json.RawMessage{}}
}

// write is a write in the monolith: it takes the next change number.
func (s *shopAPIs) write(p legacyProfile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.profiles[p.CustomerID] = p
	s.profSeq[p.CustomerID] = s.seq
	if _, ok := s.users[p.CustomerID]; !ok {
		s.users[p.CustomerID] = legacyProfile{CustomerID: p.CustomerID, Name: "signed-up name", Email: p.Email}
	}
}

func (s *shopAPIs) user(id string) legacyProfile {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[id]
}

func decodeInto(out any, v any) error {
	if out == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func (s *shopAPIs) Do(ctx context.Context, c upstream.Call) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := c.Service + " " + c.Method + " " + c.Path
	s.calls = append(s.calls, key)
	if s.failNext != "" && strings.HasPrefix(key, s.failNext) {
		s.failNext = ""
		return fail.New(fail.Unavailable, "%s unavailable", c.Service)
	}
	u, _ := url.Parse(c.Path)
	switch {
	case c.Service == Legacy && u.Path == "/internal/v1/export/profiles":
		after, _ := strconv.ParseInt(u.Query().Get("after"), 10, 64)
		limit, _ := strconv.Atoi(u.Query().Get("limit"))
		var items []legacyProfile
		next := after
		for seq := after + 1; seq <= s.seq && len(items) < limit; seq++ {
			for id, ps := range s.profSeq {
				if ps == seq {
					items = append(items, s.profiles[id])
					next = seq
				}
			}
		}
		return decodeInto(c.Out, map[string]any{"items": items, "next": next})
	case c.Service == Legacy && u.Path == "/internal/v1/handovers" && c.Method == http.MethodPost:
		body := c.Body.(map[string]string)
		s.handovers = append(s.handovers, handover{Domain: body["domain"], Service: body["service"], HandedAt: time.Now()})
		return nil
	case c.Service == Legacy && u.Path == "/internal/v1/handovers":
		return decodeInto(c.Out, map[string]any{"handovers": s.handovers})
	case c.Service == "users" && u.Path == "/internal/v1/import/profiles":
		var in struct {
			Profiles []struct{ ID, Name, Email string }
		}
		if err := decodeInto(&in, c.Body); err != nil {
			return err
		}
		var missing []string
		for _, p := range in.Profiles {
			if _, ok := s.users[p.ID]; !ok {
				missing = append(missing, p.ID)
				continue
			}
			s.users[p.ID] = legacyProfile{CustomerID: p.ID, Name: p.Name, Email: p.Email}
		}
		return decodeInto(c.Out, map[string]any{"imported": len(in.Profiles) - len(missing), "missing": missing})
	case c.Service == "users" && strings.HasPrefix(u.Path, "/api/v2/users/"):
		p := s.users[strings.TrimPrefix(u.Path, "/api/v2/users/")]
		return decodeInto(c.Out, map[string]string{"id": p.CustomerID, "name": p.Name, "email": p.Email})
	case c.Service == "orders" && u.Path == "/api/v1/orders" && c.Method == http.MethodPost:
		b, _ := json.Marshal(c.Body)
		s.imported["placed"] = b
		return decodeInto(c.Out, map[string]any{"id": "o-1", "status": "PENDING", "total_cents": 1000, "currency": "USD",
			"items": []map[string]any{{"product_id": "p-1", "quantity": 2, "price_cents": 500}}, "created_at": time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC)})
	}
	return fmt.Errorf("unexpected call %s", key)
}

// legacyStub is the monolith's public side: it answers /profile from the
// shared state, and can hold a request until released.
type legacyStub struct {
	apis    *shopAPIs
	hold    chan struct{} // when set, a PUT waits on it before writing
	entered chan struct{}
}

func (l *legacyStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.User(r.Context())
	if r.Method == http.MethodPut {
		if l.hold != nil {
			l.entered <- struct{}{}
			<-l.hold
		}
		var in struct{ Name string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		l.apis.write(legacyProfile{CustomerID: p.Subject, Name: in.Name, Email: p.Subject + "@example.com"})
	}
	l.apis.mu.Lock()
	prof := l.apis.profiles[p.Subject]
	l.apis.mu.Unlock()
	web.JSON(w, http.StatusOK, oldProfile(prof))
}

func newFacade(t *testing.T, apis *shopAPIs, legacy http.Handler) *Facade {
	t.Helper()
	f, err := New(Options{Legacy: legacy, Call: apis})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func request(method, path, subject, body string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer token-of-"+subject)
	return r.WithContext(auth.WithPrincipal(r.Context(), auth.Principal{Subject: subject, Role: auth.RoleCustomer}))
}

func profileOf(t *testing.T, f *Facade, subject string) oldProfile {
	t.Helper()
	w := httptest.NewRecorder()
	f.ServeHTTP(w, request(http.MethodGet, "/profile", subject, ""))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /profile: %d %s", w.Code, w.Body)
	}
	var p oldProfile
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMoveCopiesThenSwitches(t *testing.T) {
	apis := newShopAPIs()
	f := newFacade(t, apis, &legacyStub{apis: apis})
	for i := range 3 {
		id := fmt.Sprintf("u-%d", i)
		apis.write(legacyProfile{CustomerID: id, Name: "renamed in the monolith " + id, Email: id + "@example.com"})
	}
	if got := profileOf(t, f, "u-1").Name; got != "renamed in the monolith u-1" {
		t.Fatalf("before the move: name %q", got)
	}

	st, err := f.Move(t.Context(), "/profile", "users")
	if err != nil {
		t.Fatal(err)
	}
	if st.Target != "users" || st.Copied != 3 || st.MovedAt == nil || st.Requests[Legacy] != 1 {
		t.Fatalf("state after the move: %+v", st)
	}
	// The same answer, now from users, which owns the name from here on.
	if got := profileOf(t, f, "u-1"); got.Name != "renamed in the monolith u-1" || got.Email != "u-1@example.com" {
		t.Fatalf("after the move: %+v", got)
	}
	if len(apis.handovers) != 1 || apis.handovers[0].Domain != "profiles" || apis.handovers[0].Service != "users" {
		t.Fatalf("handovers: %+v", apis.handovers)
	}
	// Moving it where it is changes nothing; moving it back is refused.
	if _, err := f.Move(t.Context(), "/profile", "users"); err != nil {
		t.Fatalf("a move to where the route is: %v", err)
	}
	if _, err := f.Move(t.Context(), "/profile", Legacy); !fail.Is(err, fail.Conflict) {
		t.Fatalf("moving back: %v, want a conflict", err)
	}
}

// A request in flight when the move starts finishes on the monolith, and
// what it wrote is copied before the switch; a request that comes during
// the pause waits, then goes to the service. None is dropped.
func TestMoveWaitsForRequestsInFlightAndCopiesTheirWrites(t *testing.T) {
	apis := newShopAPIs()
	legacy := &legacyStub{apis: apis, hold: make(chan struct{}), entered: make(chan struct{})}
	f := newFacade(t, apis, legacy)
	apis.write(legacyProfile{CustomerID: "u-1", Name: "first", Email: "u-1@example.com"})

	inFlight := httptest.NewRecorder()
	var wg sync.WaitGroup
	wg.Go(func() {
		f.ServeHTTP(inFlight, request(http.MethodPut, "/profile", "u-2", `{"name":"written during the move"}`))
	})
	<-legacy.entered // the request is inside the monolith

	moved := make(chan error, 1)
	go func() {
		_, err := f.Move(context.Background(), "/profile", "users")
		moved <- err
	}()
	// The move waits for the request in flight: it cannot hand over yet.
	waitFor(t, func() bool {
		r := f.route("/profile")
		if r.gate.TryRLock() {
			r.gate.RUnlock()
			return false
		}
		return true // a move waits for the gate: no new request gets in
	})
	select {
	case err := <-moved:
		t.Fatalf("the move ended while a request was in flight: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	late := httptest.NewRecorder()
	wg.Go(func() { f.ServeHTTP(late, request(http.MethodGet, "/profile", "u-2", "")) })

	close(legacy.hold) // the monolith answers; the move goes on
	if err := <-moved; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if inFlight.Code != http.StatusOK {
		t.Fatalf("the request in flight: %d %s", inFlight.Code, inFlight.Body)
	}
	if late.Code != http.StatusOK || !strings.Contains(late.Body.String(), "written during the move") {
		t.Fatalf("the request that waited: %d %s", late.Code, late.Body)
	}
	if got := apis.user("u-2").Name; got != "written during the move" {
		t.Fatalf("the write made during the move reached users as %q", got)
	}
	st := f.States()[0]
	if st.Requests[Legacy] != 1 || st.Requests["users"] != 1 {
		t.Fatalf("requests by destination: %+v", st.Requests)
	}
}

func TestAFailedMoveLeavesTheRouteOnTheMonolith(t *testing.T) {
	for _, step := range []string{"users POST /internal/v1/import", "legacy POST /internal/v1/handovers"} {
		t.Run(step, func(t *testing.T) {
			apis := newShopAPIs()
			f := newFacade(t, apis, &legacyStub{apis: apis})
			apis.write(legacyProfile{CustomerID: "u-1", Name: "n", Email: "u-1@example.com"})
			apis.failNext = step
			if _, err := f.Move(t.Context(), "/profile", "users"); !fail.Is(err, fail.Unavailable) {
				t.Fatalf("move: %v, want unavailable", err)
			}
			st := f.States()[0]
			if st.Target != Legacy || st.Moving || st.Error == "" {
				t.Fatalf("after a failed move: %+v", st)
			}
			profileOf(t, f, "u-1") // the gate is open again
			if _, err := f.Move(t.Context(), "/profile", "users"); err != nil {
				t.Fatalf("the retried move: %v", err)
			}
		})
	}
}

func TestMoveRefusesUnknownRoutesAndTargets(t *testing.T) {
	f := newFacade(t, newShopAPIs(), http.NotFoundHandler())
	for _, c := range [][2]string{{"/nowhere", "users"}, {"/profile", "orders"}, {"/orders", ""}} {
		if _, err := f.Move(t.Context(), c[0], c[1]); !fail.Is(err, fail.Invalid) {
			t.Errorf("Move(%q, %q): %v, want invalid", c[0], c[1], err)
		}
	}
	if _, err := New(Options{Start: map[string]string{"/profile": "catalog"}}); err == nil {
		t.Error("a start table with a wrong target was taken")
	}
}

// A gateway that starts after a move learns it from the monolith.
func TestSyncFollowsTheMonolithsHandovers(t *testing.T) {
	apis := newShopAPIs()
	apis.handovers = []handover{{Domain: "orders", Service: "orders", HandedAt: time.Now()}}
	f := newFacade(t, apis, http.NotFoundHandler())
	w := httptest.NewRecorder()
	f.ServeHTTP(w, request(http.MethodPost, "/orders", "u-1", `{"lines":[{"product_id":"p-1","qty":2}],"card_number":"4242424242424242","deliver_to":{"name":"A","line1":"1 Road","city":"C","postal_code":"1","country":"NL"}}`))
	if w.Code != http.StatusCreated || w.Header().Get("Location") != "/orders/o-1" {
		t.Fatalf("POST /orders after a handover: %d %s", w.Code, w.Body)
	}
	var got oldOrder
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.OrderNo != "o-1" || got.Status != "PLACED" || len(got.Lines) != 1 || got.Lines[0].Qty != 2 || got.Lines[0].UnitPriceCents != 500 {
		t.Fatalf("the old answer: %+v", got)
	}
	var placed map[string]any
	_ = json.Unmarshal(apis.imported["placed"], &placed)
	if placed["payment"].(map[string]any)["card"] != "4242424242424242" || placed["shipping_address"].(map[string]any)["city"] != "C" {
		t.Fatalf("the new request: %v", placed)
	}
}

func TestStatusesInBothWords(t *testing.T) {
	for newS, oldS := range map[string]string{"PENDING": "PLACED", "RESERVING": "PLACED", "COMPLETED": "CONFIRMED", "CANCELLED": "CANCELLED"} {
		if got := oldStatus(newS); got != oldS {
			t.Errorf("oldStatus(%s) = %s, want %s", newS, got, oldS)
		}
	}
	if s, err := newStatus("CONFIRMED"); err != nil || s != "COMPLETED" {
		t.Errorf("newStatus(CONFIRMED) = %s, %v", s, err)
	}
	if _, err := newStatus("LOST"); err == nil {
		t.Error("an unknown monolith status was mapped")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// goneLegacy is a monolith that has handed /orders over: it refuses with
// 410 Gone before reading the request, as the real one does.
type goneLegacy struct{}

func (goneLegacy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-From", "the monolith")
	web.WriteProblem(w, r, http.StatusGone, "this route's data moved to the orders service")
}

// Another gateway moved /orders: this one still sends it to the monolith,
// which refuses; the facade learns the move and serves the same request,
// body and all, from orders. The customer never sees the 410.
func TestARouteMovedByAnotherGatewayIsFollowed(t *testing.T) {
	apis := newShopAPIs()
	f := newFacade(t, apis, goneLegacy{})
	if err := f.Sync(t.Context()); err != nil { // nothing handed over yet
		t.Fatal(err)
	}
	apis.handovers = []handover{{Domain: "orders", Service: "orders", HandedAt: time.Now()}}

	w := httptest.NewRecorder()
	f.ServeHTTP(w, request(http.MethodPost, "/orders", "u-1", `{"lines":[{"product_id":"p-1","qty":2}],"card_number":"4242424242424242","deliver_to":{"name":"A","line1":"1 Road","city":"C","postal_code":"1","country":"NL"}}`))
	if w.Code != http.StatusCreated || w.Header().Get("X-From") != "" || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("POST /orders: %d %v %s", w.Code, w.Header(), w.Body)
	}
	if st := f.States()[1]; st.Target != "orders" || st.Requests[Legacy] != 1 || st.Requests["orders"] != 1 {
		t.Fatalf("route after following the move: %+v", st)
	}
}

// A service that cannot take a record stops the move: the route stays on
// the monolith, and the admin is told why, as a conflict of data.
func TestAMoveTheServiceRefusesIsAConflict(t *testing.T) {
	apis := newShopAPIs()
	f := newFacade(t, apis, &legacyStub{apis: apis})
	apis.write(legacyProfile{CustomerID: "u-gone", Name: "n", Email: "gone@example.com"})
	delete(apis.users, "u-gone") // an account users does not have
	_, err := f.Move(t.Context(), "/profile", "users")
	if !fail.Is(err, fail.Conflict) || !strings.Contains(fail.MessageOf(err), "u-gone") {
		t.Fatalf("move: %v (kind %v), want a conflict naming u-gone", err, fail.KindOf(err))
	}
	if st := f.States()[0]; st.Target != Legacy || len(apis.handovers) != 0 {
		t.Fatalf("after a refused copy: %+v, handovers %v", st, apis.handovers)
	}
}
