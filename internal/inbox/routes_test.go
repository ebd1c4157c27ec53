package inbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/sqldb"
)

// adminServer mounts the dead-letter routes on a service's mux as the
// package says to, behind a wrapper that puts the principal named by the
// X-Test-Role header in the request context, as the auth middleware would.
func adminServer(in *inbox.Inbox) http.Handler {
	mux := http.NewServeMux()
	dlq := inbox.Routes(in)
	mux.Handle(inbox.ListPattern, dlq)
	mux.Handle(inbox.ReplayPattern, dlq)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if role := r.Header.Get("X-Test-Role"); role != "" {
			r = r.WithContext(auth.WithPrincipal(r.Context(), auth.Principal{Subject: "u1", Role: role}))
		}
		mux.ServeHTTP(w, r)
	})
}

func TestAdminRoutes(t *testing.T) {
	db := openDB(t, sqldb.SQLite)
	in := inbox.New(db, "", nil)
	var broken atomic.Bool
	broken.Store(true)
	apply := credit(db)
	h := in.Handle("wallet", func(ctx context.Context, e event.Event) error {
		if broken.Load() {
			return errors.New("account is frozen")
		}
		return apply(ctx, e)
	})
	dead := in.DeadLetters("wallet")
	poison := newEvent(t, "acct", 3)
	deliver(t, h, dead, poison, 2)
	if err := dead(context.Background(), bus.Delivery{}, []byte("garbage"), errors.New("undecodable")); err != nil {
		t.Fatal(err)
	}
	list, _, err := in.List(context.Background(), "", 10)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %d, %v", len(list), err)
	}
	poisonID, garbageID := list[0].ID, list[1].ID
	srv := adminServer(in)

	tests := []struct {
		name, method, path, role string
		want                     int
	}{
		{"list anonymous", "GET", "/api/v1/admin/dlq", "", http.StatusUnauthorized},
		{"list customer", "GET", "/api/v1/admin/dlq", auth.RoleCustomer, http.StatusForbidden},
		{"list bad limit", "GET", "/api/v1/admin/dlq?limit=0", auth.RoleAdmin, http.StatusUnprocessableEntity},
		{"list huge limit", "GET", "/api/v1/admin/dlq?limit=1001", auth.RoleAdmin, http.StatusUnprocessableEntity},
		{"list", "GET", "/api/v1/admin/dlq?limit=1000", auth.RoleAdmin, http.StatusOK},
		{"replay anonymous", "POST", "/api/v1/admin/dlq/" + poisonID + "/replay", "", http.StatusUnauthorized},
		{"replay customer", "POST", "/api/v1/admin/dlq/" + poisonID + "/replay", auth.RoleCustomer, http.StatusForbidden},
		{"replay unknown", "POST", "/api/v1/admin/dlq/nope/replay", auth.RoleAdmin, http.StatusNotFound},
		{"replay unreadable", "POST", "/api/v1/admin/dlq/" + garbageID + "/replay", auth.RoleAdmin, http.StatusConflict},
		{"replay still failing", "POST", "/api/v1/admin/dlq/" + poisonID + "/replay", auth.RoleAdmin, http.StatusConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			r.Header.Set("X-Test-Role", tt.role)
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, w.Code, w.Body, tt.want)
			}
			if tt.want >= 400 && w.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("error answered as %q, want problem details", w.Header().Get("Content-Type"))
			}
		})
	}
	if b := balance(t, db, "acct"); b != 0 {
		t.Fatalf("credits = %d before a successful replay, want 0", b)
	}

	// The listing shows what an admin needs to decide.
	r := httptest.NewRequest("GET", "/api/v1/admin/dlq?limit=1", nil)
	r.Header.Set("X-Test-Role", auth.RoleAdmin)
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	var page struct {
		Items []map[string]any `json:"items"`
		Next  string           `json:"next"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Next != poisonID {
		t.Fatalf("first page = %+v, want 1 item and next %s", page, poisonID)
	}
	item := page.Items[0]
	for field, want := range map[string]any{
		"id": poisonID, "group": "wallet", "event_id": poison.ID, "type": "PaymentProcessed",
		"topic": "payments.payment.processed", "attempts": float64(3), "replayed_at": nil,
	} {
		if got := item[field]; got != want {
			t.Errorf("item[%q] = %v, want %v", field, got, want)
		}
	}
	if e, _ := item["error"].(string); !strings.Contains(e, "account is frozen") {
		t.Errorf("item error = %q, want the last failure", e)
	}
	if _, ok := item["created_at"].(string); !ok {
		t.Errorf("item has no created_at: %v", item)
	}

	broken.Store(false)
	r = httptest.NewRequest("POST", "/api/v1/admin/dlq/"+poisonID+"/replay", nil)
	r.Header.Set("X-Test-Role", auth.RoleAdmin)
	w = httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	var replayed map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &replayed); err != nil || w.Code != http.StatusOK {
		t.Fatalf("replay = %d %s", w.Code, w.Body)
	}
	if replayed["replayed_at"] == nil {
		t.Errorf("replayed dead letter = %v, want replayed_at set", replayed)
	}
	if b := balance(t, db, "acct"); b != 3 {
		t.Errorf("credits = %d after the replay, want 3", b)
	}
}
