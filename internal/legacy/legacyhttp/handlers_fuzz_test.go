package legacyhttp_test

import (
	"testing"
)

// FuzzOldShopBodies sends any body to the old API's two writes, PUT /profile
// and POST /orders, through the real handlers and store: every exchange is
// one the document describes (an answer or a problem, never a 500), and a
// refused write changes nothing in the monolith's database.
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
		status := s.srv.Call(t, ada, method, path, body).Status
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
