package load_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	fakeAdmin    = "admin@example.com"
	fakePassword = "admin-password"
	declinedCard = "4000000000000002"
)

// fakeShop speaks the shop's public API over real HTTP, with the rules a
// shopper can notice: accounts and tokens, a catalog with stock, orders
// that end CANCELLED for the declined card or too little stock and
// COMPLETED otherwise, admin-only restocking. It counts every request it
// answers, so a test can hold the generator's counts against it.
type fakeShop struct {
	srv *httptest.Server

	// slow, when set, is how long each browse answer waits.
	slow atomic.Int64
	// limited, when set, answers every product view 429.
	limited atomic.Bool

	inFlight, maxInFlight atomic.Int64 // browse requests being answered

	counted  sync.Mutex // apart from mu: handlers answer holding mu
	requests int
	byStatus map[int]int

	mu       sync.Mutex
	users    map[string]string // email -> password
	stock    map[string]int64  // product id -> available
	maxSet   map[string]int64  // product id -> the most it was restocked to
	restocks int
	orders   map[string]*fakeOrder
	keys     map[string]string // idempotency key -> order id
}

type fakeOrder struct {
	id, owner, end string
	polls          int
	created        time.Time
}

// newFakeShop starts a shop whose products have the stock levels given.
func newFakeShop(t *testing.T, stock map[string]int64) *fakeShop {
	t.Helper()
	f := &fakeShop{
		byStatus: map[int]int{},
		users:    map[string]string{fakeAdmin: fakePassword},
		stock:    stock,
		maxSet:   map[string]int64{},
		orders:   map[string]*fakeOrder{},
		keys:     map[string]string{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/users", f.signUp)
	mux.HandleFunc("POST /api/v1/auth/login", f.login)
	mux.HandleFunc("GET /api/v1/products", f.browse(f.listProducts))
	mux.HandleFunc("GET /api/v1/products/{id}", f.browse(f.product))
	mux.HandleFunc("GET /api/v2/products/{id}", f.browse(f.product))
	mux.HandleFunc("GET /api/v1/inventory/{id}", f.level)
	mux.HandleFunc("PUT /api/v1/inventory/{id}", f.restock)
	mux.HandleFunc("POST /api/v1/orders", f.placeOrder)
	mux.HandleFunc("GET /api/v1/orders/{id}", f.getOrder)
	// The old shop's API, behind the gateway's facade.
	mux.HandleFunc("GET /profile", f.oldShop)
	mux.HandleFunc("GET /orders", f.oldShop)
	f.srv = httptest.NewServer(f.count(mux))
	t.Cleanup(f.srv.Close)
	return f
}

// count counts every request and the status it was answered with, as the
// status is written: before the client can have the answer.
func (f *fakeShop) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&statusRecorder{ResponseWriter: w, f: f}, r)
	})
}

// statusRecorder counts the status its handler writes; every handler of
// the fake writes one explicitly.
type statusRecorder struct {
	http.ResponseWriter
	f *fakeShop
}

