package load

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// initialCustomers is how many customers sign up before the first arrival;
// the rest of the pool joins as the run goes on, the way a shop's crowd
// grows, so that a large pool does not delay the start by a bcrypt per
// customer, nor fill the first seconds with nothing but sign-ups.
const initialCustomers = 10

// joinChance is the chance that an arrival, while the pool has room, is a
// new customer rather than a returning one.
const joinChance = 0.1

// account is one customer (or the admin) and their current access token.
type account struct {
	email, password, name string

	mu      sync.Mutex
	token   string
	renewAt time.Time
	fixed   bool // the token was given: never renewed
}

// forget drops token, refused by the shop, so that the next call signs in
// again (keys rotate; a token can be revoked).
func (a *account) forget(token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token == token && !a.fixed {
		a.token = ""
	}
}

// session returns a's access token, signing in when there is none or it is
// near its expiry.
func (g *Generator) session(ctx context.Context, a *account) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fixed || (a.token != "" && time.Now().Before(a.renewAt)) {
		return a.token, nil
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	r := request{op: "login", method: http.MethodPost, path: "/api/v1/auth/login",
		body: map[string]string{"email": a.email, "password": a.password}}
	if _, err := g.do(ctx, r, &tok); err != nil {
		return "", fmt.Errorf("signing in %s: %w", a.email, err)
	}
	if tok.AccessToken == "" {
		return "", fmt.Errorf("signing in %s: %w: no access token", a.email, errBadAnswer)
	}
	life := time.Duration(tok.ExpiresIn) * time.Second
	if life <= 0 {
		life = time.Minute
	}
	a.token, a.renewAt = tok.AccessToken, time.Now().Add(life*4/5)
	return a.token, nil
}

// call sends r as a (signing in first when needed), as do does.
func (g *Generator) call(ctx context.Context, a *account, r request, out any) (answer, error) {
	token, err := g.session(ctx, a)
	if err != nil {
		return answer{}, err
	}
	r.token = token
	ans, err := g.do(ctx, r, out)
	if se := (*statusError)(nil); errors.As(err, &se) && se.status == http.StatusUnauthorized {
		a.forget(token)
	}
	return ans, err
}

// pool is the customers a run shops as; it grows to its size as new
// customers arrive.
type pool struct {
	size int

	mu      sync.Mutex
	ready   []*account
	joining int // customers being signed up now
	seq     int // numbers this run's customers
}

// take picks the customer for an arrival: now and then (joinChance) a new
// one, numbered n, while the pool has room; otherwise one already signed up,
// at random.
func (p *pool) take() (a *account, n int, join bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ready) == 0 || rand.Float64() < joinChance {
		if n, ok := p.reserveLocked(); ok {
			return nil, n, true
		}
	}
	if len(p.ready) == 0 {
		return nil, 0, false // the pool is full of customers being signed up: no one to shop as yet
	}
	return p.ready[rand.IntN(len(p.ready))], 0, false
}

// reserve makes room for a new customer, numbered n, unless the pool is
// full or will be once those being signed up have joined.
func (p *pool) reserve() (n int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reserveLocked()
}

func (p *pool) reserveLocked() (n int, ok bool) {
	if len(p.ready)+p.joining >= p.size {
		return 0, false
	}
	p.joining++
	p.seq++
	return p.seq, true
}

// joined ends a sign-up that take or reserve started: a joins the pool, or,
// when it is nil, its room is free again.
func (p *pool) joined(a *account) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.joining--
	if a != nil {
		p.ready = append(p.ready, a)
	}
}

func (p *pool) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ready)
}

// shopper returns the customer an arrival shops as, signing a new one up
// when the arrival is one.
func (g *Generator) shopper(ctx context.Context) (*account, error) {
	a, n, join := g.pool.take()
	if !join {
		if a == nil {
			return nil, errors.New("no customer is signed up yet")
		}
		return a, nil
	}
	a, err := g.signUp(ctx, n)
	g.pool.joined(a)
	return a, err
}

