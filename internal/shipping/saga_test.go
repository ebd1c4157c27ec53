package shipping_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/shipping"
	"github.com/microshop/microshop/internal/shipping/shipmentdb"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

func TestSagaValidate(t *testing.T) {
	tests := []struct {
		saga shipping.Saga
		ok   bool
	}{
		{shipping.Orchestration, true},
		{shipping.Choreography, true},
		{shipping.Parallel, true},
		{"", false},
		{"PARALLEL", false},
	}
	for _, tt := range tests {
		err := tt.saga.Validate()
		if got := err == nil; got != tt.ok || (err != nil && !fail.Is(err, fail.Invalid)) {
			t.Errorf("Saga(%q).Validate(): got %v, want valid %v (fail.Invalid otherwise)", tt.saga, err, tt.ok)
		}
	}
}

func TestIntentReady(t *testing.T) {
	const (
		o = shipping.Orchestration
		c = shipping.Choreography
		p = shipping.Parallel
	)
	tests := []struct {
		in   shipping.Intent
		want bool
	}{
		{shipping.Intent{Saga: c, Created: true, Reserved: true}, true},
		{shipping.Intent{Saga: c, Created: true}, false},
		{shipping.Intent{Saga: c, Reserved: true, Paid: true}, false},
		{shipping.Intent{Saga: p, Created: true, Reserved: true}, false},
		{shipping.Intent{Saga: p, Created: true, Paid: true}, false},
		{shipping.Intent{Saga: p, Reserved: true, Paid: true}, false},
		{shipping.Intent{Saga: p, Created: true, Reserved: true, Paid: true}, true},
		{shipping.Intent{Saga: o, Created: true, Reserved: true, Paid: true}, false},
		{shipping.Intent{Created: true, Reserved: true, Paid: true}, false},
	}
	for _, tt := range tests {
		if got := tt.in.Ready(); got != tt.want {
			t.Errorf("%+v.Ready(): got %v, want %v", tt.in, got, tt.want)
		}
	}
}

// depot is the shipping service over a real SQLite store with the outbox.
type depot struct {
	t   *testing.T
	ctx context.Context
	db  *sqldb.DB
	svc *shipping.Service
}

func newDepot(t *testing.T) *depot {
	t.Helper()
	ctx := context.Background()
	db := sqldbtest.OpenMessaging(t, "shipping", shipmentdb.Migrations)
	return &depot{t: t, ctx: ctx, db: db, svc: shipping.NewService(shipmentdb.New(db))}
}

// events returns the events in the outbox, oldest first.
func (d *depot) events() []event.Event {
	d.t.Helper()
	return sqldbtest.Outbox(d.t, d.db)
}

func (d *depot) types() []string {
	var out []string
	for _, e := range d.events() {
		out = append(out, e.Type)
	}
	return out
}

// shipment returns o1's shipment, or a zero one if it has none.
func (d *depot) shipment() shipping.Shipment {
	d.t.Helper()
	sh, err := d.svc.ByOrder(d.ctx, "o1")
	if fail.Is(err, fail.NotFound) {
		return shipping.Shipment{}
	}
	if err != nil {
		d.t.Fatalf("ByOrder(o1): %v", err)
	}
	return sh
}

// step is one event or command reaching the service, about order o1.
type step struct {
	name string
	do   func(ctx context.Context, svc *shipping.Service) error
}

func created(saga shipping.Saga) step {
	return step{"OrderCreated/" + string(saga), func(ctx context.Context, svc *shipping.Service) error {
		return svc.OrderCreated(ctx, saga, "o1", "u1", home)
	}}
}

func reserved(saga shipping.Saga) step {
	return step{"ItemsReserved/" + string(saga), func(ctx context.Context, svc *shipping.Service) error {
		return svc.ItemsReserved(ctx, saga, "o1")
	}}
}

func paid(saga shipping.Saga) step {
	return step{"PaymentProcessed/" + string(saga), func(ctx context.Context, svc *shipping.Service) error {
		return svc.PaymentProcessed(ctx, saga, "o1")
	}}
}

func cancelled(saga shipping.Saga) step {
	return step{"OrderCancelled/" + string(saga), func(ctx context.Context, svc *shipping.Service) error {
		return svc.OrderCancelled(ctx, saga, "o1")
	}}
}

