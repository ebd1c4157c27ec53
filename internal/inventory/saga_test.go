package inventory_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/inventory"
	"github.com/microshop/microshop/internal/inventory/inventorydb"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

func TestSagaValidate(t *testing.T) {
	tests := []struct {
		saga inventory.Saga
		ok   bool
	}{
		{inventory.Orchestration, true},
		{inventory.Choreography, true},
		{inventory.Parallel, true},
		{"", false},
		{"Parallel", false},
		{"saga", false},
	}
	for _, tt := range tests {
		err := tt.saga.Validate()
		if got := err == nil; got != tt.ok || (err != nil && !fail.Is(err, fail.Invalid)) {
			t.Errorf("Saga(%q).Validate(): got %v, want valid %v (fail.Invalid otherwise)", tt.saga, err, tt.ok)
		}
	}
}

func TestIntentReady(t *testing.T) {
	items := []inventory.Item{{"p1", 1}}
	tests := []struct {
		in   inventory.Intent
		want bool
	}{
		{inventory.Intent{}, false},
		{inventory.Intent{Items: items}, false},
		{inventory.Intent{Paid: true}, false},
		{inventory.Intent{Items: []inventory.Item{}, Paid: true}, false},
		{inventory.Intent{Items: items, Paid: true}, true},
	}
	for _, tt := range tests {
		if got := tt.in.Ready(); got != tt.want {
			t.Errorf("%+v.Ready(): got %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestRefused(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{fail.New(fail.Conflict, "reservation was released"), true},
		{inventory.NoReservation("o1"), true},
		{fail.New(fail.Invalid, "order_id must be 1 to 100 characters"), false},
		{fail.New(fail.Unavailable, "try again"), false},
		{context.Canceled, false},
	}
	for _, tt := range tests {
		if got := inventory.Refused(tt.err); got != tt.want {
			t.Errorf("Refused(%v): got %v, want %v", tt.err, got, tt.want)
		}
	}
}

// shop is the inventory service over a real SQLite store with the outbox,
// stocked with 10 of p1 and 5 of p2.
type shop struct {
	t   *testing.T
	ctx context.Context
	db  *sqldb.DB
	svc *inventory.Service
}

func newShop(t *testing.T) *shop {
	t.Helper()
	ctx := context.Background()
	db := sqldbtest.OpenMessaging(t, "inventory", inventorydb.Migrations)
	s := &shop{t: t, ctx: ctx, db: db, svc: inventory.NewService(inventorydb.New(db))}
	for id, n := range map[string]int64{"p1": 10, "p2": 5} {
		if _, err := s.svc.SetAvailable(ctx, id, n); err != nil {
			t.Fatalf("SetAvailable(%s): %v", id, err)
		}
	}
	return s
}

// events returns the events in the outbox, oldest first.
func (s *shop) events() []event.Event {
	s.t.Helper()
	return sqldbtest.Outbox(s.t, s.db)
}

// types returns the types of the events in the outbox, oldest first.
func (s *shop) types() []string {
	var out []string
	for _, e := range s.events() {
		out = append(out, e.Type)
	}
	return out
}

// status returns the status of o1's reservation, or "" if it has none.
func (s *shop) status() inventory.Status {
	s.t.Helper()
	r, err := s.svc.Reservation(s.ctx, "o1")
	if fail.Is(err, fail.NotFound) {
		return ""
	}
	if err != nil {
		s.t.Fatalf("Reservation(o1): %v", err)
	}
	return r.Status
}

// p1 returns p1's available, reserved and sold units.
func (s *shop) p1() [3]int64 {
	s.t.Helper()
	st, err := s.svc.Stock(s.ctx, "p1")
	if err != nil {
		s.t.Fatalf("Stock(p1): %v", err)
	}
	if !st.Balanced() {
		s.t.Errorf("stock of p1 does not add up: %+v", st)
	}
	return [3]int64{st.Available, st.Reserved, st.Sold}
}

// step is one event or command reaching the service, about order o1.
type step struct {
	name string
	do   func(ctx context.Context, svc *inventory.Service) error
}

var two = []inventory.Item{{"p1", 2}}

func created(saga inventory.Saga, items ...inventory.Item) step {
	if items == nil {
		items = two
	}
	return step{"OrderCreated/" + string(saga), func(ctx context.Context, svc *inventory.Service) error {
		return svc.OrderCreated(ctx, saga, "o1", items)
	}}
}

func paid(saga inventory.Saga) step {
	return step{"PaymentProcessed/" + string(saga), func(ctx context.Context, svc *inventory.Service) error {
		return svc.PaymentProcessed(ctx, saga, "o1")
	}}
}

func declined(saga inventory.Saga) step {
	return step{"PaymentFailed/" + string(saga), func(ctx context.Context, svc *inventory.Service) error {
		return svc.PaymentFailed(ctx, saga, "o1")
	}}
}

func scheduled(saga inventory.Saga) step {
	return step{"DeliveryScheduled/" + string(saga), func(ctx context.Context, svc *inventory.Service) error {
		return svc.DeliveryScheduled(ctx, saga, "o1")
	}}
}

func cancelled(saga inventory.Saga) step {
	return step{"OrderCancelled/" + string(saga), func(ctx context.Context, svc *inventory.Service) error {
		return svc.OrderCancelled(ctx, saga, "o1")
	}}
}

// The orchestrator's commands answer refusals with fail.Conflict or
// fail.NotFound, as the HTTP endpoints do; a consumer acknowledges them.
func settled(err error) error {
	if inventory.Refused(err) {
		return nil
	}
	return err
}

var (
	reserveCmd = step{"command.reserve", func(ctx context.Context, svc *inventory.Service) error {
		_, _, err := svc.Reserve(ctx, inventory.Orchestration, "o1", two)
		return settled(err)
	}}
	commitCmd = step{"command.commit", func(ctx context.Context, svc *inventory.Service) error {
		_, err := svc.Commit(ctx, inventory.Orchestration, "o1")
		return settled(err)
	}}
	releaseCmd = step{"command.release", func(ctx context.Context, svc *inventory.Service) error {
		_, err := svc.Release(ctx, inventory.Orchestration, "o1")
		return settled(err)
	}}
)

func TestReactions(t *testing.T) {
	const (
		o = inventory.Orchestration
		c = inventory.Choreography
		p = inventory.Parallel
	)
	untouched, held, sold := [3]int64{10, 0, 0}, [3]int64{8, 2, 0}, [3]int64{8, 0, 2}
	tests := []struct {
		name       string
		steps      []step
		wantStatus inventory.Status // "" for no reservation
		wantP1     [3]int64         // available, reserved, sold
		wantEvents []string
	}{
		{"parallel reserves on OrderCreated", []step{created(p)}, inventory.Reserved, held, []string{"ItemsReserved"}},
		{"choreography waits for the payment", []step{created(c)}, "", untouched, nil},
		{"orchestration waits for the command", []step{created(o)}, "", untouched, nil},
		{"choreography reserves once paid", []step{created(c), paid(c)}, inventory.Reserved, held, []string{"ItemsReserved"}},
		{"choreography reserves when the items come after the payment", []step{paid(c), created(c)}, inventory.Reserved, held, []string{"ItemsReserved"}},
		{"choreography remembers a payment alone", []step{paid(c)}, "", untouched, nil},
		{"parallel ignores the payment", []step{created(p), paid(p)}, inventory.Reserved, held, []string{"ItemsReserved"}},
		{"orchestration ignores the payment", []step{paid(o)}, "", untouched, nil},
		{"short stock is refused", []step{created(p, inventory.Item{"p1", 11})}, inventory.Rejected, untouched, []string{"ReservationFailed"}},
		{"choreography refuses short stock once paid", []step{created(c, inventory.Item{"p1", 11}), paid(c)}, inventory.Rejected, untouched, []string{"ReservationFailed"}},
		{"a declined payment releases", []step{created(p), declined(p)}, inventory.Released, untouched, []string{"ItemsReserved", "ItemsReleased"}},
		{"a declined payment first leaves a tombstone", []step{declined(p), created(p)}, inventory.Released, untouched, []string{"ItemsReleased", "ReservationFailed"}},
		{"choreography releases on a declined payment", []step{created(c), declined(c)}, inventory.Released, untouched, []string{"ItemsReleased"}},
		{"orchestration leaves a declined payment to the orchestrator", []step{declined(o)}, "", untouched, nil},
		{"a scheduled delivery commits", []step{created(p), scheduled(p)}, inventory.Committed, sold, []string{"ItemsReserved", "ItemsCommitted"}},
		{"choreography commits on a scheduled delivery", []step{created(c), paid(c), scheduled(c)}, inventory.Committed, sold, []string{"ItemsReserved", "ItemsCommitted"}},
		{"a scheduled delivery with nothing reserved fails", []step{scheduled(c)}, "", untouched, []string{"CommitFailed"}},
		{"a scheduled delivery after a release fails", []step{created(p), declined(p), scheduled(p)}, inventory.Released, untouched, []string{"ItemsReserved", "ItemsReleased", "CommitFailed"}},
		{"orchestration leaves a scheduled delivery to the orchestrator", []step{created(p), scheduled(o)}, inventory.Reserved, held, []string{"ItemsReserved"}},
		{"a cancelled order releases", []step{created(p), cancelled(p)}, inventory.Released, untouched, []string{"ItemsReserved", "ItemsReleased"}},
		{"a cancelled order leaves a tombstone in every style", []step{cancelled(o)}, inventory.Released, untouched, []string{"ItemsReleased"}},
		{"a cancel cannot take back sold stock", []step{created(p), scheduled(p), cancelled(p)}, inventory.Committed, sold, []string{"ItemsReserved", "ItemsCommitted"}},
		{"commands reply every time", []step{reserveCmd, reserveCmd, commitCmd, commitCmd}, inventory.Committed, sold,
			[]string{"ItemsReserved", "ItemsReserved", "ItemsCommitted", "ItemsCommitted"}},
		{"a release command replies every time", []step{reserveCmd, releaseCmd, releaseCmd}, inventory.Released, untouched,
			[]string{"ItemsReserved", "ItemsReleased", "ItemsReleased"}},
		{"a reserve after a release is refused every time", []step{releaseCmd, reserveCmd, reserveCmd}, inventory.Released, untouched,
			[]string{"ItemsReleased", "ReservationFailed", "ReservationFailed"}},
		{"a commit of nothing is refused every time", []step{commitCmd, commitCmd}, "", untouched, []string{"CommitFailed", "CommitFailed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newShop(t)
			for _, st := range tt.steps {
				if err := st.do(s.ctx, s.svc); err != nil {
					t.Fatalf("%s: got %v, want nil", st.name, err)
				}
			}
			if got := s.status(); got != tt.wantStatus {
				t.Errorf("reservation status: got %q, want %q", got, tt.wantStatus)
			}
			if got := s.p1(); got != tt.wantP1 {
				t.Errorf("p1 available, reserved, sold: got %v, want %v", got, tt.wantP1)
			}
			if got := s.types(); !reflect.DeepEqual(got, tt.wantEvents) {
				t.Errorf("published: got %v, want %v", got, tt.wantEvents)
			}
		})
	}
}

func TestOutcomeEvents(t *testing.T) {
	s := newShop(t)
	if err := s.svc.OrderCreated(s.ctx, inventory.Choreography, "o1", []inventory.Item{{"p2", 1}, {"p1", 2}, {"p2", 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.svc.PaymentProcessed(s.ctx, inventory.Choreography, "o1"); err != nil {
		t.Fatal(err)
	}
	if err := s.svc.OrderCreated(s.ctx, inventory.Parallel, "o2", []inventory.Item{{"p2", 6}}); err != nil {
		t.Fatal(err)
	}
	events := s.events()
	if len(events) != 2 {
		t.Fatalf("published %d events, want 2", len(events))
	}
	tests := []struct {
		topic, typ, key string
		want            string // the payload, as JSON
	}{
		{"inventory.items.reserved", "ItemsReserved", "o1",
			`{"order_id":"o1","items":[{"product_id":"p1","quantity":2},{"product_id":"p2","quantity":2}],"saga":"choreography"}`},
		{"inventory.reservation.failed", "ReservationFailed", "o2",
			`{"order_id":"o2","reason":"insufficient stock for product p2","saga":"parallel"}`},
	}
	for i, tt := range tests {
		e := events[i]
		if e.Topic != tt.topic || e.Type != tt.typ || e.Key != tt.key || e.Source != "inventory" || e.Version != 1 || e.ID == "" {
			t.Errorf("event %d: got %s %s key %s from %s v%d id %q, want %s %s key %s from inventory v1 with an id",
				i, e.Topic, e.Type, e.Key, e.Source, e.Version, e.ID, tt.topic, tt.typ, tt.key)
		}
		if string(e.Payload) != tt.want {
			t.Errorf("event %d payload: got %s, want %s", i, e.Payload, tt.want)
		}
	}
}

func TestReactionsRefuseInvalidEvents(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("o", 101)
	tests := []struct {
		name string
		do   func(svc *inventory.Service) error
	}{
		{"no saga", func(svc *inventory.Service) error { return svc.OrderCreated(ctx, "", "o1", two) }},
		{"unknown saga", func(svc *inventory.Service) error { return svc.PaymentProcessed(ctx, "saga", "o1") }},
		{"no order id", func(svc *inventory.Service) error { return svc.OrderCreated(ctx, inventory.Parallel, "", two) }},
		{"order id too long", func(svc *inventory.Service) error { return svc.OrderCancelled(ctx, inventory.Parallel, long) }},
		{"no items", func(svc *inventory.Service) error { return svc.OrderCreated(ctx, inventory.Parallel, "o1", nil) }},
		{"no items to remember", func(svc *inventory.Service) error { return svc.OrderCreated(ctx, inventory.Choreography, "o1", nil) }},
		{"bad quantity", func(svc *inventory.Service) error {
			return svc.OrderCreated(ctx, inventory.Choreography, "o1", []inventory.Item{{"p1", 0}})
		}},
		{"payment without order id", func(svc *inventory.Service) error { return svc.PaymentFailed(ctx, inventory.Parallel, "") }},
		{"delivery without order id", func(svc *inventory.Service) error { return svc.DeliveryScheduled(ctx, inventory.Parallel, "") }},
		{"command without saga", func(svc *inventory.Service) error { _, _, err := svc.Reserve(ctx, "", "o1", two); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newShop(t)
			if err := tt.do(s.svc); !fail.Is(err, fail.Invalid) {
				t.Fatalf("got %v, want fail.Invalid", err)
			}
			// A later payment must not find items remembered by the refused event.
			if err := s.svc.PaymentProcessed(ctx, inventory.Choreography, "o1"); err != nil {
				t.Fatal(err)
			}
			if got := s.status(); got != "" {
				t.Errorf("reservation status after a refused event: got %q, want none", got)
			}
			if got := s.types(); got != nil {
				t.Errorf("published after a refused event: got %v, want nothing", got)
			}
		})
	}
}

// TestAnyOrderSameEnd delivers the events a saga waits for in every order:
// each must leave the same reservation and the same stock.
func TestAnyOrderSameEnd(t *testing.T) {
	const (
		c = inventory.Choreography
		p = inventory.Parallel
	)
	tests := []struct {
		name       string
		steps      []step
		wantStatus inventory.Status
		wantP1     [3]int64
	}{
		{"choreography happy path", []step{created(c), paid(c)}, inventory.Reserved, [3]int64{8, 2, 0}},
		{"choreography cancelled", []step{created(c), paid(c), cancelled(c)}, inventory.Released, [3]int64{10, 0, 0}},
		{"choreography declined", []step{created(c), declined(c)}, inventory.Released, [3]int64{10, 0, 0}},
		{"parallel declined", []step{created(p), declined(p)}, inventory.Released, [3]int64{10, 0, 0}},
		{"parallel declined and cancelled", []step{created(p), declined(p), cancelled(p)}, inventory.Released, [3]int64{10, 0, 0}},
	}
	for _, tt := range tests {
		for _, order := range permutations(len(tt.steps)) {
			var names []string
			for _, i := range order {
				names = append(names, tt.steps[i].name)
			}
			t.Run(tt.name+"/"+strings.Join(names, ","), func(t *testing.T) {
				s := newShop(t)
				for _, i := range order {
					if err := tt.steps[i].do(s.ctx, s.svc); err != nil {
						t.Fatalf("%s: got %v, want nil", tt.steps[i].name, err)
					}
				}
				if got := s.status(); got != tt.wantStatus {
					t.Errorf("reservation status: got %q, want %q", got, tt.wantStatus)
				}
				if got := s.p1(); got != tt.wantP1 {
					t.Errorf("p1 available, reserved, sold: got %v, want %v", got, tt.wantP1)
				}
			})
		}
	}
}

// permutations returns every order of 0..n-1.
func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, rest := range permutations(n - 1) {
		for i := 0; i <= len(rest); i++ {
			p := append(append(append([]int{}, rest[:i]...), n-1), rest[i:]...)
			out = append(out, p)
		}
	}
	return out
}
