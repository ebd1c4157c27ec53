package legacydb_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/legacy"
	"github.com/microshop/microshop/internal/legacy/legacydb"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// open opens a migrated legacy database on dialect d, and a store over it.
func open(t *testing.T, d sqldb.Dialect) (*legacydb.Store, *sqldb.DB) {
	t.Helper()
	db := sqldbtest.OpenOn(t, d, "legacy", legacydb.Migrations)
	return legacydb.New(db), db
}

// newOrder is an order of customer with two lines, placed at placed.
func newOrder(customer string, placed time.Time) legacy.Order {
	return legacy.Order{
		No: uuid.Must(uuid.NewV7()).String(), CustomerID: customer, Status: legacy.Confirmed,
		Lines: []legacy.Line{
			{ProductID: "p-1", Qty: 2, UnitPriceCents: 500},
			{ProductID: "p-2", Qty: 1, UnitPriceCents: 1250},
		},
		TotalCents: 2250, Currency: "USD", PlacedAt: placed.UTC(), CardLast4: "4242",
		DeliverTo: legacy.Address{Name: "Ada", Line1: "1 Main St", City: "London", PostalCode: "N1", Country: "GB"},
	}
}

func TestMigrationsRoundTripOnEveryDialect(t *testing.T) {
	sqldbtest.MigrationsRoundTrip(t, legacydb.Migrations)
}

func TestEnrolKeepsTheFirstRecord(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		store, _ := open(t, d)
		if _, err := store.Customer(ctx, "u-1"); !fail.Is(err, fail.NotFound) {
			t.Fatalf("Customer before enrolment = %v, want not found", err)
		}
		first := legacy.Customer{ID: "u-1", Name: "Ada", Email: "ada@example.com"}
		got, err := store.Enrol(ctx, first)
		if err != nil || got != first {
			t.Fatalf("Enrol = %+v, %v; want %+v", got, err, first)
		}
		got, err = store.Enrol(ctx, legacy.Customer{ID: "u-1", Name: "Other", Email: "other@example.com"})
		if err != nil || got != first {
			t.Errorf("second Enrol = %+v, %v; want the first record %+v", got, err, first)
		}
		if got, err := store.Customer(ctx, "u-1"); err != nil || got != first {
			t.Errorf("Customer = %+v, %v; want %+v", got, err, first)
		}
	})
}

// TestConcurrentEnrolmentsMakeOneCustomer races first visits of one
// customer: none fails, all answer the same record, and one row is stored.
func TestConcurrentEnrolmentsMakeOneCustomer(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		store, _ := open(t, d)
		const n = 12
		var wg sync.WaitGroup
		got := make([]legacy.Customer, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				got[i], errs[i] = store.Enrol(ctx, legacy.Customer{ID: "u-1", Name: fmt.Sprintf("Ada %d", i), Email: "ada@example.com"})
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("Enrol %d: %v", i, errs[i])
			}
			if got[i] != got[0] {
				t.Errorf("Enrol %d = %+v, want the one stored record %+v", i, got[i], got[0])
			}
		}
		st, err := store.Stats(ctx)
		if err != nil || st.Customers != 1 {
			t.Errorf("Stats = %+v, %v; want 1 customer", st, err)
		}
	})
}

func TestRename(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		store, _ := open(t, d)
		if _, err := store.Rename(ctx, "u-1", "Ada"); !fail.Is(err, fail.NotFound) {
			t.Fatalf("Rename of no customer = %v, want not found", err)
		}
		if _, err := store.Enrol(ctx, legacy.Customer{ID: "u-1", Name: "Ada", Email: "ada@example.com"}); err != nil {
			t.Fatal(err)
		}
		got, err := store.Rename(ctx, "u-1", "Ada Lovelace")
		want := legacy.Customer{ID: "u-1", Name: "Ada Lovelace", Email: "ada@example.com"}
		if err != nil || got != want {
			t.Fatalf("Rename = %+v, %v; want %+v", got, err, want)
		}
		if got, err := store.Customer(ctx, "u-1"); err != nil || got != want {
			t.Errorf("Customer after Rename = %+v, %v; want %+v", got, err, want)
		}
	})
}

