package inbox_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// gauge reads the dead_letters gauge of group, and how many groups it has.
func gauge(t *testing.T, in *inbox.Inbox, group string) (value float64, groups int) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(in.Collectors()...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	value = -1
	for _, f := range families {
		if f.GetName() != "dead_letters" {
			continue
		}
		if f.GetType().String() != "GAUGE" {
			t.Fatalf("dead_letters is a %s, want a gauge", f.GetType())
		}
		for _, m := range f.GetMetric() {
			groups++
			for _, l := range m.GetLabel() {
				if l.GetName() == "group" && l.GetValue() == group {
					value = m.GetGauge().GetValue()
				}
			}
		}
	}
	return value, groups
}

func TestDeadLettersGaugeIsTheQueueAsItIsNow(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		in := inbox.New(db, "wallet", nil)
		broken := true
		apply := credit(db)
		h := in.Handle("wallet", func(ctx context.Context, e event.Event) error {
			if broken {
				return errors.New("account is frozen")
			}
			return apply(ctx, e)
		})
		in.Handle("audit", func(context.Context, event.Event) error { return nil })
		if v, groups := gauge(t, in, "wallet"); v != 0 || groups != 2 {
			t.Fatalf("before any dead letter: wallet = %v over %d groups, want 0 over 2 (every group present)", v, groups)
		}
		for i, account := range []string{"a", "b"} {
			if _, dl := deliver(t, h, in.DeadLetters("wallet"), newEvent(t, account, 1), 2); !dl {
				t.Fatalf("poison %d was not dead-lettered", i)
			}
		}
		if v, _ := gauge(t, in, "wallet"); v != 2 {
			t.Fatalf("dead_letters{group=wallet} = %v, want 2", v)
		}
		if v, _ := gauge(t, in, "audit"); v != 0 {
			t.Errorf("dead_letters{group=audit} = %v, want 0", v)
		}
		broken = false
		list, _, err := in.List(context.Background(), "", 10)
		if err != nil || len(list) != 2 {
			t.Fatalf("List = %d, %v; want 2", len(list), err)
		}
		if _, err := in.Replay(context.Background(), list[0].ID); err != nil {
			t.Fatal(err)
		}
		if v, _ := gauge(t, in, "wallet"); v != 1 {
			t.Errorf("after one replay dead_letters{group=wallet} = %v, want 1", v)
		}
		// The counter beside it counts what was ever dead-lettered.
		if got := counter(t, in, "dead_letters_total", "wallet"); got != 2 {
			t.Errorf("dead_letters_total = %v, want 2", got)
		}
	})
}

func TestEveryGroupsCountersExistFromTheStart(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		in := inbox.New(openDB(t, d), "wallet", nil)
		in.Handle("wallet", func(context.Context, event.Event) error { return nil })
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(in.Collectors()...)
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		series := map[string]int{}
		for _, f := range families {
			series[f.GetName()] += len(f.GetMetric())
		}
		for _, name := range []string{"inbox_applied_total", "inbox_duplicates_total", "dead_letters_total", "dead_letters"} {
			if series[name] != 1 {
				t.Errorf("%s has %d series before any event, want 1 (the group's, at zero)", name, series[name])
			}
		}
	})
}

func TestAfterCommitRunsOnceForAnEffectThatCommitted(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		in := inbox.New(db, "wallet", nil)
		apply := credit(db)
		var (
			ran         int
			seenBalance int
			failNext    = true
		)
		h := in.Handle("wallet", func(ctx context.Context, e event.Event) error {
			if err := apply(ctx, e); err != nil {
				return err
			}
			inbox.AfterCommit(ctx, func() {
				ran++
				seenBalance = balance(t, db, "acct") // outside the transaction: only a committed effect shows
			})
			if failNext {
				failNext = false
				return errors.New("crashed after the effect") // rolls the effect back, and with it what was left to run
			}
			return nil
		})
		e := newEvent(t, "acct", 5)
		if err := h(context.Background(), bus.Delivery{Event: e, Attempt: 1}); err == nil {
			t.Fatal("the first attempt succeeded, want it to fail")
		}
		if ran != 0 {
			t.Fatalf("after a rolled-back effect AfterCommit ran %d times, want 0", ran)
		}
		for attempt := 2; attempt <= 4; attempt++ { // a redelivery, then two duplicates
			if err := h(context.Background(), bus.Delivery{Event: e, Attempt: attempt}); err != nil {
				t.Fatal(err)
			}
		}
		if ran != 1 || seenBalance != 5 {
			t.Errorf("AfterCommit ran %d times and saw balance %d, want once, after the commit (5)", ran, seenBalance)
		}

		now := false
		inbox.AfterCommit(context.Background(), func() { now = true })
		if !now {
			t.Error("AfterCommit outside a delivery did not run at once")
		}
	})
}
