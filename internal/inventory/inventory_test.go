package inventory_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/inventory"
)

func TestMergeItems(t *testing.T) {
	many := func(n int) []inventory.Item {
		out := make([]inventory.Item, n)
		for i := range out {
			out[i] = inventory.Item{ProductID: "p" + strings.Repeat("x", i), Quantity: 1}
		}
		return out
	}
	tests := []struct {
		name  string
		items []inventory.Item
		want  []inventory.Item // nil when invalid
	}{
		{"one", []inventory.Item{{"a", 2}}, []inventory.Item{{"a", 2}}},
		{"sorted by product", []inventory.Item{{"b", 1}, {"a", 2}, {"c", 3}}, []inventory.Item{{"a", 2}, {"b", 1}, {"c", 3}}},
		{"merged", []inventory.Item{{"b", 1}, {"a", 2}, {"b", 4}}, []inventory.Item{{"a", 2}, {"b", 5}}},
		{"merged to the max", []inventory.Item{{"a", 500}, {"a", 500}}, []inventory.Item{{"a", 1000}}},
		{"merged over the max", []inventory.Item{{"a", 500}, {"a", 501}}, nil},
		{"none", []inventory.Item{}, nil},
		{"nil", nil, nil},
		{"fifty lines", many(50), many(50)},
		{"fifty-one lines", many(51), nil},
		{"fifty-one lines of one product", func() []inventory.Item {
			out := make([]inventory.Item, 51)
			for i := range out {
				out[i] = inventory.Item{ProductID: "a", Quantity: 1}
			}
			return out
		}(), nil},
		{"quantity 0", []inventory.Item{{"a", 0}}, nil},
		{"quantity -1", []inventory.Item{{"a", -1}}, nil},
		{"quantity 1000", []inventory.Item{{"a", 1000}}, []inventory.Item{{"a", 1000}}},
		{"quantity 1001", []inventory.Item{{"a", 1001}}, nil},
		{"empty product id", []inventory.Item{{"", 1}}, nil},
		{"product id with a slash", []inventory.Item{{"a/b", 1}}, nil},
		{"product id too long", []inventory.Item{{strings.Repeat("a", 101), 1}}, nil},
		{"uuid product id", []inventory.Item{{"0190a5b2-7c1e-7d3a-9f00-0123456789ab", 1}}, []inventory.Item{{"0190a5b2-7c1e-7d3a-9f00-0123456789ab", 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := inventory.MergeItems(tt.items)
			if tt.want == nil {
				if !fail.Is(err, fail.Invalid) {
					t.Fatalf("MergeItems: got %v, %v; want kind invalid", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("MergeItems: got error %v, want none", err)
			}
			// many(n) is built in sorted order, so it is its own merge.
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("MergeItems: got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestValidateID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"0190a5b2-7c1e-7d3a-9f00-0123456789ab", true},
		{"sku:MUG_1.v2", true},
		{strings.Repeat("a", 100), true},
		{strings.Repeat("a", 101), false},
		{"", false},
		{"a b", false},
		{"a/b", false},
		{"a\nb", false},
		{"é", false},
	}
	for _, tt := range tests {
		err := inventory.ValidateID("order_id", tt.id)
		if tt.ok && err != nil {
			t.Errorf("ValidateID(%q): got %v, want nil", tt.id, err)
		}
		if !tt.ok && !fail.Is(err, fail.Invalid) {
			t.Errorf("ValidateID(%q): got %v, want kind invalid", tt.id, err)
		}
	}
}

// TestSteps is the state machine of a reservation: what each operation does
// to each status.
func TestSteps(t *testing.T) {
	type outcome struct {
		step inventory.Step
		kind fail.Kind // Internal stands for no error
	}
	ok := func(s inventory.Step) outcome { return outcome{step: s} }
	refused := outcome{kind: fail.Conflict}
	tests := []struct {
		status  inventory.Status
		reserve outcome // Replay or refused: a reservation that exists is never made again
		commit  outcome
		release outcome
	}{
		{inventory.Reserved, ok(inventory.Replay), ok(inventory.Apply), ok(inventory.Apply)},
		{inventory.Committed, ok(inventory.Replay), ok(inventory.Replay), refused},
		{inventory.Released, refused, refused, ok(inventory.Replay)},
		{inventory.Rejected, refused, refused, ok(inventory.Replay)},
	}
	for _, tt := range tests {
		t.Run(string(tt.status), func(t *testing.T) {
			r := inventory.Reservation{OrderID: "o1", Status: tt.status, Reason: "insufficient stock for product p1"}
			check := func(op string, step inventory.Step, err error, want outcome) {
				t.Helper()
				if want.kind == fail.Internal && err != nil {
					t.Errorf("%s of %s: got error %v, want step %d", op, tt.status, err, want.step)
				}
				if want.kind != fail.Internal && !fail.Is(err, want.kind) {
					t.Errorf("%s of %s: got %v, want kind %v", op, tt.status, err, want.kind)
				}
				if err == nil && step != want.step {
					t.Errorf("%s of %s: got step %d, want %d", op, tt.status, step, want.step)
				}
			}
			check("reserve", inventory.Replay, r.ReserveAgain(), tt.reserve)
			step, err := r.CommitStep()
			check("commit", step, err, tt.commit)
			step, err = r.ReleaseStep()
			check("release", step, err, tt.release)
		})
	}
}

func TestRefusalMessages(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"reserve a rejected one", inventory.Reservation{Status: inventory.Rejected, Reason: "insufficient stock for product p1"}.ReserveAgain(), "insufficient stock for product p1"},
		{"reserve a released one", inventory.Reservation{Status: inventory.Released}.ReserveAgain(), "reservation was released"},
		{"release a committed one", func() error { _, err := inventory.Reservation{Status: inventory.Committed}.ReleaseStep(); return err }(), "reservation was committed"},
		{"commit a released one", func() error { _, err := inventory.Reservation{Status: inventory.Released}.CommitStep(); return err }(), "reservation was released"},
	}
	for _, tt := range tests {
		if got := fail.MessageOf(tt.err); got != tt.want {
			t.Errorf("%s: got message %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestShortage(t *testing.T) {
	items := []inventory.Item{{"a", 2}, {"b", 3}}
	tests := []struct {
		name      string
		available map[string]int64
		want      string // empty when nothing is short
	}{
		{"enough", map[string]int64{"a": 2, "b": 3}, ""},
		{"more than enough", map[string]int64{"a": 10, "b": 10}, ""},
		{"first short", map[string]int64{"a": 1, "b": 3}, "insufficient stock for product a"},
		{"second short", map[string]int64{"a": 2, "b": 2}, "insufficient stock for product b"},
		{"unknown product", map[string]int64{"a": 2}, "insufficient stock for product b"},
		{"nothing known", nil, "insufficient stock for product a"},
	}
	for _, tt := range tests {
		reason, short := inventory.Shortage(items, tt.available)
		if short != (tt.want != "") || reason != tt.want {
			t.Errorf("%s: got %q, %v; want %q, %v", tt.name, reason, short, tt.want, tt.want != "")
		}
	}
}

func TestBalanced(t *testing.T) {
	tests := []struct {
		s    inventory.Stock
		want bool
	}{
		{inventory.Stock{Available: 5, Reserved: 3, Sold: 2, Supplied: 10}, true},
		{inventory.Stock{}, true},
		{inventory.Stock{Available: 5, Reserved: 3, Sold: 2, Supplied: 11}, false},
		{inventory.Stock{Available: -1, Reserved: 1, Supplied: 0}, false},
		{inventory.Stock{Available: 1, Reserved: -1, Sold: 1, Supplied: 1}, false},
	}
	for _, tt := range tests {
		if got := tt.s.Balanced(); got != tt.want {
			t.Errorf("%+v.Balanced(): got %v, want %v", tt.s, got, tt.want)
		}
	}
}

// recorder is a Store that records what reaches it, to prove that refused
// input never does.
type recorder struct {
	inventory.Store // nil: any method not overridden panics
	calls           []string
	stocks          []inventory.Stock
	published       []event.Event
}

// Atomic runs fn at once: the recorder has no transactions to nest.
func (r *recorder) Atomic(ctx context.Context, fn func(ctx context.Context) error) error {
	return fn(ctx)
}

func (r *recorder) Publish(_ context.Context, events ...event.Event) error {
	r.published = append(r.published, events...)
	return nil
}

func (r *recorder) SetAvailable(_ context.Context, id string, n int64, _ time.Time) (inventory.Stock, error) {
	r.calls = append(r.calls, "SetAvailable")
	return inventory.Stock{ProductID: id, Available: n, Supplied: n}, nil
}

func (r *recorder) Reserve(_ context.Context, res inventory.Reservation) (inventory.Reservation, bool, error) {
	r.calls = append(r.calls, "Reserve")
	return res, true, nil
}

func (r *recorder) Commit(_ context.Context, id string, _ time.Time) (inventory.Reservation, error) {
	r.calls = append(r.calls, "Commit")
	return inventory.Reservation{OrderID: id}, nil
}

func (r *recorder) Release(_ context.Context, id string, _ time.Time) (inventory.Reservation, error) {
	r.calls = append(r.calls, "Release")
	return inventory.Reservation{OrderID: id}, nil
}

func (r *recorder) ListStock(_ context.Context, after string, limit int) ([]inventory.Stock, error) {
	r.calls = append(r.calls, "ListStock")
	var out []inventory.Stock
	for _, s := range r.stocks {
		if s.ProductID > after && len(out) < limit {
			out = append(out, s)
		}
	}
	return out, nil
}

func TestServiceRefusesBadInputBeforeTheStore(t *testing.T) {
	ctx := context.Background()
	good := []inventory.Item{{"p1", 1}}
	tests := []struct {
		name string
		call func(*inventory.Service) error
		want fail.Kind // Internal stands for success: the store is reached
	}{
		{"set available 0", func(s *inventory.Service) error { _, err := s.SetAvailable(ctx, "p1", 0); return err }, fail.Internal},
		{"set available max", func(s *inventory.Service) error { _, err := s.SetAvailable(ctx, "p1", 1_000_000_000); return err }, fail.Internal},
		{"set available negative", func(s *inventory.Service) error { _, err := s.SetAvailable(ctx, "p1", -1); return err }, fail.Invalid},
		{"set available over max", func(s *inventory.Service) error { _, err := s.SetAvailable(ctx, "p1", 1_000_000_001); return err }, fail.Invalid},
		{"set available bad product", func(s *inventory.Service) error { _, err := s.SetAvailable(ctx, "p 1", 5); return err }, fail.Invalid},
		{"reserve", func(s *inventory.Service) error {
			_, _, err := s.Reserve(ctx, inventory.Parallel, "o1", good)
			return err
		}, fail.Internal},
		{"reserve without order", func(s *inventory.Service) error {
			_, _, err := s.Reserve(ctx, inventory.Parallel, "", good)
			return err
		}, fail.Invalid},
		{"reserve no items", func(s *inventory.Service) error {
			_, _, err := s.Reserve(ctx, inventory.Parallel, "o1", nil)
			return err
		}, fail.Invalid},
		{"commit", func(s *inventory.Service) error { _, err := s.Commit(ctx, inventory.Parallel, "o1"); return err }, fail.Internal},
		{"commit bad order", func(s *inventory.Service) error {
			_, err := s.Commit(ctx, inventory.Parallel, strings.Repeat("o", 101))
			return err
		}, fail.Invalid},
		{"release", func(s *inventory.Service) error { _, err := s.Release(ctx, inventory.Parallel, "o1"); return err }, fail.Internal},
		{"release bad order", func(s *inventory.Service) error { _, err := s.Release(ctx, inventory.Parallel, "o 1"); return err }, fail.Invalid},
		{"list limit 0", func(s *inventory.Service) error { _, err := s.ListStock(ctx, "", 0); return err }, fail.Invalid},
		{"list limit 1001", func(s *inventory.Service) error { _, err := s.ListStock(ctx, "", 1001); return err }, fail.Invalid},
		{"list reservations limit 0", func(s *inventory.Service) error { _, err := s.ListReservations(ctx, "", 0); return err }, fail.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &recorder{}
			err := tt.call(inventory.NewService(store))
			if tt.want == fail.Internal {
				if err != nil || len(store.calls) != 1 {
					t.Errorf("got error %v and store calls %v, want none and one call", err, store.calls)
				}
				return
			}
			if !fail.Is(err, tt.want) {
				t.Errorf("got %v, want kind %v", err, tt.want)
			}
			if len(store.calls) != 0 {
				t.Errorf("store calls after refused input: got %v, want none", store.calls)
			}
		})
	}
}

func TestReservePassesMergedItems(t *testing.T) {
	res, created, err := inventory.NewService(&recorder{}).Reserve(context.Background(), inventory.Parallel, "o1",
		[]inventory.Item{{"b", 1}, {"a", 1}, {"b", 2}})
	if err != nil || !created {
		t.Fatalf("Reserve: got %v, created %v; want no error, created", err, created)
	}
	want := []inventory.Item{{"a", 1}, {"b", 3}}
	if !reflect.DeepEqual(res.Items, want) || res.Status != inventory.Reserved || res.OrderID != "o1" {
		t.Errorf("reservation given to the store: got %+v, want RESERVED for o1 with %v", res, want)
	}
	if res.CreatedAt.IsZero() || !res.CreatedAt.Equal(res.UpdatedAt) {
		t.Errorf("times: got created %v updated %v, want equal and set", res.CreatedAt, res.UpdatedAt)
	}
}

func TestListStockPages(t *testing.T) {
	store := &recorder{stocks: []inventory.Stock{{ProductID: "a"}, {ProductID: "b"}, {ProductID: "c"}}}
	svc := inventory.NewService(store)
	tests := []struct {
		after    string
		limit    int
		wantIDs  []string
		wantNext string
	}{
		{"", 2, []string{"a", "b"}, "b"},
		{"b", 2, []string{"c"}, ""},
		{"", 3, []string{"a", "b", "c"}, ""},
		{"c", 3, nil, ""},
	}
	for _, tt := range tests {
		p, err := svc.ListStock(context.Background(), tt.after, tt.limit)
		if err != nil {
			t.Fatalf("ListStock(%q, %d): %v", tt.after, tt.limit, err)
		}
		var ids []string
		for _, s := range p.Items {
			ids = append(ids, s.ProductID)
		}
		if !reflect.DeepEqual(ids, tt.wantIDs) || p.Next != tt.wantNext {
			t.Errorf("ListStock(%q, %d): got %v next %q, want %v next %q", tt.after, tt.limit, ids, p.Next, tt.wantIDs, tt.wantNext)
		}
	}
}
