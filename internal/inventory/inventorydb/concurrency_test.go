package inventorydb_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/inventory"
	"github.com/microshop/microshop/internal/inventory/inventorydb"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// The tests below race many units of work on the same rows. SQLite runs one
// writer at a time; PostgreSQL and MariaDB run them at once, at READ
// COMMITTED, and are where a read-modify-write without a lock shows up as
// oversold stock, a double move, or a deadlock.

// outcomes counts what racing callers were told.
type outcomes struct {
	mu         sync.Mutex
	ok         int
	conflict   int
	unexpected []error
}

// add counts err: nil, a refusal (fail.Conflict), or anything else.
func (o *outcomes) add(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case err == nil:
		o.ok++
	case fail.Is(err, fail.Conflict):
		o.conflict++
	default:
		o.unexpected = append(o.unexpected, err)
	}
}

// race runs fn(i) for i in [0, n) at once and waits for every call.
func race(n int, fn func(i int)) {
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// TestConcurrentReservesOfOneOrder races sixteen reserves of one order: one
// creates the reservation and moves stock; every other is answered with it.
func TestConcurrentReservesOfOneOrder(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		f := newFixture(t, d) // p1 10, p2 5
		const callers = 16
		items := []inventory.Item{{ProductID: "p2", Quantity: 2}, {ProductID: "p1", Quantity: 3}}
		var (
			mu      sync.Mutex
			created int
			o       outcomes
		)
		race(callers, func(int) {
			r, c, err := f.reserve("o1", items...)
			if err == nil && (r.Status != inventory.Reserved || len(r.Items) != 2) {
				err = fmt.Errorf("answered %+v, want RESERVED with both items", r)
			}
			o.add(err)
			if c {
				mu.Lock()
				created++
				mu.Unlock()
			}
		})
		t.Logf("%s: callers=%d created=%d answered=%d refused=%d unexpected=%d",
			d, callers, created, o.ok, o.conflict, len(o.unexpected))
		if len(o.unexpected) > 0 {
			t.Fatalf("unexpected errors: %v", o.unexpected)
		}
		if created != 1 || o.ok != callers {
			t.Errorf("got %d created and %d answered, want 1 created and all %d answered", created, o.ok, callers)
		}
		f.wantStock("p1", 7, 3, 0)
		f.wantStock("p2", 3, 2, 0)
	})
}

// TestConcurrentReservationsAcrossProducts races sixty orders of one to
// three lines, over four products, each order listing its products in a
// random order: nothing may be oversold, every unit reserved must belong to
// a RESERVED reservation, and no two reserves may deadlock.
func TestConcurrentReservationsAcrossProducts(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		f := newFixture(t, d)
		products := []string{"p1", "p2", "p3", "p4"}
		const initial, orders = 20, 60
		for _, p := range products {
			f.set(p, initial)
		}
		seed := time.Now().UnixNano()
		rng := rand.New(rand.NewPCG(uint64(seed), 0))
		want := make([][]inventory.Item, orders)
		for i := range want {
			for _, j := range rng.Perm(len(products))[:1+rng.IntN(3)] {
				want[i] = append(want[i], inventory.Item{ProductID: products[j], Quantity: 1 + rng.Int64N(5)})
			}
		}
		var o outcomes
		race(orders, func(i int) {
			_, _, err := f.reserve(fmt.Sprintf("o%02d", i), want[i]...)
			o.add(err)
		})
		if len(o.unexpected) > 0 {
			t.Fatalf("seed %d: unexpected errors: %v", seed, o.unexpected)
		}

		// Every unit reserved is held by exactly one RESERVED reservation.
		all, err := f.store.ListReservations(f.ctx, "", 1000)
		if err != nil {
			t.Fatalf("ListReservations: %v", err)
		}
		held := map[string]int64{}
		count := map[inventory.Status]int{}
		for _, r := range all {
			count[r.Status]++
			if r.Status == inventory.Reserved {
				for _, it := range r.Items {
					held[it.ProductID] += it.Quantity
				}
			}
		}
		t.Logf("%s: orders=%d reserved=%d rejected=%d recorded=%v unexpected=0 seed=%d",
			d, orders, o.ok, o.conflict, count, seed)
		if len(all) != orders || count[inventory.Reserved] != o.ok || count[inventory.Rejected] != o.conflict {
			t.Errorf("seed %d: recorded %v over %d reservations, want %d RESERVED and %d REJECTED over %d",
				seed, count, len(all), o.ok, o.conflict, orders)
		}
		for _, p := range products {
			f.wantStock(p, initial-held[p], held[p], 0)
		}
	})
}

