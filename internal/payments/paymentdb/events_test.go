package paymentdb_test

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"testing/fstest"
	"time"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/payments"
	"github.com/microshop/microshop/internal/payments/paymentdb"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// outboxIDs returns the ids of the events in db's outbox, oldest first.
func outboxIDs(t *testing.T, db *sqldb.DB) []string {
	t.Helper()
	ids := []string{}
	for _, e := range sqldbtest.Outbox(t, db) {
		ids = append(ids, e.ID)
	}
	return ids
}

func newEvent(t *testing.T, order string) event.Event {
	t.Helper()
	e, err := event.New(payments.Source, payments.TopicPaymentProcessed, payments.TypePaymentProcessed, 1, order,
		payments.PaymentProcessed{OrderID: order})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func sameIDs(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func TestCreateStoresItsEventsOrNone(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		db := openDB(t, d)
		s := paymentdb.New(db)
		first := newEvent(t, "order-1")
		if err := s.Create(ctx, payment("order-1", "u", payments.StatusCaptured), first); err != nil {
			t.Fatalf("Create: %v", err)
		}
		// A second payment for the order is refused, and so is its event.
		err := s.Create(ctx, payment("order-1", "u", payments.StatusCaptured), newEvent(t, "order-1"))
		if !fail.Is(err, fail.Conflict) {
			t.Fatalf("second Create = %v, want fail.Conflict", err)
		}
		// A row the schema refuses takes its event with it.
		bad := payment("order-2", "u", payments.StatusCaptured)
		bad.AmountCents = 0
		if err := s.Create(ctx, bad, newEvent(t, "order-2")); err == nil {
			t.Fatal("Create of a zero-amount capture = nil, want the schema to refuse it")
		}
		if got := outboxIDs(t, db); !sameIDs(got, first.ID) {
			t.Errorf("outbox = %v, want only the committed payment's event %s", got, first.ID)
		}
	})
}

func TestSetStatusStoresEventsOnlyWhenItMoves(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		db := openDB(t, d)
		s := paymentdb.New(db)
		if err := s.Create(ctx, payment("order-1", "u", payments.StatusCaptured)); err != nil {
			t.Fatal(err)
		}
		refunded := newEvent(t, "order-1")
		if _, moved, err := s.SetStatus(ctx, "order-1", payments.StatusCaptured, payments.StatusRefunded, time.Now(), refunded); err != nil || !moved {
			t.Fatalf("SetStatus = moved %v, %v; want moved", moved, err)
		}
		if _, moved, err := s.SetStatus(ctx, "order-1", payments.StatusCaptured, payments.StatusRefunded, time.Now(), newEvent(t, "order-1")); err != nil || moved {
			t.Fatalf("second SetStatus = moved %v, %v; want not moved", moved, err)
		}
		if got := outboxIDs(t, db); !sameIDs(got, refunded.ID) {
			t.Errorf("outbox = %v, want only the event of the move that happened, %s", got, refunded.ID)
		}
	})
}

func TestEventsRollBackWithTheEnclosingTransaction(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		// A consumer runs the store inside its inbox transaction: if that
		// transaction fails after the store's work, neither the payment nor
		// its event may remain.
		ctx := context.Background()
		db := openDB(t, d)
		s := paymentdb.New(db)
		boom := errors.New("the consumer failed after the store's work")
		err := db.Atomic(ctx, func(ctx context.Context) error {
			if err := s.Create(ctx, payment("order-1", "u", payments.StatusCaptured), newEvent(t, "order-1")); err != nil {
				return err
			}
			if err := s.Announce(ctx, newEvent(t, "order-1")); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Atomic = %v, want %v", err, boom)
		}
		if _, err := s.ByOrder(ctx, "order-1"); !fail.Is(err, fail.NotFound) {
			t.Errorf("ByOrder after the rollback = %v, want fail.NotFound", err)
		}
		if got := outboxIDs(t, db); len(got) != 0 {
			t.Errorf("outbox after the rollback = %v, want empty", got)
		}

		// And when it commits, both are there.
		committed := newEvent(t, "order-1")
		if err := db.Atomic(ctx, func(ctx context.Context) error {
			return s.Create(ctx, payment("order-1", "u", payments.StatusCaptured), committed)
		}); err != nil {
			t.Fatal(err)
		}
		if got := outboxIDs(t, db); !sameIDs(got, committed.ID) {
			t.Errorf("outbox after the commit = %v, want %s", got, committed.ID)
		}
	})
}

