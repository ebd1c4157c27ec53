package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/microshop/microshop/internal/catalog/cataloghttp"
	"github.com/microshop/microshop/internal/contract"
	"github.com/microshop/microshop/internal/gateway"
	"github.com/microshop/microshop/internal/inventory/inventoryhttp"
	"github.com/microshop/microshop/internal/orders/orderhttp"
	"github.com/microshop/microshop/internal/payments/paymenthttp"
	"github.com/microshop/microshop/internal/registry"
	"github.com/microshop/microshop/internal/shipping/shippinghttp"
	"github.com/microshop/microshop/internal/users/userhttp"
)

// published is every OpenAPI document, by the service that serves it: the
// route table the attacks below are generated from.
var published = map[string][]byte{
	"users": userhttp.OpenAPI, "catalog": cataloghttp.OpenAPI, "inventory": inventoryhttp.OpenAPI,
	"orders": orderhttp.OpenAPI, "payments": paymenthttp.OpenAPI, "shipping": shippinghttp.OpenAPI,
	"registry": registry.OpenAPI, "gateway": gateway.OpenAPI,
}

// protectedFields are fields no client may set on a write.
var protectedFields = []string{"role", "status", "total_cents", "price_cents", "user_id"}

// forgedIdentity are identity headers a client might send to pass as
// someone else; the gateway strips them.
func forgedIdentity(userID string) []string {
	return []string{"X-User-Id", userID, "X-User-Role", "admin", "X-Forwarded-User", userID, "X-Remote-User", userID,
		"X-Authenticated-User", userID, "X-Service-Name", "orders"}
}

// recorder keeps every answer the shop gave, headers and body, so that a
// test can look for what must never be in one.
type recorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	seen bytes.Buffer
}

func (rec *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rec.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	rec.mu.Lock()
	defer rec.mu.Unlock()
	fmt.Fprintf(&rec.seen, "%s %s -> %d\n", req.Method, req.URL, resp.StatusCode)
	_ = resp.Header.Write(&rec.seen)
	rec.seen.Write(body)
	rec.seen.WriteString("\n")
	return resp, err
}

func (rec *recorder) String() string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.seen.String()
}