// TestConcurrentCommitsAndReleases races four commits and four releases of
// each of ten reservations: each ends either COMMITTED or RELEASED, once,
// and its units are sold or given back exactly once.
func TestConcurrentCommitsAndReleases(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		f := newFixture(t, d)
		const orders, each = 10, 4
		f.set("p1", 100)
		f.set("p2", 100)
		for i := range orders {
			if _, _, err := f.reserve(fmt.Sprintf("o%02d", i),
				inventory.Item{ProductID: "p1", Quantity: 1}, inventory.Item{ProductID: "p2", Quantity: 2}); err != nil {
				t.Fatalf("Reserve: %v", err)
			}
		}
		var (
			o         outcomes
			mu        sync.Mutex
			mismatch  []string
			answerOf  = map[string]map[inventory.Status]int{} // order -> status answered -> count
			committed = make([]bool, orders)
		)
		race(orders*each*2, func(i int) {
			orderID := fmt.Sprintf("o%02d", i%orders)
			var (
				r   inventory.Reservation
				err error
			)
			if i/orders%2 == 0 {
				r, err = f.store.Commit(f.ctx, orderID, f.at)
			} else {
				r, err = f.store.Release(f.ctx, orderID, f.at)
			}
			o.add(err)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if answerOf[orderID] == nil {
				answerOf[orderID] = map[inventory.Status]int{}
			}
			answerOf[orderID][r.Status]++
		})
		if len(o.unexpected) > 0 {
			t.Fatalf("unexpected errors: %v", o.unexpected)
		}
		var nCommitted int
		for i := range orders {
			orderID := fmt.Sprintf("o%02d", i)
			r, err := f.store.Reservation(f.ctx, orderID)
			if err != nil {
				t.Fatalf("Reservation(%s): %v", orderID, err)
			}
			committed[i] = r.Status == inventory.Committed
			if committed[i] {
				nCommitted++
			}
			// Every successful call was answered with the final status.
			if len(answerOf[orderID]) != 1 || answerOf[orderID][r.Status] == 0 {
				mismatch = append(mismatch, fmt.Sprintf("%s ended %s, callers were told %v", orderID, r.Status, answerOf[orderID]))
			}
		}
		t.Logf("%s: calls=%d answered=%d refused=%d committed=%d released=%d unexpected=0",
			d, orders*each*2, o.ok, o.conflict, nCommitted, orders-nCommitted)
		if len(mismatch) > 0 {
			t.Errorf("answers disagree with the outcome: %v", mismatch)
		}
		if o.ok+o.conflict != orders*each*2 {
			t.Errorf("got %d answers, want %d", o.ok+o.conflict, orders*each*2)
		}
		f.wantStock("p1", 100-int64(nCommitted), 0, int64(nCommitted))
		f.wantStock("p2", 100-2*int64(nCommitted), 0, 2*int64(nCommitted))
	})
}

