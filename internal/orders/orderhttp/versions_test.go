package orderhttp_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/orders"
)

// placeOrder places an order of p1 through the v1 checkout, as user, and
// returns its id.
func (a importing) placeOrder(t *testing.T, user string) string {
	t.Helper()
	o := a.want(t, http.StatusAccepted, "POST", "/api/v1/orders", a.userToken(t, user, auth.RoleCustomer),
		`{"items":[{"product_id":"p1","quantity":1}],"payment":{"card":"4242424242424242"},`+
			`"shipping_address":{"name":"Ada","line1":"1 Main","city":"London","postal_code":"N1","country":"GB"}}`)
	id, _ := o["id"].(string)
	if id == "" {
		t.Fatalf("checkout answered %v, with no id", o)
	}
	return id
}

// importOrder imports one historical order of user through the internal
// route, under a fresh id that sorts after every order made so far.
func (a importing) importOrder(t *testing.T, user string) string {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	got := a.want(t, http.StatusOK, "POST", "/internal/v1/import/orders", a.serviceToken(t, "gateway"),
		`{"orders":[`+legacyJSON(id, user, "COMPLETED", 1000)+`]}`)
	if got["imported"] != float64(1) {
		t.Fatalf("import = %v, want 1 imported", got)
	}
	return id
}

// pages reads a listing limit orders a page, following next to the end, and
// returns every order listed; every page before the last must be full.
func (a importing) pages(t *testing.T, path, token string, limit int) []map[string]any {
	t.Helper()
	var out []map[string]any
	after := ""
	for range 100 {
		q := url.Values{"limit": {fmt.Sprint(limit)}}
		if after != "" {
			q.Set("after", after)
		}
		page := a.want(t, http.StatusOK, "GET", path+"?"+q.Encode(), token, "")
		items, _ := page["items"].([]any)
		for _, it := range items {
			out = append(out, it.(map[string]any))
		}
		next, _ := page["next"].(string)
		if next == "" {
			return out
		}
		if len(items) != limit {
			t.Fatalf("GET %s: a page of %d orders before the last, want %d", path, len(items), limit)
		}
		after = next
	}
	t.Fatalf("GET %s never ended", path)
	return nil
}

func idsOf(list []map[string]any) []string {
	var ids []string
	for _, o := range list {
		ids = append(ids, o["id"].(string))
	}
	return ids
}

func reversed(ids []string) []string {
	r := slices.Clone(ids)
	slices.Reverse(r)
	return r
}