// recordingClients returns a client of base checked against the contract and
// an unchecked one for attacks (whose answers no document need describe),
// both recording every answer in rec.
func recordingClients(t *testing.T, base string, rec *recorder) (checked, attack *client) {
	t.Helper()
	docs, err := contract.LoadAll(gateway.OpenAPI, userhttp.OpenAPI, cataloghttp.OpenAPI, inventoryhttp.OpenAPI,
		orderhttp.OpenAPI, paymenthttp.OpenAPI, shippinghttp.OpenAPI, registry.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	tr := contract.Transport(docs, rec, func(err error) { t.Errorf("contract: %v", err) })
	checked = &client{t: t, base: base, hc: &http.Client{Timeout: 15 * time.Second, Transport: tr}}
	attack = &client{t: t, base: base, hc: &http.Client{Timeout: 15 * time.Second, Transport: rec,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	return checked, attack
}

// operation is one documented route and method.
type operation struct {
	service string // whose document it is in
	method  string
	path    string // the documented path, with {params}
	op      *openapi3.Operation
	params  openapi3.Parameters // the path item's and the operation's
}

func (o operation) tagged(tag string) bool { return slices.Contains(o.op.Tags, tag) }

// admin is a route only an admin may use: tagged admin, under
// /api/v1/admin/, or documented as "(admin)".
func (o operation) admin() bool {
	return o.tagged("admin") || strings.HasPrefix(o.path, "/api/v1/admin/") || strings.Contains(o.op.Summary, "(admin)")
}

func (o operation) secured() bool { return o.op.Security != nil && len(*o.op.Security) > 0 }

// body is the JSON schema of the operation's request body, or nil.
func (o operation) body() *openapi3.Schema {
	if o.op.RequestBody == nil || o.op.RequestBody.Value == nil {
		return nil
	}
	mt := o.op.RequestBody.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		return nil
	}
	return mt.Schema.Value
}

// operations walks every published document.
func operations(t *testing.T) []operation {
	t.Helper()
	var out []operation
	for service, raw := range published {
		doc, err := openapi3.NewLoader().LoadFromData(raw)
		if err != nil {
			t.Fatalf("loading the %s document: %v", service, err)
		}
		for path, item := range doc.Paths.Map() {
			for method, op := range item.Operations() {
				params := append(slices.Clone(item.Parameters), op.Parameters...)
				out = append(out, operation{service: service, method: method, path: path, op: op, params: params})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return a.service+a.path+a.method < b.service+b.path+b.method
	})
	return out
}

// routedByGateway says whether the gateway forwards path to service, by its
// route table (the gateway's own document is all its own routes).
func routedByGateway(service, path string) bool {
	if service == "gateway" {
		return true
	}
	mux := http.NewServeMux()
	for _, rt := range gateway.Table {
		if rt.Service == service {
			mux.Handle(rt.Pattern, http.NotFoundHandler())
		}
	}
	req, _ := http.NewRequest("GET", "http://gw"+strings.NewReplacer("{", "", "}", "").Replace(path), nil)
	_, pattern := mux.Handler(req)
	return pattern != ""
}

// victim is the first customer and her real resources: every attack aims at
// them.
type victim struct {
	userID, email, orderID, productID string
	markers                           []string // strings that only her data contains
}

// fill makes a concrete path and query for o, aimed at v's resources. owned
// says whether an id in it is one of hers.
func (v victim) fill(o operation) (path string, owned bool) {
	path = o.path
	q := url.Values{}
	for _, p := range o.params {
		if p.Value == nil {
			continue
		}
		var value string
		switch name := p.Value.Name; {
		case name == "order_id" || (name == "id" && strings.Contains(o.path, "/orders/")):
			value, owned = v.orderID, true
		case name == "user_id" || (name == "id" && (strings.Contains(o.path, "/users/"))):
			value, owned = v.userID, true
		case name == "product_id" || (name == "id" && strings.Contains(o.path, "/products/")):
			value = v.productID
		case name == "service" || name == "name":
			value = "payments"
		case name == "id":
			value = "0198a5c0-0000-7000-8000-000000000000" // a dead letter, an instance: no one's
		default:
			if p.Value.In == "path" {
				value = "x"
			}
		}
		switch p.Value.In {
		case "path":
			path = strings.ReplaceAll(path, "{"+p.Value.Name+"}", url.PathEscape(value))
		case "query":
			if value != "" {
				q.Set(p.Value.Name, value)
			}
		}
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return path, owned
}

func (v victim) leaked(body []byte) bool {
	for _, m := range v.markers {
		if m != "" && bytes.Contains(body, []byte(m)) {
			return true
		}
	}
	return false
}

// sample makes a value that fits schema s: the first enum value, the
// minimum, the shortest string, an email unique to the run.
func sample(s *openapi3.Schema, seq *int) any {
	if s == nil {
		return "x"
	}
	if len(s.AllOf) > 0 {
		merged := map[string]any{}
		for _, part := range s.AllOf {
			if m, ok := sample(part.Value, seq).(map[string]any); ok {
				for k, v := range m {
					merged[k] = v
				}
			}
		}
		return merged
	}
	if len(s.OneOf) > 0 {
		return sample(s.OneOf[0].Value, seq)
	}
	if len(s.AnyOf) > 0 {
		return sample(s.AnyOf[0].Value, seq)
	}
	if len(s.Enum) > 0 {
		return s.Enum[0]
	}
	switch {
	case s.Type.Is("object") || len(s.Properties) > 0:
		m := map[string]any{}
		for name, p := range s.Properties {
			if len(s.Required) == 0 || slices.Contains(s.Required, name) {
				m[name] = sample(p.Value, seq)
			}
		}
		return m
	case s.Type.Is("array"):
		var item *openapi3.Schema
		if s.Items != nil {
			item = s.Items.Value
		}
		out := make([]any, max(1, int(s.MinItems)))
		for i := range out {
			out[i] = sample(item, seq)
		}
		return out
	case s.Type.Is("integer"), s.Type.Is("number"):
		if s.Min != nil {
			return *s.Min
		}
		return 1
	case s.Type.Is("boolean"):
		return false
	}
	*seq++
	if s.Format == "email" {
		return fmt.Sprintf("probe-%d@example.com", *seq)
	}
	return strings.Repeat("p", max(8, int(s.MinLength)))
}

// tally counts the attacks and what they achieved.
type tally struct {
	routes, attempts, crossUser, escalations int
}

func isOK(status int) bool { return status >= 200 && status < 300 }

// TestAttacksOnOneShop runs the attacks of OWASP's API Security Top 10 that
// need no load on one running shop, through its gateway and around it, and
// then looks for planted secrets in everything it said.
func TestAttacksOnOneShop(t *testing.T) {
	dir := t.TempDir()
	canaryPassword := "canary-" + hex.EncodeToString(randomBytes(t, 12))
	keyFile, keySecrets := canaryKey(t, filepath.Join(dir, "canary-keys"))
	shop := start(t, dir, []string{
		"MICROSHOP_ADMIN_PASSWORD=" + canaryPassword,
		"MICROSHOP_JWT_KEY_FILE=" + keyFile,
		"MICROSHOP_RATE_LIMIT_RPS=100000", "MICROSHOP_RATE_LIMIT_BURST=100000", // these attacks are not about rates
		"LOG_LEVEL=debug", // every line a secret could slip into
	}, "up")
	rec := &recorder{base: http.DefaultTransport}
	c, raw := recordingClients(t, shop.addrs["gateway"], rec)
	catalog := seeded(t, c)
	admin := c.login(adminEmail, canaryPassword)
	aliceID, alice := c.signup("alice@example.com")
	bobID, bob := c.signup("bob@example.com")

	// Alice's real resources: a completed order, its payment and shipment.
	order := placeAndWait(t, c, alice, orderBody(catalog["MUG-001"].ID, 1, goodCard))
	if order["status"] != "COMPLETED" {
		t.Fatalf("alice's order ended %v", order["status"])
	}
	v := victim{userID: aliceID, email: "alice@example.com", orderID: order["id"].(string), productID: catalog["MUG-001"].ID}
	v.markers = []string{v.userID, v.email, v.orderID}
	for _, kind := range []string{"payments", "shipments"} {
		for _, it := range items(t, c.must(200, "GET", "/api/v1/"+kind+"?order_id="+v.orderID, alice, nil)) {
			v.markers = append(v.markers, it["id"].(string))
		}
	}
	if len(v.markers) != 5 {
		t.Fatalf("alice's markers = %v, want her id, email, order, payment and shipment", v.markers)
	}

	t.Run("authorization from the route table", func(t *testing.T) {
		var n tally
		ownerReads := 0
		for _, o := range operations(t) {
			if o.tagged("ops") || o.tagged("docs") || o.tagged("keys") {
				continue // public by design: health, documents, public keys
			}
			path, owned := v.fill(o)
			var body any
			if s := o.body(); s != nil {
				seq := 0
				body = sample(s, &seq)
			}
			bases := map[string]string{}
			if routedByGateway(o.service, o.path) {
				bases["gateway"] = shop.addrs["gateway"]
			}
			internal := o.tagged("internal")
			if o.service != "gateway" && !internal {
				bases["direct"] = shop.addrs[o.service] // around the gateway
			}
			if internal {
				// Internal routes are never reachable through the gateway,
				// whatever the caller sends.
				bases = map[string]string{"gateway": shop.addrs["gateway"]}
			}
			if !o.admin() && !owned && !internal {
				continue // a public or caller-scoped route with nobody else's id in it
			}
			n.routes++
			for where, base := range bases {
				at := &client{t: t, base: base, hc: raw.hc}
				try := func(who, token string, headers ...string) response {
					n.attempts++
					r, err := at.try(strings.ToUpper(o.method), path, token, body, headers...)
					if err != nil {
						t.Fatalf("%s %s %s as %s: %v", where, o.method, path, who, err)
					}
					return r
				}
				for _, forged := range [][]string{nil, forgedIdentity(v.userID)} {
					label := func(who string) string {
						if forged != nil {
							who += " with forged identity headers"
						}
						return fmt.Sprintf("%s %s %s (%s) as %s", where, o.method, path, o.service, who)
					}
					switch {
					case internal && o.service == "gateway":
						// The gateway's own internal route takes
						// service tokens only (TestInternalEndpointsAnswerOnlyServices).
						for who, token := range map[string]string{"bob": bob, "nobody": "", "admin": admin} {
							if r := try(who, token, forged...); r.Status != 401 {
								n.escalations++
								t.Errorf("%s = %d %s, want 401: a service token is required", label(who), r.Status, r.Body)
							}
						}
					case internal:
						for who, token := range map[string]string{"bob": bob, "nobody": "", "admin": admin} {
							if r := try(who, token, forged...); r.Status != 404 {
								n.escalations++
								t.Errorf("%s = %d %s, want 404: internal routes are not routed", label(who), r.Status, r.Body)
							}
						}
					case o.admin():
						if r := try("bob", bob, forged...); r.Status != 403 {
							if isOK(r.Status) {
								n.escalations++
							}
							t.Errorf("%s = %d %s, want 403", label("customer bob"), r.Status, r.Body)
						}
						if r := try("nobody", "", forged...); r.Status != 401 {
							if isOK(r.Status) {
								n.escalations++
							}
							t.Errorf("%s = %d %s, want 401", label("nobody"), r.Status, r.Body)
						}
					case owned:
						r := try("bob", bob, forged...)
						if isOK(r.Status) && (v.leaked(r.Body) || o.method != "GET") {
							n.crossUser++
							t.Errorf("%s = %d %s: another user's data or effect", label("bob"), r.Status, r.Body)
						}
						r = try("nobody", "", forged...)
						if isOK(r.Status) || (o.secured() && r.Status != 401) {
							if isOK(r.Status) {
								n.crossUser++
							}
							t.Errorf("%s = %d %s, want 401", label("nobody"), r.Status, r.Body)
						}
						if forged == nil && o.method == "GET" {
							// The probe can see a leak: the owner's own call
							// shows her data.
							if r := try("alice", alice); !isOK(r.Status) || !v.leaked(r.Body) {
								t.Errorf("%s = %d %s: the owner does not see her own data, so the probe proves nothing", label("alice"), r.Status, r.Body)
							} else {
								ownerReads++
							}
						}
					}
				}
			}
		}
		t.Logf("routes=%d attempts=%d cross_user_successes=%d escalations=%d owner_reads_ok=%d", n.routes, n.attempts, n.crossUser, n.escalations, ownerReads)
		if n.crossUser != 0 || n.escalations != 0 {
			t.Errorf("cross-user successes %d, escalations %d, want 0", n.crossUser, n.escalations)
		}
		if n.routes < 20 || ownerReads < 5 {
			t.Errorf("only %d routes and %d owner reads: is the walk finding the documents?", n.routes, ownerReads)
		}
	})

	snap := takeSnapshot(t, c, admin, []string{aliceID, bobID}, catalog)

	t.Run("protected fields on every write are refused", func(t *testing.T) {
		attempts, accepted, seq := 0, 0, 0
		var probes []string
		for _, o := range operations(t) {
			s := o.body()
			if s == nil || o.tagged("internal") || !routedByGateway(o.service, o.path) {
				continue
			}
			path, _ := v.fill(o)
			token := alice
			if o.admin() {
				token = admin
			}
			for _, field := range protectedFields {
				if _, declared := s.Properties[field]; declared {
					continue // price_cents is a product's to set, by an admin
				}
				b, ok := sample(s, &seq).(map[string]any)
				if !ok {
					continue
				}
				if e, ok := b["email"].(string); ok {
					probes = append(probes, e)
				}
				b[field] = protectedValue(field, bobID)
				attempts++
				r := raw.call(strings.ToUpper(o.method), path, token, b)
				if r.Status != 400 {
					if isOK(r.Status) {
						accepted++
					}
					t.Errorf("%s %s with %q = %d %s, want 400 (unknown field)", o.method, path, field, r.Status, r.Body)
				}
			}
		}
		for _, email := range probes { // no account was made by any of them
			if r := raw.call("POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": "pppppppp"}); r.Status != 401 {
				t.Errorf("login as probe %s = %d: a refused sign-up made an account", email, r.Status)
			}
		}
		t.Logf("protected_field_writes=%d accepted=%d", attempts, accepted)
		if attempts < 10 {
			t.Errorf("only %d protected-field writes: is the walk finding the write routes?", attempts)
		}
	})

	t.Run("bad input on every public write is a 4xx problem", func(t *testing.T) {
		attempts, wrong := 0, 0
		seq := 0
		check := func(what, method, path, token string, body any, want ...int) {
			t.Helper()
			attempts++
			r := raw.call(method, path, token, body)
			ct := r.Header.Get("Content-Type")
			if r.Status < 400 || r.Status >= 500 || ct != "application/problem+json" || (len(want) > 0 && !slices.Contains(want, r.Status)) {
				wrong++
				t.Errorf("%s %s %s = %d (%s) %s, want a 4xx problem %v", what, method, path, r.Status, ct, r.Body, want)
			}
		}
		injections := []any{"' OR '1'='1' --", "'; DROP TABLE users; --", `{"$gt": ""}`, map[string]any{"$ne": nil}, map[string]any{"$where": "sleep(1000)"}}
		for _, o := range operations(t) {
			s := o.body()
			if s == nil || o.tagged("internal") || !routedByGateway(o.service, o.path) {
				continue
			}
			method := strings.ToUpper(o.method)
			path, _ := v.fill(o)
			token := alice
			if o.admin() {
				token = admin
			}
			check("malformed JSON", method, path, token, `{"items": [`, 400)
			check("a JSON array", method, path, token, `[]`, 400)
			check("a JSON string", method, path, token, `"x"`, 400)
			check("two values", method, path, token, `{} {}`, 400)
			base, ok := sample(s, &seq).(map[string]any)
			if !ok {
				continue
			}
			check("unknown field", method, path, token, with(base, "zz_unknown", 1), 400)
			for name, p := range s.Properties {
				ps := p.Value
				switch {
				case ps.Type.Is("integer"), ps.Type.Is("number"):
					check(name+" huge", method, path, token, rawWith(base, name, "1e400"), 400, 422)
					check(name+" past int64", method, path, token, rawWith(base, name, "9223372036854775808"), 400, 422)
					check(name+" negative", method, path, token, with(base, name, -1), 400, 422)
					check(name+" a string", method, path, token, with(base, name, "1"), 400)
				case ps.Type.Is("string") && len(ps.Enum) == 0 && identifierLike(name):
					for _, inj := range injections {
						check(name+" injected", method, path, token, with(base, name, inj), 400, 401, 404, 409, 422)
					}
				case ps.Type.Is("string"):
					check(name+" an operator object", method, path, token, with(base, name, map[string]any{"$ne": nil}), 400)
				case ps.Type.Is("array"):
					check(name+" empty", method, path, token, with(base, name, []any{}), 400, 422)
				}
			}
		}
		// The checkout's own limits, on the real route.
		mug := catalog["MUG-001"].ID
		for _, bad := range []struct {
			name string
			body any
		}{
			{"zero quantity", orderBody(mug, 0, goodCard)},
			{"negative quantity", orderBody(mug, -5, goodCard)},
			{"huge quantity", orderBody(mug, 1<<40, goodCard)},
			{"empty order", map[string]any{"items": []any{}, "payment": map[string]string{"card": goodCard}, "shipping_address": address}},
			{"no items at all", map[string]any{"payment": map[string]string{"card": goodCard}, "shipping_address": address}},
			{"SQL in a product id", orderBody("' OR 1=1 --", 1, goodCard)},
			{"SQL in the card", orderBody(mug, 1, "4242'; DROP TABLE payments;--")},
			{"NoSQL operator as product id", map[string]any{"items": []map[string]any{{"product_id": map[string]any{"$ne": ""}, "quantity": 1}}, "payment": map[string]string{"card": goodCard}, "shipping_address": address}},
		} {
			check(bad.name, "POST", "/api/v1/orders", alice, bad.body, 400, 422)
		}
		// Free text is data, never code: a name made of SQL is stored and
		// read back as it was sent.
		evil := "Robert'); DROP TABLE users;--"
		r := c.must(201, "POST", "/api/v1/users", "", map[string]string{"email": "robert@example.com", "name": evil, "password": "password-robert"})
		if r.obj(t)["name"] != evil {
			t.Errorf("name stored as %v, want %q verbatim", r.obj(t)["name"], evil)
		}
		c.login("alice@example.com", "password-alice@example.com") // the users table is still there
		t.Logf("bad_inputs=%d not_4xx_problem=%d", attempts, wrong)
	})

	t.Run("nothing the attacks sent changed anything", func(t *testing.T) {
		after := takeSnapshot(t, c, admin, []string{aliceID, bobID}, catalog)
		if diff := snap.diff(after); diff != "" {
			t.Errorf("the shop changed under refused requests:\n%s", diff)
		}
	})

	t.Run("no secret in any log line or answer", func(t *testing.T) {
		// Give the shop a moment to write what it logs about the last
		// requests, then stop it so that every line is out.
		shop.stop()
		logs, answers := shop.logs.String(), rec.String()
		secrets := append([]string{canaryPassword}, keySecrets...)
		leaks := 0
		for _, s := range secrets {
			if strings.Contains(logs, s) {
				leaks++
				t.Errorf("a secret (%.12s...) is in the logs", s)
			}
			if strings.Contains(answers, s) {
				leaks++
				t.Errorf("a secret (%.12s...) is in an answer", s)
			}
		}
		lines := strings.Count(logs, "\n")
		t.Logf("secrets=%d log_lines=%d answers_bytes=%d leaks=%d", len(secrets), lines, len(answers), leaks)
		if lines < 100 || len(answers) < 10000 {
			t.Errorf("only %d log lines and %d bytes of answers: the search proves little", lines, len(answers))
		}
	})
}

// identifierLike says whether a string field holds an identifier or a code,
// which injected text can never be; free text (names, addresses) may hold
// anything and is stored as data.
func identifierLike(name string) bool {
	return name == "id" || strings.HasSuffix(name, "_id") || slices.Contains([]string{"email", "card", "currency", "country", "sku", "saga_mode", "mode"}, name)
}

func protectedValue(field, otherUser string) any {
	switch field {
	case "role":
		return "admin"
	case "status":
		return "COMPLETED"
	case "user_id":
		return otherUser
	default:
		return 1
	}
}

// with returns a copy of m with key set to v.
func with(m map[string]any, key string, v any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, x := range m {
		out[k] = x
	}
	out[key] = v
	return out
}

// rawWith returns m as JSON text with key set to the literal number, which
// no Go value could carry.
func rawWith(m map[string]any, key, number string) string {
	b, _ := json.Marshal(with(m, key, "@@NUMBER@@"))
	return strings.Replace(string(b), `"@@NUMBER@@"`, number, 1)
}

// snapshot is what refused requests must leave as it was: the roles of the
// customers, their orders, every product's price and stock.
type snapshot map[string]string

func takeSnapshot(t *testing.T, c *client, admin string, userIDs []string, catalog map[string]product) snapshot {
	t.Helper()
	s := snapshot{}
	var page struct {
		Items []map[string]any
		Next  string
	}
	c.must(200, "GET", "/api/v1/admin/orders?limit=1000", admin, nil).json(t, &page)
	for _, o := range page.Items {
		if slices.Contains(userIDs, o["user_id"].(string)) {
			s["order "+o["id"].(string)] = fmt.Sprintf("%v %v %v %v", o["user_id"], o["status"], o["total_cents"], o["items"])
		}
	}
	var products struct{ Items []map[string]any }
	c.must(200, "GET", "/api/v1/products?limit=1000", "", nil).json(t, &products)
	s["products"] = strconv.Itoa(len(products.Items))
	for _, p := range products.Items {
		s["price "+p["sku"].(string)] = fmt.Sprint(p["price_cents"])
	}
	for sku, p := range catalog {
		s["stock "+sku] = fmt.Sprintf("%+v", stockOf(t, c, p.ID))
	}
	for _, id := range userIDs {
		r := c.must(200, "GET", "/api/v2/users/"+id, admin, nil).obj(t)
		s["user "+id] = fmt.Sprint(r["email"], r["name"])
	}
	return s
}

func (s snapshot) diff(after snapshot) string {
	var out []string
	for k, v := range s {
		if after[k] != v {
			out = append(out, fmt.Sprintf("%s: %q -> %q", k, v, after[k]))
		}
	}
	for k, v := range after {
		if _, ok := s[k]; !ok {
			out = append(out, fmt.Sprintf("%s: new %q", k, v))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// canaryKey writes a fresh Ed25519 signing key to dir/jwt.pem and returns
// its path and the forms of it that must never be seen: the PEM body, and
// the private seed in hex and base64.
func canaryKey(t *testing.T, dir string) (string, []string) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "jwt.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	seed := key.Seed()
	return path, []string{
		base64.StdEncoding.EncodeToString(der),
		hex.EncodeToString(seed),
		base64.StdEncoding.EncodeToString(seed),
		base64.RawURLEncoding.EncodeToString(seed),
		base64.RawURLEncoding.EncodeToString(key), // a JWK's "d" would be the seed; the whole key, too
	}
}

// TestGatewayLimits attacks resource consumption at the gateway of a shop
// with a small rate limit: a burst past the limit, bodies too large (also
// chunked), bodies of the wrong type, headers too large, huge page sizes and
// connections that never finish their headers.
func TestGatewayLimits(t *testing.T) {
	dir := t.TempDir()
	const burst = 20
	shop := start(t, dir, []string{"MICROSHOP_RATE_LIMIT_RPS=0.01", "MICROSHOP_RATE_LIMIT_BURST=" + strconv.Itoa(burst)}, "up")
	gw := shop.addrs["gateway"]
	c := newClient(t, gw).unchecked()
	// The admin's bucket is the seeding's (it runs through the gateway
	// too), so this test acts as customers only.
	anonymous := 0 // requests made from this address without a token
	_, alice := c.signup("alice@example.com")
	_, bob := c.signup("bob@example.com")
	anonymous += 4

	t.Run("bodies: too large, chunked, not JSON", func(t *testing.T) {
		big := `{"items":[],"pad":"` + strings.Repeat("x", 2<<20) + `"}`
		for _, chunked := range []bool{false, true} {
			status, body := rawPost(t, gw+"/api/v1/orders", alice, "application/json", big, chunked)
			if status != 413 || !strings.Contains(body, `"status":413`) {
				t.Errorf("2 MiB order (chunked %v) = %d %s, want a 413 problem", chunked, status, body)
			}
		}
		if status, body := rawPost(t, gw+"/api/v1/orders", alice, "text/plain", `{"items":[]}`, false); status != 415 {
			t.Errorf("a text/plain order = %d %s, want 415", status, body)
		}
		if status, body := rawPost(t, gw+"/api/v1/users", "", "application/x-www-form-urlencoded", "email=a@b.c&name=a&password=password1", true); status != 415 {
			t.Errorf("a form sign-up, chunked = %d %s, want 415", status, body)
		}
		anonymous++
		if got := items(t, c.must(200, "GET", "/api/v1/orders", alice, nil)); len(got) != 0 {
			t.Errorf("alice has orders %v after refused bodies", got)
		}
	})

	t.Run("huge headers, token and page size", func(t *testing.T) {
		if r := c.call("GET", "/api/v1/products", "", nil, "X-Padding", strings.Repeat("h", 100<<10)); r.Status != 431 {
			t.Errorf("100 KiB of headers = %d, want 431", r.Status)
		}
		if r := c.call("GET", "/api/v1/users/me", strings.Repeat("a.", 20<<10)+"a", nil); r.Status != 401 {
			t.Errorf("a 40 KiB token = %d %s, want 401", r.Status, r.Body)
		}
		// Neither counts against the address: the 431 never reached a
		// handler, and a bad token is refused before the rate limit.
		if r := c.call("GET", "/api/v1/orders?limit=100000", alice, nil); r.Status != 422 {
			t.Errorf("a page of 100000 = %d %s, want 422", r.Status, r.Body)
		}
	})

	t.Run("slow headers are cut off", func(t *testing.T) {
		host := strings.TrimPrefix(gw, "http://")
		var wg sync.WaitGroup
		closed := make([]bool, 2)
		for i := range closed {
			wg.Go(func() {
				conn, err := net.Dial("tcp", host)
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				fmt.Fprintf(conn, "GET /api/v1/products HTTP/1.1\r\nHost: %s\r\n", host)
				done := make(chan struct{})
				if i == 1 { // a trickle: one header byte a second
					go func() {
						for {
							select {
							case <-done:
								return
							case <-time.After(time.Second):
								if _, err := conn.Write([]byte("X")); err != nil {
									return
								}
							}
						}
					}()
				}
				_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
				// Cut off: the server closes the connection, with no answer
				// or a 4xx (400, 408), long before this side gives up.
				got, err := io.ReadAll(conn)
				close(done)
				closed[i] = !isTimeout(err) && (len(got) == 0 || strings.HasPrefix(string(got), "HTTP/1.1 4"))
				if !closed[i] {
					t.Logf("connection %d: read %q, %v", i, got, err)
				}
			})
		}
		wg.Wait()
		cut := 0
		for _, ok := range closed {
			if ok {
				cut++
			}
		}
		t.Logf("slow_header_connections=%d cut_off_by_server=%d", len(closed), cut)
		if cut != len(closed) {
			t.Errorf("%d of %d connections that never finished their headers were cut off by the server", cut, len(closed))
		}
	})

	t.Run("a burst past the rate gets 429 with Retry-After", func(t *testing.T) {
		count := func(token string, n int, headers func(i int) []string) (ok, refused int) {
			for i := range n {
				var h []string
				if headers != nil {
					h = headers(i)
				}
				r := c.call("GET", "/api/v1/products?limit=1", token, nil, h...)
				switch r.Status {
				case 200:
					ok++
				case 429:
					refused++
					if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
						t.Errorf("429 with Retry-After %q, want whole seconds", r.Header.Get("Retry-After"))
					}
					if r.Header.Get("Content-Type") != "application/problem+json" {
						t.Errorf("429 as %q, want a problem", r.Header.Get("Content-Type"))
					}
				default:
					t.Fatalf("status %d %s", r.Status, r.Body)
				}
			}
			return ok, refused
		}
		const n = burst + 10
		aliceOK, aliceRefused := count(alice, n, nil)
		bobOK, bobRefused := count(bob, n, nil)
		// A client cannot name a fresh address for itself.
		anonOK, anonRefused := count("", n, func(i int) []string { return []string{"X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i)} })
		t.Logf("burst=%d alice_ok=%d alice_429=%d bob_ok=%d bob_429=%d anonymous_earlier=%d anonymous_ok=%d anonymous_429=%d",
			burst, aliceOK, aliceRefused, bobOK, bobRefused, anonymous, anonOK, anonRefused)
		// Each customer has a bucket of their own: alice's earlier
		// requests (two bodies too large, one not JSON, her orders, a page
		// too large) took 5 of hers, none of bob's. At 0.01/s at most one
		// token came back during the test.
		const aliceEarlier = 5
		if aliceOK < burst-aliceEarlier || aliceOK > burst-aliceEarlier+1 || aliceOK+aliceRefused != n {
			t.Errorf("alice: %d ok of %d, want %d (her burst less her earlier requests), or one more", aliceOK, n, burst-aliceEarlier)
		}
		if bobOK < burst || bobOK > burst+1 || bobOK+bobRefused != n {
			t.Errorf("bob: %d ok of %d, want his whole burst of %d, or one more", bobOK, n, burst)
		}
		if anonOK+anonymous > burst+1 || anonRefused < n-burst {
			t.Errorf("anonymous: %d ok after %d earlier, want at most the burst of %d from one address, forged X-Forwarded-For or not", anonOK, anonymous, burst)
		}
		// Probes are never limited.
		c.must(200, "GET", "/healthz", "", nil)
		c.must(200, "GET", "/ready", "", nil)
	})

	t.Run("development keys are made under the data directory", func(t *testing.T) {
		keys, _ := filepath.Glob(filepath.Join(dir, "keys", "*.pem"))
		if len(keys) == 0 {
			t.Fatalf("no key under %s/keys although none was given", dir)
		}
		for _, k := range keys {
			fi, err := os.Stat(k)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", filepath.Base(k), fi.Mode().Perm())
			}
		}
		readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		var row string
		for line := range strings.SplitSeq(string(readme), "\n") {
			if strings.HasPrefix(line, "| `MICROSHOP_JWT_KEY_FILE`") {
				row = line
			}
		}
		if !strings.Contains(row, "<data dir>/keys/") {
			t.Errorf("README's MICROSHOP_JWT_KEY_FILE row %q does not say the key is made under the data directory", row)
		}
		t.Logf("development_keys=%d", len(keys))
	})
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// rawPost sends body, chunked (its length unknown) when asked, and returns
// the status and answer; a connection the server closed on an oversized
// body still gives its answer.
func rawPost(t *testing.T, url, token, contentType, body string, chunked bool) (int, string) {
	t.Helper()
	var rd io.Reader = strings.NewReader(body)
	if chunked {
		rd = struct{ io.Reader }{rd}
	}
	req, err := http.NewRequest("POST", url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