// The orchestrator's commands answer a refusal with fail.Conflict, as the
// HTTP endpoints do; a consumer acknowledges it.
var (
	scheduleCmd = step{"command.schedule", func(ctx context.Context, svc *shipping.Service) error {
		_, _, err := svc.Schedule(ctx, shipping.Orchestration, "o1", "u1", home)
		if shipping.Refused(err) {
			return nil
		}
		return err
	}}
	cancelCmd = step{"command.cancel", func(ctx context.Context, svc *shipping.Service) error {
		_, err := svc.Cancel(ctx, shipping.Orchestration, "o1")
		return err
	}}
)

func TestReactions(t *testing.T) {
	const (
		o = shipping.Orchestration
		c = shipping.Choreography
		p = shipping.Parallel
	)
	const none = shipping.Status("")
	tests := []struct {
		name       string
		steps      []step
		wantStatus shipping.Status
		wantEvents []string
	}{
		{"choreography waits for the reservation", []step{created(c)}, none, nil},
		{"choreography schedules once reserved", []step{created(c), reserved(c)}, shipping.StatusScheduled, []string{"DeliveryScheduled"}},
		{"choreography schedules when the order comes last", []step{reserved(c), created(c)}, shipping.StatusScheduled, []string{"DeliveryScheduled"}},
		{"choreography does not wait for the payment", []step{paid(c), created(c), reserved(c)}, shipping.StatusScheduled, []string{"DeliveryScheduled"}},
		{"parallel waits for the payment", []step{created(p), reserved(p)}, none, nil},
		{"parallel waits for the reservation", []step{created(p), paid(p)}, none, nil},
		{"parallel schedules once all are seen", []step{created(p), reserved(p), paid(p)}, shipping.StatusScheduled, []string{"DeliveryScheduled"}},
		{"orchestration waits for the command", []step{created(o), reserved(o), paid(o)}, none, nil},
		{"a repeated reservation is answered again", []step{created(c), reserved(c), reserved(c)}, shipping.StatusScheduled,
			[]string{"DeliveryScheduled", "DeliveryScheduled"}},
		{"a cancelled order cancels the shipment", []step{created(c), reserved(c), cancelled(c)}, shipping.StatusCancelled,
			[]string{"DeliveryScheduled", "ShipmentCancelled"}},
		{"a cancel first leaves a tombstone that refuses", []step{cancelled(p), created(p), reserved(p), paid(p)}, shipping.StatusCancelled,
			[]string{"ShipmentCancelled", "ShipmentRefused"}},
		{"a cancel in orchestration cancels too", []step{cancelled(o)}, shipping.StatusCancelled, []string{"ShipmentCancelled"}},
		{"commands are answered every time", []step{scheduleCmd, scheduleCmd, cancelCmd, cancelCmd, scheduleCmd}, shipping.StatusCancelled,
			[]string{"DeliveryScheduled", "DeliveryScheduled", "ShipmentCancelled", "ShipmentCancelled", "ShipmentRefused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDepot(t)
			for _, st := range tt.steps {
				if err := st.do(d.ctx, d.svc); err != nil {
					t.Fatalf("%s: got %v, want nil", st.name, err)
				}
			}
			if got := d.shipment().Status; got != tt.wantStatus {
				t.Errorf("shipment status: got %q, want %q", got, tt.wantStatus)
			}
			if got := d.types(); !reflect.DeepEqual(got, tt.wantEvents) {
				t.Errorf("published: got %v, want %v", got, tt.wantEvents)
			}
		})
	}
}

func TestOutcomeEvents(t *testing.T) {
	d := newDepot(t)
	sh, _, err := d.svc.Schedule(d.ctx, shipping.Parallel, "o1", "u1", home)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.svc.Cancel(d.ctx, shipping.Choreography, "o1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.svc.Schedule(d.ctx, shipping.Orchestration, "o1", "u1", home); !fail.Is(err, fail.Conflict) {
		t.Fatalf("Schedule after Cancel: got %v, want fail.Conflict", err)
	}
	events := d.events()
	tests := []struct {
		topic, typ, want string
	}{
		{"shipping.delivery.scheduled", "DeliveryScheduled", `{"order_id":"o1","shipment_id":"` + sh.ID + `","saga":"parallel"}`},
		{"shipping.shipment.cancelled", "ShipmentCancelled", `{"order_id":"o1","saga":"choreography"}`},
		{"shipping.shipment.refused", "ShipmentRefused", `{"order_id":"o1","reason":"shipment was cancelled","saga":"orchestration"}`},
	}
	if len(events) != len(tests) {
		t.Fatalf("published %d events, want %d", len(events), len(tests))
	}
	for i, tt := range tests {
		e := events[i]
		if e.Topic != tt.topic || e.Type != tt.typ || e.Key != "o1" || e.Source != "shipping" || e.Version != 1 || e.ID == "" {
			t.Errorf("event %d: got %s %s key %s from %s v%d id %q, want %s %s key o1 from shipping v1 with an id",
				i, e.Topic, e.Type, e.Key, e.Source, e.Version, e.ID, tt.topic, tt.typ)
		}
		if string(e.Payload) != tt.want {
			t.Errorf("event %d payload: got %s, want %s", i, e.Payload, tt.want)
		}
	}
}

