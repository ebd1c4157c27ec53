package load

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"
)

// The cards of the simulated payment provider (the public contract names
// them): it approves goodCard and declines declinedCard.
const (
	goodCard     = "4242424242424242"
	declinedCard = "4000000000000002"
)

const (
	// shortQuantity is what a short-stock order asks for: the most one
	// order line may, more than the short-stock product is ever stocked.
	shortQuantity = 1000
	// lowStock is the level under which the generator restocks a product,
	// and restockLevel the level it restocks to. The margin covers the
	// orders accepted but not yet reserved, which a busy shop holds for
	// seconds: they take stock the generator already counted as there.
	lowStock     = 150
	restockLevel = 500
	// followFor bounds how long one order is followed to its end.
	followFor = 2 * time.Minute
	// placeAttempts bounds the tries of one order whose answer was lost or
	// said to try again; every try carries the same Idempotency-Key.
	placeAttempts = 2
)

// orderKind is what an order is meant to test.
type orderKind string

// The kinds of order, and the end each is meant to reach.
const (
	goodOrder     orderKind = "good"        // a good card, stock enough: COMPLETED
	declinedOrder orderKind = "declined"    // the declined card: CANCELLED
	shortOrder    orderKind = "short_stock" // more than the stock left: CANCELLED
)

// step is one arrival: a customer browses, checks stock or places an order.
func (g *Generator) step(ctx context.Context, wg *sync.WaitGroup) {
	a, err := g.shopper(ctx)
	if err != nil {
		return // counted where it failed
	}
	m := g.opt.Mix
	switch x := rand.Float64() * (m.Browse + m.Stock + m.Order + m.Legacy); {
	case x < m.Browse:
		g.browse(ctx, a)
	case x < m.Browse+m.Stock:
		g.checkStock(ctx, a, g.products.any())
	case x < m.Browse+m.Stock+m.Order:
		g.order(ctx, a, wg)
	default:
		g.oldShop(ctx, a)
	}
}

// oldShop is a customer of the old shop: they read their profile or their
// orders through the monolith's API, wherever the gateway's facade sends
// those routes now.
func (g *Generator) oldShop(ctx context.Context, a *account) {
	r := request{method: http.MethodGet, op: "legacy_profile", path: "/profile"}
	if rand.IntN(2) == 0 {
		r.op, r.path = "legacy_orders", "/orders"
	}
	_, _ = g.call(ctx, a, r, nil)
}

// browse lists the catalog or views a product, in the v1 or v2 shape.
func (g *Generator) browse(ctx context.Context, a *account) {
	id := url.PathEscape(g.products.any().id)
	r := request{method: http.MethodGet}
	switch rand.IntN(3) {
	case 0:
		r.op, r.path = "browse_catalog", "/api/v1/products"
	case 1:
		r.op, r.path = "view_product", "/api/v1/products/"+id
	default:
		r.op, r.path = "view_product_v2", "/api/v2/products/"+id
	}
	_, _ = g.call(ctx, a, r, nil)
}

// checkStock reads p's stock, and restocks it when it runs low.
func (g *Generator) checkStock(ctx context.Context, a *account, p *product) {
	level, err := g.stockOf(ctx, a, p)
	if err != nil {
		return
	}
	p.available.Store(level)
	g.restock(ctx, p)
}

// restock tops p up when it was last seen low, if the generator has an
// admin; one restock of a product at a time.
func (g *Generator) restock(ctx context.Context, p *product) {
	if g.admin == nil || p.available.Load() >= lowStock || !p.restocking.CompareAndSwap(false, true) {
		return
	}
	defer p.restocking.Store(false)
	g.setStock(ctx, p, g.levelFor(p))
}

// levelFor is the level p is restocked to: never, for the short-stock
// product, as much as a short-stock order asks for.
func (g *Generator) levelFor(p *product) int64 {
	if p == g.products.short {
		return min(restockLevel, shortQuantity-1)
	}
	return restockLevel
}

// setStock sets p's available stock to level, as the admin.
func (g *Generator) setStock(ctx context.Context, p *product, level int64) {
	var got struct {
		Available int64 `json:"available"`
	}
	r := request{op: "restock", method: http.MethodPut, path: "/api/v1/inventory/" + url.PathEscape(p.id),
		body: map[string]int64{"available": level}}
	if _, err := g.call(ctx, g.admin, r, &got); err != nil {
		return
	}
	p.available.Store(got.Available)
	g.stats.restocks.Add(1)
}

// line is an order line, as the orders API takes it.
type line struct {
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
}

// checkout is the body of POST /api/v1/orders.
type checkout struct {
	Items   []line            `json:"items"`
	Payment map[string]string `json:"payment"`
	Address map[string]string `json:"shipping_address"`
}

// placed is an order the shop accepted, and what the run follows it for.
type placed struct {
	id       string
	kind     orderKind
	product  *product
	by       *account
	accepted time.Time
}

// order places an order of a kind drawn from the mix, and follows it.
func (g *Generator) order(ctx context.Context, a *account, wg *sync.WaitGroup) {
	kind, p, qty, card := g.draw()
	body := checkout{
		Items:   []line{{ProductID: p.id, Quantity: qty}},
		Payment: map[string]string{"card": card},
		Address: addresses[rand.IntN(len(addresses))].to(a.name),
	}
	id, err := g.place(ctx, a, body)
	if err != nil {
		return
	}
	g.stats.placed.Add(1)
	if kind == goodOrder {
		// What it will take, counted now: a run of nothing but orders
		// checks no stock, and would otherwise find it gone, its good
		// orders cancelled for short stock.
		p.available.Add(-int64(qty))
		g.restock(ctx, p)
	}
	g.follow(ctx, placed{id: id, kind: kind, product: p, by: a, accepted: time.Now()}, wg)
}

