package legacyhttp_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/auth"
)

// FuzzOldShopBodies sends any body to the old API's two writes, PUT /profile
// and POST /orders, through the real handlers and store: no answer is a
// 500, and a refused write changes nothing in the monolith's database.
// (The exchanges are not checked against the document here: Go's JSON
// decoding matches field names regardless of case, so {"NAME":...} is taken
// as {"name":...}, as in every service; see the issue notes.)
func FuzzOldShopBodies(f *testing.F) {
	f.Add(true, `{"name":"Ada King"}`)
	f.Add(true, `{"name":"\u0007"}`)
	f.Add(true, `{"name":""}`)
	f.Add(true, `{"name":"a","extra":1}`)
	f.Add(false, order)
	f.Add(false, `{"lines":[],"card_number":"4242424242424242","deliver_to":{"name":"A","line1":"1","city":"C","postal_code":"1","country":"GB"}}`)
	f.Add(false, `{"lines":[{"product_id":"p-1","qty":1001}],"card_number":"4242424242424241","deliver_to":{}}`)
	f.Add(false, `{"lines":[{"product_id":"../p-1","qty":1}],"card_number":"4242 4242 4242 4242","deliver_to":null}`)
	f.Add(false, `[`)
	s := newShop(f)
	f.Fuzz(func(t *testing.T, profile bool, body string) {
		customers, orders := s.counts(t)
		method, path := "POST", "/orders"
		if profile {
			method, path = "PUT", "/profile"
		}
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req = req.WithContext(auth.WithPrincipal(req.Context(), *ada))
		rec := httptest.NewRecorder()
		s.srv.Handler.ServeHTTP(rec, req)
		status := rec.Code
		if status != http.StatusCreated && status != http.StatusOK && rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%d without a problem for %q: %s", status, body, rec.Body)
		}
		if status >= 500 {
			t.Fatalf("%d for %q", status, body)
		}
		afterCustomers, afterOrders := s.counts(t)
		switch {
		case status >= 400 && afterOrders != orders:
			t.Fatalf("a refused order (%d) changed the orders from %d to %d: %q", status, orders, afterOrders, body)
		case status >= 400 && afterCustomers > customers+1:
			// A first visit enrols the customer, whatever the body says.
			t.Fatalf("a refused write (%d) added %d customers: %q", status, afterCustomers-customers, body)
		case !profile && status == 201 && afterOrders != orders+1:
			t.Fatalf("a placed order left %d orders, was %d: %q", afterOrders, orders, body)
		}
	})
}