// TestV1HidesImportedOrdersAndV2ShowsThem interleaves orders placed here
// with imported ones and reads them through both versions: v1 answers as
// it was published (no imported order, no origin, no saga none) and tells
// where an imported order went; v2 shows every order with its origin.
// Every exchange is checked against the document, whose v1 schemas are the
// published ones.
func TestV1HidesImportedOrdersAndV2ShowsThem(t *testing.T) {
	a := newImporting(t)
	var placed, all []string // u1's, oldest first
	imported := map[string]bool{}
	for i := range 6 {
		if i%2 == 0 {
			id := a.placeOrder(t, "u1")
			placed, all = append(placed, id), append(all, id)
		} else {
			id := a.importOrder(t, "u1")
			imported[id], all = true, append(all, id)
		}
	}
	otherPlaced, otherImported := a.placeOrder(t, "u2"), a.importOrder(t, "u2")
	imported[otherImported] = true
	a.project(t) // the orders-view group delivers what orders published

	owner, other := a.userToken(t, "u1", auth.RoleCustomer), a.userToken(t, "u2", auth.RoleCustomer)
	admin := a.userToken(t, "admin-1", auth.RoleAdmin)
	for _, limit := range []int{1, 2, 4, 50} {
		t.Run(fmt.Sprintf("%d a page", limit), func(t *testing.T) {
			for _, tc := range []struct {
				path, token string
				want        []string
			}{
				{"/api/v1/orders", owner, reversed(placed)},
				{"/api/v1/users/u1/orders", owner, reversed(placed)},
				{"/api/v1/users/u1/orders", admin, reversed(placed)},
				{"/api/v1/admin/orders", admin, append(slices.Clone(placed), otherPlaced)},
				{"/api/v2/orders", owner, reversed(all)},
				{"/api/v2/admin/orders", admin, append(slices.Clone(all), otherPlaced, otherImported)},
			} {
				list := a.pages(t, tc.path, tc.token, limit)
				if got := idsOf(list); !slices.Equal(got, tc.want) {
					t.Errorf("GET %s = %v, want %v", tc.path, got, tc.want)
				}
				v2 := strings.HasPrefix(tc.path, "/api/v2/")
				for _, o := range list {
					origin, hasOrigin := o["origin"]
					switch wasImported := imported[o["id"].(string)]; {
					case !v2 && hasOrigin:
						t.Errorf("GET %s lists %v with an origin, which v1 does not have", tc.path, o)
					case v2 && wasImported && (origin != orders.OriginLegacy || o["saga"] != orders.SagaNone):
						t.Errorf("GET %s lists the imported %v, want origin legacy and saga none", tc.path, o)
					case v2 && !wasImported && (origin != orders.OriginShop || o["saga"] != orders.ModeOrchestration):
						t.Errorf("GET %s lists %v, placed here, want origin shop and its saga", tc.path, o)
					}
				}
			}
		})
	}

	// One order each way, by id.
	legacy, shop := all[1], placed[0]
	moved := fmt.Sprintf("order %s was imported from the old shop: see /api/v2/orders/%s", legacy, legacy)
	for _, tc := range []struct {
		name, path, token string
		status            int
		detail            string // the problem's detail, exactly
	}{
		{"v1, an imported order, its owner", "/api/v1/orders/" + legacy, owner, http.StatusNotFound, moved},
		{"v1, an imported order, an admin", "/api/v1/orders/" + legacy, admin, http.StatusNotFound, moved},
		{"v1, an imported order's saga", "/api/v1/orders/" + legacy + "/saga", owner, http.StatusNotFound, moved},
		{"v1, an imported order, another user: not told it exists", "/api/v1/orders/" + legacy, other, http.StatusNotFound, "order not found"},
		{"v1, an imported order's saga, another user", "/api/v1/orders/" + legacy + "/saga", other, http.StatusNotFound, "order not found"},
		{"v1, an order placed here", "/api/v1/orders/" + shop, owner, http.StatusOK, ""},
		{"v1, its saga", "/api/v1/orders/" + shop + "/saga", owner, http.StatusOK, ""},
		{"v2, an imported order, its owner", "/api/v2/orders/" + legacy, owner, http.StatusOK, ""},
		{"v2, an imported order, an admin", "/api/v2/orders/" + legacy, admin, http.StatusOK, ""},
		{"v2, an order placed here", "/api/v2/orders/" + shop, owner, http.StatusOK, ""},
		{"v2, another user's", "/api/v2/orders/" + legacy, other, http.StatusNotFound, "order not found"},
		{"v2, no such order", "/api/v2/orders/no-such-order", admin, http.StatusNotFound, "order not found"},
		{"v2, no token", "/api/v2/orders/" + legacy, "", http.StatusUnauthorized, ""},
		{"v2 listing, no token", "/api/v2/orders", "", http.StatusUnauthorized, ""},
		{"v2 admin listing, a customer", "/api/v2/admin/orders", owner, http.StatusForbidden, ""},
		{"v2 listing, a bad limit", "/api/v2/orders?limit=0", owner, http.StatusUnprocessableEntity, ""},
		{"v2 admin listing, a cursor no id is", "/api/v2/admin/orders?after=" + url.QueryEscape(fmt.Sprintf("%065d", 0)), admin, http.StatusUnprocessableEntity, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := a.want(t, tc.status, "GET", tc.path, tc.token, "")
			if tc.detail != "" && got["detail"] != tc.detail {
				t.Errorf("detail = %q, want %q", got["detail"], tc.detail)
			}
		})
	}
	if o := a.want(t, http.StatusOK, "GET", "/api/v2/orders/"+legacy, owner, ""); o["origin"] != "legacy" || o["saga"] != "none" || o["status"] != "COMPLETED" {
		t.Errorf("GET /api/v2/orders/%s = %v, want it COMPLETED, of origin legacy, saga none", legacy, o)
	}
	o := a.want(t, http.StatusOK, "GET", "/api/v2/orders/"+shop, owner, "")
	v1 := a.want(t, http.StatusOK, "GET", "/api/v1/orders/"+shop, owner, "")
	if o["origin"] != "shop" || len(o) != len(v1)+1 {
		t.Errorf("GET /api/v2/orders/%s = %v, want the v1 fields %v and origin shop", shop, o, v1)
	}
	for k, v := range v1 {
		if fmt.Sprint(o[k]) != fmt.Sprint(v) {
			t.Errorf("v2 %s = %v, v1 %v: want the same", k, o[k], v)
		}
	}
}