func TestPlaceOrderThenReadBack(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		store, _ := open(t, d)
		base := time.Date(2025, 3, 1, 12, 30, 45, 123456789, time.UTC)
		var placed []legacy.Order
		for i := range 3 {
			o := newOrder("u-1", base.Add(time.Duration(i)*time.Minute))
			o.Lines = o.Lines[:1+i%2]
			if err := store.PlaceOrder(ctx, o); err != nil {
				t.Fatalf("PlaceOrder %d: %v", i, err)
			}
			placed = append(placed, o)
		}
		other := newOrder("u-2", base.Add(time.Hour))
		if err := store.PlaceOrder(ctx, other); err != nil {
			t.Fatal(err)
		}

		got, err := store.Order(ctx, placed[1].No)
		if err != nil {
			t.Fatal(err)
		}
		wantOrder(t, got, placed[1])
		if _, err := store.Order(ctx, uuid.Must(uuid.NewV7()).String()); !fail.Is(err, fail.NotFound) {
			t.Errorf("Order(unknown) = %v, want not found", err)
		}

		list, err := store.OrdersOf(ctx, "u-1", 200)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 3 {
			t.Fatalf("OrdersOf = %d orders, want 3 (the other customer's left out)", len(list))
		}
		for i, o := range list { // newest first
			wantOrder(t, o, placed[2-i])
		}
		if list, err := store.OrdersOf(ctx, "u-1", 2); err != nil || len(list) != 2 || list[0].No != placed[2].No {
			t.Errorf("OrdersOf(limit 2) = %d orders, %v; want the 2 newest", len(list), err)
		}
		if list, err := store.OrdersOf(ctx, "u-3", 200); err != nil || len(list) != 0 {
			t.Errorf("OrdersOf(no orders) = %v, %v; want none", list, err)
		}
	})
}

// wantOrder fails the test unless got is want as stored.
func wantOrder(t *testing.T, got, want legacy.Order) {
	t.Helper()
	if got.No != want.No || got.CustomerID != want.CustomerID || got.Status != want.Status ||
		got.TotalCents != want.TotalCents || got.Currency != want.Currency || !got.PlacedAt.Equal(want.PlacedAt) ||
		got.DeliverTo != want.DeliverTo || got.CardLast4 != want.CardLast4 || !slices.Equal(got.Lines, want.Lines) {
		t.Errorf("order = %+v\nwant %+v", got, want)
	}
}

// TestExportPagesInChangeOrder pages through both exports: each row once, in
// change order, the cursor being the last change number; a renamed customer
// comes again, after the rows written before the rename.
func TestExportPagesInChangeOrder(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		store, _ := open(t, d)
		var nos []string
		for i := range 5 {
			if _, err := store.Enrol(ctx, legacy.Customer{ID: fmt.Sprintf("u-%d", i), Name: "Ada", Email: "ada@example.com"}); err != nil {
				t.Fatal(err)
			}
			o := newOrder(fmt.Sprintf("u-%d", i), time.Now())
			if err := store.PlaceOrder(ctx, o); err != nil {
				t.Fatal(err)
			}
			nos = append(nos, o.No)
		}
		if _, err := store.Rename(ctx, "u-1", "Ada Lovelace"); err != nil {
			t.Fatal(err)
		}

		var (
			ids   []string
			after int64
		)
		for page := 0; ; page++ {
			items, err := store.ExportProfiles(ctx, after, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) == 0 {
				break
			}
			if len(items) > 2 {
				t.Fatalf("page %d has %d items, want at most 2", page, len(items))
			}
			for _, it := range items {
				if it.Seq <= after {
					t.Fatalf("seq %d after %d: not in change order", it.Seq, after)
				}
				after = it.Seq
				ids = append(ids, it.Item.ID)
				if it.Item.ID == "u-1" && it.Item.Name != "Ada Lovelace" {
					t.Errorf("exported u-1 named %q, want its name now", it.Item.Name)
				}
			}
		}
		if want := []string{"u-0", "u-2", "u-3", "u-4", "u-1"}; !slices.Equal(ids, want) {
			t.Errorf("exported profiles %v, want %v (the renamed one last)", ids, want)
		}

		all, err := store.ExportOrders(ctx, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for i, it := range all {
			got = append(got, it.Item.No)
			if len(it.Item.Lines) != 2 || it.Item.DeliverTo.City != "London" {
				t.Errorf("exported order %d = %+v, want it whole", i, it.Item)
			}
		}
		if !slices.Equal(got, nos) {
			t.Errorf("exported orders %v, want %v", got, nos)
		}
		rest, err := store.ExportOrders(ctx, all[2].Seq, 1000)
		if err != nil || len(rest) != 2 || rest[0].Item.No != nos[3] {
			t.Errorf("ExportOrders after the third = %d items, %v; want the last 2", len(rest), err)
		}
	})
}