func TestReactionsRefuseInvalidEvents(t *testing.T) {
	ctx := context.Background()
	bad := home
	bad.Country = "gb"
	tests := []struct {
		name string
		do   func(svc *shipping.Service) error
	}{
		{"no saga", func(svc *shipping.Service) error { return svc.OrderCreated(ctx, "", "o1", "u1", home) }},
		{"no order id", func(svc *shipping.Service) error { return svc.OrderCreated(ctx, shipping.Parallel, "", "u1", home) }},
		{"no user", func(svc *shipping.Service) error { return svc.OrderCreated(ctx, shipping.Parallel, "o1", "", home) }},
		{"bad address", func(svc *shipping.Service) error {
			return svc.OrderCreated(ctx, shipping.Choreography, "o1", "u1", bad)
		}},
		{"reserved without order id", func(svc *shipping.Service) error { return svc.ItemsReserved(ctx, shipping.Parallel, "") }},
		{"paid with unknown saga", func(svc *shipping.Service) error { return svc.PaymentProcessed(ctx, "x", "o1") }},
		{"cancelled without order id", func(svc *shipping.Service) error { return svc.OrderCancelled(ctx, shipping.Parallel, "") }},
		{"command with a bad address", func(svc *shipping.Service) error {
			_, _, err := svc.Schedule(ctx, shipping.Orchestration, "o1", "u1", bad)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDepot(t)
			if err := tt.do(d.svc); !fail.Is(err, fail.Invalid) {
				t.Fatalf("got %v, want fail.Invalid", err)
			}
			// Had the refused event been remembered, these would schedule.
			for _, st := range []step{reserved(shipping.Choreography), paid(shipping.Parallel)} {
				if err := st.do(d.ctx, d.svc); err != nil {
					t.Fatal(err)
				}
			}
			if got := d.shipment(); got.ID != "" {
				t.Errorf("shipment after a refused event: got %+v, want none", got)
			}
			if got := d.types(); got != nil {
				t.Errorf("published after a refused event: got %v, want nothing", got)
			}
		})
	}
}

// TestAnyOrderSameEnd delivers the events a saga waits for in every order:
// each must end with the same shipment, announced once.
func TestAnyOrderSameEnd(t *testing.T) {
	const (
		c = shipping.Choreography
		p = shipping.Parallel
	)
	tests := []struct {
		name       string
		steps      []step
		wantStatus shipping.Status
	}{
		{"choreography", []step{created(c), reserved(c)}, shipping.StatusScheduled},
		{"choreography with the payment", []step{created(c), reserved(c), paid(c)}, shipping.StatusScheduled},
		{"parallel", []step{created(p), reserved(p), paid(p)}, shipping.StatusScheduled},
		{"parallel cancelled", []step{created(p), reserved(p), paid(p), cancelled(p)}, shipping.StatusCancelled},
	}
	for _, tt := range tests {
		for _, order := range permutations(len(tt.steps)) {
			var names []string
			for _, i := range order {
				names = append(names, tt.steps[i].name)
			}
			t.Run(tt.name+"/"+strings.Join(names, ","), func(t *testing.T) {
				d := newDepot(t)
				for _, i := range order {
					if err := tt.steps[i].do(d.ctx, d.svc); err != nil {
						t.Fatalf("%s: got %v, want nil", tt.steps[i].name, err)
					}
				}
				sh := d.shipment()
				if sh.Status != tt.wantStatus {
					t.Errorf("shipment status: got %q, want %q", sh.Status, tt.wantStatus)
				}
				if sh.Status == shipping.StatusScheduled && (sh.UserID != "u1" || sh.Address != home) {
					t.Errorf("shipment: got %+v, want it for u1 to %+v", sh, home)
				}
				scheduled := 0
				for _, typ := range d.types() {
					if typ == shipping.TypeDeliveryScheduled {
						scheduled++
					}
				}
				if tt.wantStatus == shipping.StatusScheduled && scheduled != 1 {
					t.Errorf("DeliveryScheduled published %d times, want once", scheduled)
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
