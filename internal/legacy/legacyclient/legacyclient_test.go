package legacyclient_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/legacy"
	"github.com/microshop/microshop/internal/legacy/legacyclient"
	"github.com/microshop/microshop/internal/upstream"
	"github.com/microshop/microshop/internal/web"
)

// resolver maps service names to the addresses of the fakes.
type resolver map[string]string

func (r resolver) Resolve(_ context.Context, service string) (string, error) {
	if addr, ok := r[service]; ok {
		return addr, nil
	}
	return "", fail.New(fail.Unavailable, "no healthy instance of %s", service)
}

func (resolver) Forget(string) {}

// fakeUsers answers GET /api/v2/users/{id} as the users service does: the
// owner's token sees the account, any other token is refused, an unknown id
// is not found. It records the tokens it was shown.
type fakeUsers struct {
	mu     sync.Mutex
	tokens []string
}

func (f *fakeUsers) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v2/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.tokens = append(f.tokens, r.Header.Get("Authorization"))
		f.mu.Unlock()
		switch id := r.PathValue("id"); {
		case id == "gone":
			web.WriteProblem(w, r, http.StatusNotFound, "user not found")
		case r.Header.Get("Authorization") != "Bearer tok-"+id:
			web.WriteProblem(w, r, http.StatusForbidden, "not your account")
		case id == "liar":
			web.JSON(w, http.StatusOK, map[string]string{"id": "someone-else", "name": "Eve", "email": "eve@example.com"})
		default:
			web.JSON(w, http.StatusOK, map[string]string{"id": id, "name": "Ada", "email": "ada@example.com"})
		}
	})
	return mux
}

// fakeCatalog answers GET /api/v1/products/{id} as the catalog does: the
// products it has, 404 for others, and 503 for "broken" as a catalog in
// trouble would.
func fakeCatalog() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/products/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch id := r.PathValue("id"); id {
		case "p-1", "a/b":
			web.JSON(w, http.StatusOK, map[string]any{"id": id, "sku": "SKU", "name": "Mug", "price_cents": 1250, "currency": "USD"})
		case "broken":
			web.WriteProblem(w, r, http.StatusServiceUnavailable, "catalog is overloaded")
		default:
			web.WriteProblem(w, r, http.StatusNotFound, "product not found")
		}
	})
	return mux
}

// client is an upstream client that finds users and catalog at the fakes.
func client(t *testing.T, users *fakeUsers) *upstream.Client {
	t.Helper()
	u := httptest.NewServer(users.handler())
	t.Cleanup(u.Close)
	c := httptest.NewServer(fakeCatalog())
	t.Cleanup(c.Close)
	return upstream.New("legacy", resolver{
		"users":   strings.TrimPrefix(u.URL, "http://"),
		"catalog": strings.TrimPrefix(c.URL, "http://"),
	})
}

func TestAccountIsAskedWithTheCallersToken(t *testing.T) {
	users := &fakeUsers{}
	accounts := legacyclient.Accounts{Caller: client(t, users)}
	ctx := context.Background()

	got, err := accounts.Account(ctx, "u-1", "tok-u-1")
	if err != nil || got != (legacy.Account{Name: "Ada", Email: "ada@example.com"}) {
		t.Fatalf("Account = %+v, %v; want Ada's account", got, err)
	}
	if len(users.tokens) != 1 || users.tokens[0] != "Bearer tok-u-1" {
		t.Errorf("users was shown %q, want the caller's own token", users.tokens)
	}

	tests := []struct {
		name, id, token string
		want            fail.Kind
	}{
		{"someone else's token", "u-1", "tok-u-2", fail.Forbidden},
		{"no such user", "gone", "tok-gone", fail.NotFound},
		{"an answer about another account", "liar", "tok-liar", fail.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := accounts.Account(ctx, tt.id, tt.token); !fail.Is(err, tt.want) {
				t.Errorf("Account = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestAccountWithUsersDownIsUnavailable(t *testing.T) {
	accounts := legacyclient.Accounts{Caller: upstream.New("legacy", resolver{})}
	if _, err := accounts.Account(context.Background(), "u-1", "tok-u-1"); !fail.Is(err, fail.Unavailable) {
		t.Errorf("Account = %v, want unavailable", err)
	}
}

func TestProduct(t *testing.T) {
	catalog := legacyclient.Catalog{Caller: client(t, &fakeUsers{})}
	ctx := context.Background()

	for _, id := range []string{"p-1", "a/b"} {
		got, err := catalog.Product(ctx, id)
		if err != nil || got != (legacy.Product{ID: id, PriceCents: 1250, Currency: "USD"}) {
			t.Errorf("Product(%q) = %+v, %v; want its price", id, got, err)
		}
	}
	for _, id := range []string{"p-9", "..", "."} {
		_, err := catalog.Product(ctx, id)
		if !fail.Is(err, fail.Invalid) || !strings.Contains(fail.MessageOf(err), `unknown product "`+id+`"`) {
			t.Errorf("Product(%q) = %v, want invalid: unknown product naming it", id, err)
		}
	}
	if _, err := catalog.Product(ctx, "broken"); !fail.Is(err, fail.Unavailable) {
		t.Errorf("Product with the catalog answering 503 = %v, want unavailable", err)
	}
	down := legacyclient.Catalog{Caller: upstream.New("legacy", resolver{})}
	if _, err := down.Product(ctx, "p-1"); !fail.Is(err, fail.Unavailable) {
		t.Errorf("Product with no catalog = %v, want unavailable", err)
	}
}