// TestConcurrentWritersExportMissesNothing races writers, each holding its
// transaction open a random while after taking its change number, against
// an exporter that pages on with the cursor it was given. Had numbers been
// handed out in any order but commit order, the exporter would see a number
// committed before a smaller one and page past it for ever.
func TestConcurrentWritersExportMissesNothing(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		store, db := open(t, d)
		const writers, each = 6, 12
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			written = map[string]bool{}
			names   = map[string]string{} // customer -> last name committed
		)
		for w := range writers {
			customer := fmt.Sprintf("u-%d", w)
			if _, err := store.Enrol(ctx, legacy.Customer{ID: customer, Name: "name 0", Email: "x@example.com"}); err != nil {
				t.Fatal(err)
			}
			mu.Lock() // the writers started already write names too
			names[customer] = "name 0"
			mu.Unlock()
			wg.Go(func() {
				for i := range each {
					o := newOrder(customer, time.Now())
					name := fmt.Sprintf("name %d", i+1)
					// The store's units nest in this one: their change
					// number is taken, then the commit waits a while.
					err := db.Atomic(ctx, func(ctx context.Context) error {
						var err error
						if i%3 == 0 {
							_, err = store.Rename(ctx, customer, name)
						} else {
							err = store.PlaceOrder(ctx, o)
						}
						time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
						return err
					})
					if err != nil {
						t.Errorf("writer %d, write %d: %v", w, i, err)
						return
					}
					mu.Lock()
					if i%3 == 0 {
						names[customer] = name
					} else {
						written[o.No] = true
					}
					mu.Unlock()
				}
			})
		}

		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		seen := map[string]int{}
		lastName := map[string]string{}
		var afterOrders, afterProfiles int64
		exportOnce := func() (n int) {
			orders, err := store.ExportOrders(ctx, afterOrders, 5)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range orders {
				if it.Seq <= afterOrders {
					t.Fatalf("order seq %d after %d", it.Seq, afterOrders)
				}
				afterOrders = it.Seq
				seen[it.Item.No]++
			}
			profiles, err := store.ExportProfiles(ctx, afterProfiles, 5)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range profiles {
				if it.Seq <= afterProfiles {
					t.Fatalf("profile seq %d after %d", it.Seq, afterProfiles)
				}
				afterProfiles = it.Seq
				lastName[it.Item.ID] = it.Item.Name
			}
			return len(orders) + len(profiles)
		}
	poll:
		for {
			select {
			case <-done:
				break poll
			default:
				exportOnce()
			}
		}
		for exportOnce() > 0 { // what is left, a page at a time
		}

		missed, twice := 0, 0
		for no := range written {
			switch seen[no] {
			case 0:
				missed++
			case 1:
			default:
				twice++
			}
		}
		if missed != 0 || twice != 0 || len(seen) != len(written) {
			t.Errorf("orders written=%d exported=%d missed=%d twice=%d", len(written), len(seen), missed, twice)
		}
		for customer, name := range names {
			if lastName[customer] != name {
				t.Errorf("customer %s: the export's last name is %q, want %q", customer, lastName[customer], name)
			}
		}
	})
}

func TestHandOverIsRecordedOnce(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		store, _ := open(t, d)
		if _, err := store.Handover(ctx, legacy.DomainProfiles); !fail.Is(err, fail.NotFound) {
			t.Fatalf("Handover before any = %v, want not found", err)
		}
		at := time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC)
		first := legacy.Handover{Domain: legacy.DomainProfiles, Service: "users", HandedAt: at}
		got, err := store.HandOver(ctx, first)
		if err != nil || got != first {
			t.Fatalf("HandOver = %+v, %v; want %+v", got, err, first)
		}
		got, err = store.HandOver(ctx, legacy.Handover{Domain: legacy.DomainProfiles, Service: "other", HandedAt: at.Add(time.Hour)})
		if err != nil || got != first {
			t.Errorf("second HandOver = %+v, %v; want the first record %+v", got, err, first)
		}
		if got, err := store.Handover(ctx, legacy.DomainProfiles); err != nil || got != first {
			t.Errorf("Handover = %+v, %v; want %+v", got, err, first)
		}
		list, err := store.Handovers(ctx)
		if err != nil || len(list) != 1 || list[0] != first {
			t.Errorf("Handovers = %+v, %v; want [%+v]", list, err, first)
		}
	})
}