// draw picks what the next order is: its kind, product, quantity and card.
func (g *Generator) draw() (orderKind, *product, int, string) {
	m := g.opt.Mix
	regular := g.products.regular[rand.IntN(len(g.products.regular))]
	switch x := rand.Float64(); {
	case x < m.Declined:
		return declinedOrder, regular, 1, declinedCard
	case x < m.Declined+m.ShortStock:
		return shortOrder, g.products.short, shortQuantity, goodCard
	default:
		return goodOrder, regular, 1 + rand.IntN(3), goodCard
	}
}

// place sends the order with an Idempotency-Key, and once more with the same
// key when the first answer was lost or said nothing was done: the key
// makes the retry safe, so an unknown outcome is resolved, not guessed.
func (g *Generator) place(ctx context.Context, a *account, body checkout) (string, error) {
	r := request{op: "place_order", method: http.MethodPost, path: "/api/v1/orders", body: body,
		header: http.Header{"Idempotency-Key": {uuid.NewString()}}}
	var err error
	for try := range placeAttempts {
		if try > 0 {
			select {
			case <-ctx.Done():
				return "", err
			case <-time.After(time.Duration(100+rand.IntN(200)) * time.Millisecond):
			}
		}
		var o struct {
			ID string `json:"id"`
		}
		if _, err = g.call(ctx, a, r, &o); err == nil {
			if o.ID == "" {
				return "", fmt.Errorf("placing an order: %w: no id", errBadAnswer)
			}
			return o.ID, nil
		}
		if !retryable(err) || ctx.Err() != nil {
			return "", err
		}
	}
	return "", err
}

// retryable says whether a failed placement may have done nothing, or
// something unknown, that the same key may safely settle.
func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.status == http.StatusConflict || se.status == http.StatusServiceUnavailable
	}
	return !errors.Is(err, errBadAnswer)
}

// follow watches an accepted order in the background until it ends, unless
// as many orders as the generator follows at once are followed already.
func (g *Generator) follow(ctx context.Context, o placed, wg *sync.WaitGroup) {
	select {
	case g.followers <- struct{}{}:
	default:
		g.stats.outcome(o.kind, "unfollowed")
		return
	}
	wg.Go(func() {
		defer func() { <-g.followers }()
		g.await(ctx, o)
	})
}

// orderState is what a follower reads of an order.
type orderState struct {
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// await polls o, with a growing pause between polls, until it ends
// COMPLETED or CANCELLED, followFor passes, or ctx ends; then counts it.
func (g *Generator) await(ctx context.Context, o placed) {
	ctx, cancel := context.WithTimeout(ctx, followFor)
	defer cancel()
	// The checkout's duration comes from the order's own times, so polling
	// more often would measure nothing better: it would only take capacity
	// from the sagas it waits for.
	pause := &backoff.ExponentialBackOff{InitialInterval: 250 * time.Millisecond, RandomizationFactor: 0.2, Multiplier: 1.6, MaxInterval: 3 * time.Second}
	r := request{op: "poll_order", method: http.MethodGet, path: "/api/v1/orders/" + url.PathEscape(o.id)}
	for {
		t := time.NewTimer(pause.NextBackOff())
		select {
		case <-ctx.Done():
			t.Stop()
			g.stats.outcome(o.kind, "unfinished")
			return
		case <-t.C:
		}
		var s orderState
		if _, err := g.call(ctx, o.by, r, &s); err != nil {
			continue // counted; the next poll may see it
		}
		if s.Status == "COMPLETED" || s.Status == "CANCELLED" {
			g.ended(ctx, o, s)
			return
		}
	}
}

// ended counts how o ended and how long its checkout took. The duration is
// the order's own, from its creation (just before the shop accepted it) to
// its last change, so the pause between polls does not inflate it; a
// client-side measure stands in when those times are missing.
func (g *Generator) ended(ctx context.Context, o placed, s orderState) {
	took := s.UpdatedAt.Sub(s.CreatedAt)
	if s.CreatedAt.IsZero() || s.UpdatedAt.IsZero() || took < 0 {
		took = time.Since(o.accepted)
	}
	g.latency.record("checkout", took)
	g.stats.outcome(o.kind, s.Status)
	if s.Status == "COMPLETED" {
		g.stats.completed.Add(1)
	} else {
		g.stats.cancelled.Add(1)
	}
	if (o.kind == goodOrder) != (s.Status == "COMPLETED") {
		g.stats.unexpected.Add(1)
	}
	if o.kind == goodOrder && s.Status == "CANCELLED" {
		// Perhaps its product ran out: look, and restock it if so.
		g.checkStock(ctx, o.by, o.product)
	}
}

// address is a shipping address without the recipient's name.
type address struct{ line1, city, postalCode, country string }

func (a address) to(name string) map[string]string {
	return map[string]string{"name": name, "line1": a.line1, "city": a.city, "postal_code": a.postalCode, "country": a.country}
}

var addresses = []address{
	{"12 St James's Square", "London", "SW1Y 4JH", "GB"},
	{"1600 Amphitheatre Parkway", "Mountain View", "94043", "US"},
	{"Unter den Linden 77", "Berlin", "10117", "DE"},
	{"5 Rue de Rivoli", "Paris", "75001", "FR"},
	{"Keizersgracht 123", "Amsterdam", "1015 CJ", "NL"},
}