// TestReserveRacingRelease races, for each of twenty orders, two reserves
// (a duplicate delivery) with two releases (a cancellation overtaking the
// reserve): every order ends RELEASED, whichever came first, and no stock
// stays held.
func TestReserveRacingRelease(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		f := newFixture(t, d)
		const orders = 20
		f.set("p1", 100) // enough for all: a reserve is refused only for its release
		var reserves, releases outcomes
		race(orders*4, func(i int) {
			orderID := fmt.Sprintf("o%02d", i%orders)
			if i < 2*orders {
				_, _, err := f.reserve(orderID, inventory.Item{ProductID: "p1", Quantity: 1})
				reserves.add(err)
				return
			}
			_, err := f.store.Release(f.ctx, orderID, f.at)
			releases.add(err)
		})
		if len(reserves.unexpected)+len(releases.unexpected) > 0 {
			t.Fatalf("unexpected errors: %v %v", reserves.unexpected, releases.unexpected)
		}
		t.Logf("%s: orders=%d reserves_answered=%d reserves_refused=%d releases_answered=%d unexpected=0",
			d, orders, reserves.ok, reserves.conflict, releases.ok)
		if releases.ok != 2*orders || reserves.ok+reserves.conflict != 2*orders {
			t.Errorf("got %d reserves and %d releases answered, want %d of each", reserves.ok+reserves.conflict, releases.ok, 2*orders)
		}
		for i := range orders {
			f.wantStatus(fmt.Sprintf("o%02d", i), inventory.Released)
		}
		f.wantStock("p1", 100, 0, 0)
	})
}

// TestConcurrentRestocks races sixteen restocks of one product with sixteen
// reserves of it: every call is answered, and the stock adds up at the end.
func TestConcurrentRestocks(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		f := newFixture(t, d)
		const callers = 16
		var restocks, reserves outcomes
		race(callers*2, func(i int) {
			if i < callers {
				_, err := f.store.SetAvailable(f.ctx, "p9", int64(10+i), f.at)
				restocks.add(err)
				return
			}
			_, _, err := f.reserve(fmt.Sprintf("o%02d", i), inventory.Item{ProductID: "p9", Quantity: 1})
			reserves.add(err)
		})
		if len(restocks.unexpected)+len(reserves.unexpected) > 0 {
			t.Fatalf("unexpected errors: %v %v", restocks.unexpected, reserves.unexpected)
		}
		st, err := f.store.Stock(f.ctx, "p9")
		if err != nil {
			t.Fatalf("Stock: %v", err)
		}
		t.Logf("%s: restocks=%d reserved=%d rejected=%d stock=%+v unexpected=0", d, restocks.ok, reserves.ok, reserves.conflict, st)
		// Available is the last level set, less the reserves after it: what
		// must hold is that every reserve answered holds its unit.
		if restocks.ok != callers || st.Reserved != int64(reserves.ok) {
			t.Errorf("got %d restocks answered and stock %+v after %d reserves; want all %d restocks and every reserve's unit held",
				restocks.ok, st, reserves.ok, callers)
		}
		f.wantBalanced()
	})
}

// TestConcurrentMergeIntent applies the two events of each of twenty
// choreographed orders (its items, its payment) at once, each twice: every
// intent ends with both parts.
func TestConcurrentMergeIntent(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		f := newFixture(t, d)
		const orders = 20
		items := []inventory.Item{{ProductID: "p1", Quantity: 2}}
		var o outcomes
		race(orders*4, func(i int) {
			in := inventory.Intent{OrderID: fmt.Sprintf("o%02d", i%orders), Saga: inventory.Choreography}
			if i/orders%2 == 0 {
				in.Items = items
			} else {
				in.Paid = true
			}
			_, err := f.store.MergeIntent(f.ctx, in, f.at)
			o.add(err)
		})
		if len(o.unexpected) > 0 {
			t.Fatalf("unexpected errors: %v", o.unexpected)
		}
		whole := 0
		for i := range orders {
			// A merge that brings nothing new answers the intent as it stands.
			got, err := f.store.MergeIntent(f.ctx, inventory.Intent{OrderID: fmt.Sprintf("o%02d", i), Saga: inventory.Choreography}, f.at)
			if err != nil {
				t.Fatalf("MergeIntent: %v", err)
			}
			if got.Paid && len(got.Items) == 1 && got.Items[0] == items[0] {
				whole++
			} else {
				t.Errorf("intent of o%02d: got %+v, want paid with its items", i, got)
			}
		}
		t.Logf("%s: merges=%d whole_intents=%d/%d unexpected=0", d, orders*4, whole, orders)
	})
}

// TestMigrationsRoundTrip applies the migrations, rolls them all back and
// applies them again, on every dialect.
func TestMigrationsRoundTrip(t *testing.T) {
	sqldbtest.MigrationsRoundTrip(t, inventorydb.Migrations)
}