func (s *statusRecorder) WriteHeader(code int) {
	s.f.counted.Lock()
	s.f.requests++
	s.f.byStatus[code]++
	s.f.counted.Unlock()
	s.ResponseWriter.WriteHeader(code)
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func problem(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"about:blank","title":%q,"status":%d}`, http.StatusText(status), status)
}

// caller is the email a bearer token was issued to, or "".
func (f *fakeShop) caller(r *http.Request) string {
	email, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer tok:")
	return email
}

func (f *fakeShop) signUp(w http.ResponseWriter, r *http.Request) {
	var in struct{ Email, Name, Password string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Email == "" || len(in.Password) < 8 || in.Name == "" {
		problem(w, http.StatusUnprocessableEntity)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, taken := f.users[in.Email]; taken {
		problem(w, http.StatusConflict)
		return
	}
	f.users[in.Email] = in.Password
	reply(w, http.StatusCreated, map[string]string{"id": "user-" + in.Email, "name": in.Name})
}

func (f *fakeShop) login(w http.ResponseWriter, r *http.Request) {
	var in struct{ Email, Password string }
	_ = json.NewDecoder(r.Body).Decode(&in)
	f.mu.Lock()
	pw, ok := f.users[in.Email]
	f.mu.Unlock()
	if !ok || pw != in.Password {
		problem(w, http.StatusUnauthorized)
		return
	}
	reply(w, http.StatusOK, map[string]any{"access_token": "tok:" + in.Email, "token_type": "Bearer", "expires_in": 3600})
}

// browse wraps the catalog's routes: slowed or limited when the test says,
// and counted while they are being answered.
func (f *fakeShop) browse(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if f.caller(r) != "" { // a shopper's step, not the generator's setup
			n := f.inFlight.Add(1)
			defer f.inFlight.Add(-1)
			for m := f.maxInFlight.Load(); n > m && !f.maxInFlight.CompareAndSwap(m, n); m = f.maxInFlight.Load() {
			}
			if d := time.Duration(f.slow.Load()); d > 0 {
				select {
				case <-time.After(d):
				case <-r.Context().Done():
				}
			}
			if f.limited.Load() && r.PathValue("id") != "" {
				w.Header().Set("Retry-After", "1")
				problem(w, http.StatusTooManyRequests)
				return
			}
		}
		h(w, r)
	}
}

func (f *fakeShop) listProducts(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var items []map[string]any
	for id := range f.stock {
		items = append(items, map[string]any{"id": id, "sku": strings.ToUpper(id), "name": id, "price_cents": 100, "currency": "USD"})
	}
	reply(w, http.StatusOK, map[string]any{"items": items})
}

func (f *fakeShop) product(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	_, ok := f.stock[r.PathValue("id")]
	f.mu.Unlock()
	if !ok {
		problem(w, http.StatusNotFound)
		return
	}
	reply(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "name": "x", "price_cents": 100, "currency": "USD"})
}

func (f *fakeShop) oldShop(w http.ResponseWriter, r *http.Request) {
	if f.caller(r) == "" {
		problem(w, http.StatusUnauthorized)
		return
	}
	reply(w, http.StatusOK, map[string]any{})
}

func (f *fakeShop) level(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.stock[r.PathValue("id")]
	if !ok {
		problem(w, http.StatusNotFound)
		return
	}
	reply(w, http.StatusOK, map[string]any{"product_id": r.PathValue("id"), "available": n, "reserved": 0})
}

func (f *fakeShop) restock(w http.ResponseWriter, r *http.Request) {
	if f.caller(r) != fakeAdmin {
		problem(w, http.StatusForbidden)
		return
	}
	var in struct{ Available int64 }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Available < 0 {
		problem(w, http.StatusUnprocessableEntity)
		return
	}
	id := r.PathValue("id")
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.stock[id]; !ok {
		problem(w, http.StatusNotFound)
		return
	}
	f.stock[id] = in.Available
	f.maxSet[id] = max(f.maxSet[id], in.Available)
	f.restocks++
	reply(w, http.StatusOK, map[string]any{"product_id": id, "available": in.Available, "reserved": 0})
}

func (f *fakeShop) placeOrder(w http.ResponseWriter, r *http.Request) {
	owner := f.caller(r)
	if owner == "" {
		problem(w, http.StatusUnauthorized)
		return
	}
	var in struct {
		Items []struct {
			ProductID string `json:"product_id"`
			Quantity  int64  `json:"quantity"`
		}
		Payment struct{ Card string }
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || len(in.Items) != 1 || in.Items[0].Quantity < 1 || in.Items[0].Quantity > 1000 {
		problem(w, http.StatusUnprocessableEntity)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		problem(w, http.StatusUnprocessableEntity) // the generator always sends one
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.keys[key]; ok {
		reply(w, http.StatusAccepted, map[string]string{"id": id, "status": "PENDING"})
		return
	}
	line := in.Items[0]
	o := &fakeOrder{id: fmt.Sprintf("order-%d", len(f.orders)+1), owner: owner, created: time.Now()}
	switch {
	case in.Payment.Card == declinedCard || f.stock[line.ProductID] < line.Quantity:
		o.end = "CANCELLED"
	default:
		f.stock[line.ProductID] -= line.Quantity
		o.end = "COMPLETED"
	}
	f.orders[o.id] = o
	f.keys[key] = o.id
	w.Header().Set("Location", "/api/v1/orders/"+o.id)
	reply(w, http.StatusAccepted, map[string]string{"id": o.id, "status": "PENDING"})
}

// getOrder answers PENDING to the first poll and the order's end after.
func (f *fakeShop) getOrder(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.orders[r.PathValue("id")]
	if !ok || o.owner != f.caller(r) {
		problem(w, http.StatusNotFound)
		return
	}
	o.polls++
	status, updated := "PENDING", o.created
	if o.polls > 1 {
		status, updated = o.end, o.created.Add(42*time.Millisecond)
	}
	reply(w, http.StatusOK, map[string]any{"id": o.id, "status": status, "created_at": o.created, "updated_at": updated})
}

// ends counts the orders by how they end.
func (f *fakeShop) ends() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := map[string]int{}
	for _, o := range f.orders {
		n[o.end]++
	}
	return n
}