// TestWritesForAHandedOverDomainAreRefused hands each domain over in turn:
// the store refuses its writes with the service it moved to, writes nothing,
// and goes on writing for the other domain.
func TestWritesForAHandedOverDomainAreRefused(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		store, _ := open(t, d)
		if _, err := store.Enrol(ctx, legacy.Customer{ID: "u-1", Name: "Ada", Email: "ada@example.com"}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.HandOver(ctx, legacy.Handover{Domain: legacy.DomainProfiles, Service: "users", HandedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		wantMoved := func(what string, err error, service string) {
			t.Helper()
			var m *legacy.Moved
			if !errors.As(err, &m) || m.Service != service {
				t.Errorf("%s after the handover = %v, want moved to %s", what, err, service)
			}
		}
		_, err := store.Enrol(ctx, legacy.Customer{ID: "u-2", Name: "Bob", Email: "bob@example.com"})
		wantMoved("Enrol", err, "users")
		_, err = store.Rename(ctx, "u-1", "Ada Lovelace")
		wantMoved("Rename", err, "users")
		if c, err := store.Customer(ctx, "u-1"); err != nil || c.Name != "Ada" {
			t.Errorf("Customer = %+v, %v; want it unchanged", c, err)
		}
		if err := store.PlaceOrder(ctx, newOrder("u-1", time.Now())); err != nil {
			t.Errorf("PlaceOrder with orders still here: %v", err)
		}

		if _, err := store.HandOver(ctx, legacy.Handover{Domain: legacy.DomainOrders, Service: "orders", HandedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		wantMoved("PlaceOrder", store.PlaceOrder(ctx, newOrder("u-1", time.Now())), "orders")
		st, err := store.Stats(ctx)
		if err != nil || st.Customers != 1 || st.Orders != 1 || len(st.Handovers) != 2 {
			t.Errorf("Stats = %+v, %v; want 1 customer, 1 order, 2 handovers", st, err)
		}
	})
}

// TestHandOverRacingWritersLosesNothing hands the orders domain over while
// writers place orders: each write either committed before the handover, and
// then an export after it has it, or is refused; and none begun after the
// handover returned gets through.
func TestHandOverRacingWritersLosesNothing(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		store, _ := open(t, d)
		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			committed = map[string]bool{}
			refused   = map[string]bool{}
			handedAt  time.Time // when HandOver returned; zero until then
			late      int       // writes begun after it that got through
		)
		for w := range 4 {
			wg.Go(func() {
				for {
					mu.Lock()
					handed := !handedAt.IsZero()
					mu.Unlock()
					o := newOrder(fmt.Sprintf("u-%d", w), time.Now())
					err := store.PlaceOrder(ctx, o)
					var m *legacy.Moved
					mu.Lock()
					switch {
					case err == nil:
						committed[o.No] = true
						if handed {
							late++
						}
					case errors.As(err, &m):
						refused[o.No] = true
					default:
						t.Errorf("PlaceOrder: %v", err)
					}
					mu.Unlock()
					if err != nil {
						return
					}
				}
			})
		}
		time.Sleep(50 * time.Millisecond)
		if _, err := store.HandOver(ctx, legacy.Handover{Domain: legacy.DomainOrders, Service: "orders", HandedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		handedAt = time.Now()
		mu.Unlock()
		wg.Wait()

		exported := map[string]bool{}
		var after int64
		for {
			items, err := store.ExportOrders(ctx, after, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) == 0 {
				break
			}
			for _, it := range items {
				exported[it.Item.No] = true
				after = it.Seq
			}
		}
		missed, leaked := 0, 0
		for no := range committed {
			if !exported[no] {
				missed++
			}
		}
		for no := range refused {
			if exported[no] {
				leaked++
			}
		}
		if len(committed) == 0 || len(refused) != 4 || missed != 0 || leaked != 0 || late != 0 || len(exported) != len(committed) {
			t.Errorf("committed=%d refused=%d exported=%d missed=%d leaked=%d late=%d; want refused=4 (one per writer) and the rest 0",
				len(committed), len(refused), len(exported), missed, leaked, late)
		}
	})
}