// signUp creates customer n of this run and signs them in.
func (g *Generator) signUp(ctx context.Context, n int) (*account, error) {
	secret := make([]byte, 12)
	_, _ = crand.Read(secret)
	a := &account{
		email:    fmt.Sprintf("load-%s-%d@example.com", g.runID, n),
		password: hex.EncodeToString(secret), // known to this run only
		name:     fmt.Sprintf("%s Shopper %d", firstNames[n%len(firstNames)], n),
	}
	r := request{op: "sign_up", method: http.MethodPost, path: "/api/v1/users",
		body: map[string]string{"email": a.email, "name": a.name, "password": a.password}}
	if _, err := g.do(ctx, r, nil); err != nil {
		if se := (*statusError)(nil); !errors.As(err, &se) || se.status != http.StatusConflict {
			return nil, fmt.Errorf("signing up customer %d: %w", n, err)
		}
		// Taken already: by this customer, whose first answer was lost.
	}
	if _, err := g.session(ctx, a); err != nil {
		return nil, err
	}
	g.stats.customers.Add(1)
	return a, nil
}

var firstNames = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Radia", "Leslie", "Frances", "Dennis"}

// product is a product the shoppers buy and what they last saw of its stock.
type product struct {
	id         string
	available  atomic.Int64
	restocking atomic.Bool
}

// catalog is the products of the shop that have stock records.
type catalog struct {
	all     []*product
	regular []*product // what good and declined orders buy
	short   *product   // what short-stock orders ask too much of
}

func (c *catalog) any() *product { return c.all[rand.IntN(len(c.all))] }

// prepare signs the admin in, learns the catalog and its stock, and signs
// the first customers up: everything a shopper needs before arriving.
func (g *Generator) prepare(ctx context.Context) error {
	if g.admin != nil {
		if _, err := g.session(ctx, g.admin); err != nil {
			return fmt.Errorf("signing in the admin: %w", err)
		}
	}
	if err := g.learnCatalog(ctx); err != nil {
		return err
	}
	// Stock starts high enough for good orders, and, for the short-stock
	// product, lower than a short-stock order asks for.
	if g.admin != nil {
		for _, p := range g.products.regular {
			g.restock(ctx, p)
		}
		if s := g.products.short; s.available.Load() >= shortQuantity {
			g.setStock(ctx, s, g.levelFor(s))
		}
	}
	n := min(initialCustomers, g.opt.Customers)
	errs := make(chan error, n)
	for range n {
		num, _ := g.pool.reserve()
		go func() {
			a, err := g.signUp(ctx, num)
			g.pool.joined(a)
			errs <- err
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if g.pool.len() == 0 {
		return fmt.Errorf("signing up customers: %w", first)
	}
	return nil
}

// learnCatalog reads the products and their stock. A product inventory does
// not know yet (its creation is still on its way as an event) is left out.
func (g *Generator) learnCatalog(ctx context.Context) error {
	var list struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if _, err := g.do(ctx, request{op: "browse_catalog", method: http.MethodGet, path: "/api/v1/products"}, &list); err != nil {
		return fmt.Errorf("reading the catalog: %w", err)
	}
	var c catalog
	for _, it := range list.Items {
		p := &product{id: it.ID}
		level, err := g.stockOf(ctx, nil, p)
		if se := (*statusError)(nil); errors.As(err, &se) && se.status == http.StatusNotFound {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading the stock of product %s: %w", p.id, err)
		}
		p.available.Store(level)
		c.all = append(c.all, p)
		if c.short == nil || level < c.short.available.Load() {
			c.short = p
		}
	}
	if len(c.all) == 0 {
		return fmt.Errorf("the catalog at %s has no product with stock to buy (%d products listed)", g.target, len(list.Items))
	}
	for _, p := range c.all {
		if p != c.short {
			c.regular = append(c.regular, p)
		}
	}
	if len(c.regular) == 0 {
		c.regular = c.all
	}
	g.products = c
	return nil
}

// stockOf reads the stock level of p, as a (anonymously when nil).
func (g *Generator) stockOf(ctx context.Context, a *account, p *product) (int64, error) {
	var level struct {
		Available *int64 `json:"available"`
	}
	r := request{op: "check_stock", method: http.MethodGet, path: "/api/v1/inventory/" + url.PathEscape(p.id)}
	var err error
	if a != nil {
		_, err = g.call(ctx, a, r, &level)
	} else {
		_, err = g.do(ctx, r, &level)
	}
	if err != nil {
		return 0, err
	}
	if level.Available == nil {
		return 0, fmt.Errorf("%w: no available level", errBadAnswer)
	}
	return *level.Available, nil
}
