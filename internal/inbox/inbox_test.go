package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// wallet is a consuming service's own schema: credits per account.
var wallet = fstest.MapFS{
	"migrations/sqlite/00001_wallet.sql":   {Data: []byte(walletUp("TEXT", ""))},
	"migrations/postgres/00001_wallet.sql": {Data: []byte(walletUp("TEXT", ""))},
	"migrations/mysql/00001_wallet.sql":    {Data: []byte(walletUp("VARCHAR(64)", " ENGINE=InnoDB"))},
}

func walletUp(key, options string) string {
	return `-- +goose Up
CREATE TABLE credits (account ` + key + ` PRIMARY KEY, amount INTEGER NOT NULL)` + options + `;
-- +goose Down
DROP TABLE credits;
`
}

// openDB opens a consuming service's database on dialect d.
func openDB(t *testing.T, d sqldb.Dialect) *sqldb.DB {
	t.Helper()
	return sqldbtest.OpenMessagingOn(t, d, "svc", wallet)
}

type credited struct {
	Account string `json:"account"`
	Amount  int    `json:"amount"`
}

func newEvent(t *testing.T, account string, amount int) event.Event {
	t.Helper()
	e, err := event.New("payments", "payments.payment.processed", "PaymentProcessed", 1, account, credited{account, amount})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// credit is the consumer's effect, written as store code is: through db,
// with an InTx of its own, which joins the inbox's transaction.
func credit(db *sqldb.DB) inbox.Func {
	return func(ctx context.Context, e event.Event) error {
		var c credited
		if err := e.Decode(&c); err != nil {
			return err
		}
		return db.InTx(ctx, func(tx *sqldb.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO credits (account, amount) VALUES (?, ?) `+
				db.Dialect.OnConflictUpdate("account")+` amount = credits.amount + `+db.Dialect.Excluded("amount"), c.Account, c.Amount)
			return err
		})
	}
}

func balance(t *testing.T, db *sqldb.DB, account string) int {
	t.Helper()
	var n int
	err := db.QueryRowContext(context.Background(), `SELECT amount FROM credits WHERE account = ?`, account).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func count(t *testing.T, db *sqldb.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// deliver hands e to h as a broker does: up to maxDeliver attempts, then to
// the dead-letter handler. It reports how many attempts were made and
// whether the event was dead-lettered.
func deliver(t *testing.T, h bus.Handler, dead bus.DeadLetterHandler, e event.Event, maxDeliver int) (int, bool) {
	t.Helper()
	ctx := context.Background()
	var last error
	for attempt := 1; attempt <= maxDeliver; attempt++ {
		if last = h(ctx, bus.Delivery{Event: e, Attempt: attempt}); last == nil {
			return attempt, false
		}
	}
	if err := dead(ctx, bus.Delivery{Event: e, Attempt: maxDeliver}, nil, last); err != nil {
		t.Fatalf("dead-letter handler: %v", err)
	}
	return maxDeliver, true
}

func counter(t *testing.T, in *inbox.Inbox, name, group string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(in.Collectors()...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "group" && l.GetValue() == group {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestEveryEventDeliveredThreeTimesChangesTheEffectOnce(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		in := inbox.New(db, "wallet", nil)
		h := in.Handle("wallet", credit(db))
		var events []event.Event
		for i := range 20 {
			events = append(events, newEvent(t, fmt.Sprint("acct-", i%4), i+1))
		}
		// Three deliveries of each, the copies racing each other as
		// redeliveries from several broker connections do.
		var wg sync.WaitGroup
		errs := make(chan error, 3*len(events))
		for range 3 {
			for _, e := range events {
				wg.Go(func() { errs <- h(context.Background(), bus.Delivery{Event: e, Attempt: 1}) })
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("delivery failed: %v", err)
			}
		}
		for a := range 4 {
			want := 0
			for i := a; i < 20; i += 4 {
				want += i + 1
			}
			if got := balance(t, db, fmt.Sprint("acct-", a)); got != want {
				t.Errorf("acct-%d credits = %d, want %d (each event once)", a, got, want)
			}
		}
		if got := count(t, db, "inbox"); got != 20 {
			t.Errorf("inbox rows = %d, want 20", got)
		}
		if got := counter(t, in, "inbox_duplicates_total", "wallet"); got != 40 {
			t.Errorf("inbox_duplicates_total = %v, want 40", got)
		}
		if got := counter(t, in, "inbox_applied_total", "wallet"); got != 20 {
			t.Errorf("inbox_applied_total = %v, want 20", got)
		}
	})
}

func TestGroupsApplyTheSameEventEachOnce(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		in := inbox.New(db, "", nil)
		a := in.Handle("a", credit(db))
		b := in.Handle("b", credit(db))
		e := newEvent(t, "acct", 5)
		for _, h := range []bus.Handler{a, b, a, b} {
			if err := h(context.Background(), bus.Delivery{Event: e, Attempt: 1}); err != nil {
				t.Fatal(err)
			}
		}
		if got := balance(t, db, "acct"); got != 10 {
			t.Errorf("credits = %d, want 10: once per group", got)
		}
	})
}

func TestAFailedEffectIsUndoneWithItsRecord(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		in := inbox.New(db, "", nil)
		var calls atomic.Int32
		h := in.Handle("wallet", func(ctx context.Context, e event.Event) error {
			if err := credit(db)(ctx, e); err != nil {
				return err
			}
			// Publishing in the same transaction: undone with the rest.
			reply := newEvent(t, "reply", 0)
			if err := outbox.Add(ctx, db, reply); err != nil {
				return err
			}
			if calls.Add(1) == 1 {
				return errors.New("downstream hiccup")
			}
			return nil
		})
		e := newEvent(t, "acct", 7)
		if err := h(context.Background(), bus.Delivery{Event: e, Attempt: 1}); err == nil {
			t.Fatal("the failing attempt returned nil")
		}
		if got, rows, sent := balance(t, db, "acct"), count(t, db, "inbox"), count(t, db, "outbox"); got != 0 || rows != 0 || sent != 0 {
			t.Fatalf("after a failed attempt: credits %d, inbox rows %d, outbox rows %d; want none of them", got, rows, sent)
		}
		if err := h(context.Background(), bus.Delivery{Event: e, Attempt: 2}); err != nil {
			t.Fatal(err)
		}
		if got, rows, sent := balance(t, db, "acct"), count(t, db, "inbox"), count(t, db, "outbox"); got != 7 || rows != 1 || sent != 1 {
			t.Errorf("after the retry: credits %d, inbox rows %d, outbox rows %d; want 7, 1, 1", got, rows, sent)
		}
	})
}

func TestAnEventWithoutAnIDIsRefused(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		in := inbox.New(db, "", nil)
		h := in.Handle("wallet", credit(db))
		e := newEvent(t, "acct", 7)
		e.ID = ""
		if err := h(context.Background(), bus.Delivery{Event: e, Attempt: 1}); err == nil {
			t.Fatal("an event without an id was applied")
		}
		if got := balance(t, db, "acct"); got != 0 {
			t.Errorf("credits = %d, want 0", got)
		}
	})
}

func TestPoisonEventIsDeadLetteredOnceListedAndReplayed(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		in := inbox.New(db, "wallet", nil)
		var broken atomic.Bool
		broken.Store(true)
		apply := credit(db)
		h := in.Handle("wallet", func(ctx context.Context, e event.Event) error {
			if broken.Load() {
				return errors.New("account is frozen")
			}
			return apply(ctx, e)
		})
		dead := in.DeadLetters("wallet")
		poison := newEvent(t, "acct", 9)
		if attempts, dl := deliver(t, h, dead, poison, 3); !dl || attempts != 3 {
			t.Fatalf("poison: %d attempts, dead-lettered %v; want 3 and true", attempts, dl)
		}
		// The broker hands the same dead letter over again (its ack was lost).
		if err := dead(context.Background(), bus.Delivery{Event: poison, Attempt: 3}, nil, errors.New("account is frozen")); err != nil {
			t.Fatal(err)
		}
		if got := count(t, db, "dead_letters"); got != 1 {
			t.Fatalf("dead letters = %d, want 1", got)
		}
		if got := counter(t, in, "dead_letters_total", "wallet"); got != 1 {
			t.Errorf("dead_letters_total = %v, want 1", got)
		}
		list, next, err := in.List(context.Background(), "", 10)
		if err != nil || len(list) != 1 || next != "" {
			t.Fatalf("List = %d items, next %q, %v; want 1, none", len(list), next, err)
		}
		got := list[0]
		if got.Group != "wallet" || got.EventID != poison.ID || got.Type != poison.Type || got.Topic != poison.Topic ||
			got.Attempts != 3 || !strings.Contains(got.Error, "account is frozen") || got.Replayed() || got.Event == nil {
			t.Fatalf("dead letter = %+v, want wallet's %s after 3 attempts with its error, not replayed", got, poison.ID)
		}

		// Replaying while the cause remains fails and keeps it waiting.
		if _, err := in.Replay(context.Background(), got.ID); fail.KindOf(err) != fail.Conflict {
			t.Fatalf("Replay while still broken = %v, want a conflict", err)
		}
		still, err := in.Get(context.Background(), got.ID)
		if err != nil || still.Replayed() || still.Attempts != 4 {
			t.Fatalf("after a failed replay: %+v, %v; want 4 attempts, not replayed", still, err)
		}
		if b := balance(t, db, "acct"); b != 0 {
			t.Fatalf("credits = %d after a failed replay, want 0", b)
		}

		broken.Store(false)
		replayed, err := in.Replay(context.Background(), got.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !replayed.Replayed() {
			t.Errorf("replayed dead letter = %+v, want it marked replayed", replayed)
		}
		// A second replay and a late redelivery go through the inbox: no
		// second effect, and the first replay's time stands.
		again, err := in.Replay(context.Background(), got.ID)
		if err != nil || !again.ReplayedAt.Equal(replayed.ReplayedAt) {
			t.Errorf("second Replay = %+v, %v; want it unchanged", again, err)
		}
		if err := h(context.Background(), bus.Delivery{Event: poison, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
		if b := balance(t, db, "acct"); b != 9 {
			t.Errorf("credits = %d, want 9: the event once", b)
		}
	})
}

func TestUnreadableDeliveryIsKeptButCannotBeReplayed(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		in := inbox.New(db, "", nil)
		in.Handle("wallet", credit(db))
		dead := in.DeadLetters("wallet")
		raw := []byte(`{"id": 42, garbage`)
		for range 2 {
			if err := dead(context.Background(), bus.Delivery{}, raw, errors.New("decoding: invalid character")); err != nil {
				t.Fatal(err)
			}
		}
		list, _, err := in.List(context.Background(), "", 10)
		if err != nil || len(list) != 1 {
			t.Fatalf("List = %d items, %v; want 1", len(list), err)
		}
		if !reflect.DeepEqual(list[0].Raw, raw) || list[0].Event != nil || list[0].EventID != "" {
			t.Errorf("dead letter = %+v, want the raw bytes and no event", list[0])
		}
		if _, err := in.Replay(context.Background(), list[0].ID); fail.KindOf(err) != fail.Conflict {
			t.Errorf("Replay = %v, want a conflict", err)
		}
	})
}

func TestReplayNeedsTheGroupsHandler(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		in := inbox.New(db, "", nil)
		deliver(t, in.Handle("wallet", func(context.Context, event.Event) error { return errors.New("no") }),
			in.DeadLetters("wallet"), newEvent(t, "acct", 1), 1)
		list, _, err := in.List(context.Background(), "", 10)
		if err != nil || len(list) != 1 {
			t.Fatalf("List = %d items, %v; want 1", len(list), err)
		}
		other := inbox.New(db, "", nil) // a process that runs no wallet consumer
		if _, err := other.Replay(context.Background(), list[0].ID); fail.KindOf(err) != fail.Conflict {
			t.Errorf("Replay without the group's handler = %v, want a conflict", err)
		}
		if _, err := in.Replay(context.Background(), "no-such-id"); fail.KindOf(err) != fail.NotFound {
			t.Errorf("Replay of an unknown id = %v, want not found", err)
		}
	})
}

func TestListPagesInOrder(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		in := inbox.New(db, "", nil)
		dead := in.DeadLetters("wallet")
		var want []string
		for i := range 5 {
			e := newEvent(t, "acct", i)
			want = append(want, e.ID)
			if err := dead(context.Background(), bus.Delivery{Event: e, Attempt: 5}, nil, errors.New("no")); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		after := ""
		for page := 0; ; page++ {
			list, next, err := in.List(context.Background(), after, 2)
			if err != nil {
				t.Fatal(err)
			}
			if wantLen := min(2, 5-2*page); len(list) != wantLen {
				t.Fatalf("page %d has %d items, want %d", page, len(list), wantLen)
			}
			for _, dl := range list {
				got = append(got, dl.EventID)
			}
			if next == "" {
				break
			}
			after = next
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("pages hold %q, want %q", got, want)
		}
	})
}

func TestAGroupHasOneHandler(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		in := inbox.New(openDB(t, d), "", nil)
		in.Handle("wallet", func(context.Context, event.Event) error { return nil })
		defer func() {
			if recover() == nil {
				t.Error("a second handler for one group was accepted")
			}
		}()
		in.Handle("wallet", func(context.Context, event.Event) error { return nil })
	})
}