func TestAnnounceStoresEventsAlone(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		db := openDB(t, d)
		e := newEvent(t, "order-1")
		if err := paymentdb.New(db).Announce(ctx, e); err != nil {
			t.Fatalf("Announce: %v", err)
		}
		if got := outboxIDs(t, db); !sameIDs(got, e.ID) {
			t.Errorf("outbox = %v, want %s", got, e.ID)
		}
	})
}

func TestCards(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		s := paymentdb.New(openDB(t, d))
		if err := s.SaveCard(ctx, "card_1", "4242424242424242", time.Now()); err != nil {
			t.Fatalf("SaveCard: %v", err)
		}
		if got, err := s.CardNumber(ctx, "card_1"); err != nil || got != "4242424242424242" {
			t.Errorf("CardNumber(card_1) = %q, %v; want the saved number", got, err)
		}
		if _, err := s.CardNumber(ctx, "card_2"); !fail.Is(err, fail.NotFound) {
			t.Errorf("CardNumber(unknown) = %v, want fail.NotFound", err)
		}
		if err := s.SaveCard(ctx, "card_1", "4000000000000002", time.Now()); err == nil {
			t.Error("SaveCard under a taken token = nil, want an error: a token stands for one card")
		}
		if got, _ := s.CardNumber(ctx, "card_1"); got != "4242424242424242" {
			t.Errorf("CardNumber(card_1) after a refused save = %q, want the first number", got)
		}
		if err := s.SaveCard(ctx, "card_3", "4242", time.Now()); err == nil {
			t.Error("SaveCard of 4 digits = nil, want the schema to refuse a number that short")
		}
	})
}

func TestMigratingDownWithAnUnknownCardDecline(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		// A decline of an unknown card has no digits; the schema allows that
		// for DECLINED and VOIDED rows only, and rolling back past it drops
		// such rows rather than failing.
		ctx := context.Background()
		db := openDB(t, d)
		s := paymentdb.New(db)
		unknown := payment("order-1", "u", payments.StatusDeclined)
		unknown.CardLast4, unknown.DeclineReason = "", payments.ReasonUnknownCard
		if err := s.Create(ctx, unknown); err != nil {
			t.Fatalf("Create of an unknown-card decline: %v", err)
		}
		if err := s.SaveCard(ctx, "card_1", "4242424242424242", time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := db.MigrateDown(ctx, paymentdb.Migrations); err != nil {
			t.Fatalf("MigrateDown with an unknown-card decline stored: %v", err)
		}
		if err := db.Migrate(ctx, paymentdb.Migrations); err != nil {
			t.Fatalf("Migrate again: %v", err)
		}
		if _, err := s.CardNumber(ctx, "card_1"); !fail.Is(err, fail.NotFound) {
			t.Errorf("CardNumber after down and up = %v, want fail.NotFound (a fresh table)", err)
		}
		if err := s.Create(ctx, unknown); err != nil {
			t.Errorf("Create of an unknown-card decline after down and up: %v", err)
		}
	})
}

func TestCardsMigrationKeepsThePayments(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		// A database made before cards existed keeps its payments when the
		// payments table is rebuilt to allow unknown-card declines.
		ctx := context.Background()
		db := sqldbtest.OpenOn(t, d, "payments")
		first := "migrations/" + string(d) + "/00001_payments.sql"
		body, err := fs.ReadFile(paymentdb.Migrations, first)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Migrate(ctx, fstest.MapFS{first: {Data: body}}); err != nil {
			t.Fatalf("migrating to the first version: %v", err)
		}
		old := payment("order-1", "user-1", payments.StatusCaptured)
		if _, err := db.ExecContext(ctx, `INSERT INTO payments (id, order_id, user_id, amount_cents, currency, status, card_last4, decline_reason, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, old.ID, old.OrderID, old.UserID, old.AmountCents, old.Currency, string(old.Status),
			old.CardLast4, "", old.CreatedAt.Format(time.RFC3339Nano), old.UpdatedAt.Format(time.RFC3339Nano)); err != nil {
			t.Fatal(err)
		}
		if err := db.Migrate(ctx, paymentdb.Migrations); err != nil {
			t.Fatalf("migrating to the latest version: %v", err)
		}
		got, err := paymentdb.New(db).ByOrder(ctx, "order-1")
		if err != nil || got.ID != old.ID || got.Status != old.Status || got.AmountCents != old.AmountCents || got.CardLast4 != old.CardLast4 {
			t.Errorf("ByOrder after the migration = %+v, %v; want %+v", got, err, old)
		}
		page, err := paymentdb.New(db).List(ctx, payments.ListQuery{UserID: "user-1", Limit: 10})
		if err != nil || len(page) != 1 {
			t.Errorf("List by user after the migration = %d payments, %v; want 1 (the index is back)", len(page), err)
		}
	})
}
