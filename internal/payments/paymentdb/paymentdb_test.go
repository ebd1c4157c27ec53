package paymentdb_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/payments"
	"github.com/microshop/microshop/internal/payments/paymentdb"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// openDB opens a fresh payments database of dialect d, with the messaging
// tables.
func openDB(t *testing.T, d sqldb.Dialect) *sqldb.DB {
	t.Helper()
	return sqldbtest.OpenMessagingOn(t, d, "payments", paymentdb.Migrations)
}

func payment(order, user string, status payments.Status) payments.Payment {
	now := time.Now().UTC()
	return payments.Payment{
		ID: uuid.Must(uuid.NewV7()).String(), OrderID: order, UserID: user, AmountCents: 1234, Currency: "USD",
		Status: status, CardLast4: "4242", CreatedAt: now, UpdatedAt: now,
	}
}

func TestMigrateDownAndUpAgain(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		db := openDB(t, d)
		if err := db.MigrateDown(ctx, paymentdb.Migrations); err != nil {
			t.Fatalf("MigrateDown: %v", err)
		}
		if _, err := paymentdb.New(db).ByOrder(ctx, "o"); err == nil || fail.Is(err, fail.NotFound) {
			t.Fatalf("ByOrder with no table = %v, want a storage error", err)
		}
		if err := db.Migrate(ctx, paymentdb.Migrations); err != nil {
			t.Fatalf("Migrate again: %v", err)
		}
		if err := db.Migrate(ctx, paymentdb.Migrations); err != nil {
			t.Fatalf("Migrate when up to date: %v", err)
		}
		s := paymentdb.New(db)
		if err := s.Create(ctx, payment("o", "u", payments.StatusCaptured)); err != nil {
			t.Fatalf("Create after migrating again: %v", err)
		}
	})
}

func TestCreateAndRead(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		s := paymentdb.New(openDB(t, d))
		want := payment("order-1", "user-1", payments.StatusDeclined)
		want.DeclineReason = "card_declined"
		if err := s.Create(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := s.ByOrder(ctx, "order-1")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != want.ID || got.UserID != want.UserID || got.AmountCents != want.AmountCents ||
			got.Currency != want.Currency || got.Status != want.Status || got.CardLast4 != want.CardLast4 ||
			got.DeclineReason != want.DeclineReason || !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
			t.Errorf("ByOrder = %+v, want %+v", got, want)
		}
		if _, err := s.ByOrder(ctx, "order-2"); !fail.Is(err, fail.NotFound) {
			t.Errorf("ByOrder(unknown) = %v, want fail.NotFound", err)
		}
	})
}

func TestOnePaymentPerOrder(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		s := paymentdb.New(openDB(t, d))
		first := payment("order-1", "user-1", payments.StatusCaptured)
		if err := s.Create(ctx, first); err != nil {
			t.Fatal(err)
		}
		err := s.Create(ctx, payment("order-1", "user-1", payments.StatusCaptured))
		if !fail.Is(err, fail.Conflict) {
			t.Fatalf("second Create for the order = %v, want fail.Conflict", err)
		}
		got, err := s.ByOrder(ctx, "order-1")
		if err != nil || got.ID != first.ID {
			t.Errorf("ByOrder = %s, %v; want the first payment %s", got.ID, err, first.ID)
		}
	})
}

func TestSchemaRefusesBadRows(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		s := paymentdb.New(openDB(t, d))
		tests := []struct {
			name string
			edit func(*payments.Payment)
		}{
			{"unknown status", func(p *payments.Payment) { p.Status = "PENDING" }},
			{"zero amount", func(p *payments.Payment) { p.AmountCents = 0 }},
			{"huge amount", func(p *payments.Payment) { p.AmountCents = 100_000_001 }},
			{"full card number", func(p *payments.Payment) { p.CardLast4 = "4242424242424242" }},
			{"captured without card digits", func(p *payments.Payment) { p.CardLast4 = "" }},
		}
		for _, tt := range tests {
			p := payment("order-"+tt.name, "user-1", payments.StatusCaptured)
			tt.edit(&p)
			if err := s.Create(ctx, p); err == nil {
				t.Errorf("%s: Create = nil, want the schema to refuse it", tt.name)
			}
		}
	})
}

func TestSetStatusMovesOnlyFromTheExpectedStatus(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		s := paymentdb.New(openDB(t, d))
		p := payment("order-1", "user-1", payments.StatusCaptured)
		if err := s.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		later := p.UpdatedAt.Add(time.Minute)

		got, moved, err := s.SetStatus(ctx, "order-1", payments.StatusCaptured, payments.StatusRefunded, later)
		if err != nil || !moved || got.Status != payments.StatusRefunded || !got.UpdatedAt.Equal(later) {
			t.Fatalf("SetStatus(CAPTURED->REFUNDED) = %s at %v, moved %v, %v; want REFUNDED at %v, moved", got.Status, got.UpdatedAt, moved, err, later)
		}
		// Not CAPTURED any more: a second move changes nothing and answers the row.
		got, moved, err = s.SetStatus(ctx, "order-1", payments.StatusCaptured, payments.StatusDeclined, later.Add(time.Hour))
		if err != nil || moved || got.Status != payments.StatusRefunded || !got.UpdatedAt.Equal(later) {
			t.Errorf("SetStatus from a stale status = %s at %v, moved %v, %v; want REFUNDED at %v, unchanged", got.Status, got.UpdatedAt, moved, err, later)
		}
		if _, _, err := s.SetStatus(ctx, "nobody", payments.StatusCaptured, payments.StatusRefunded, later); !fail.Is(err, fail.NotFound) {
			t.Errorf("SetStatus(unknown) = %v, want fail.NotFound", err)
		}
	})
}

func TestList(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		s := paymentdb.New(openDB(t, d))
		var all, mine []string
		for i, user := range []string{"a", "b", "a", "a", "b"} {
			p := payment("order-"+string(rune('0'+i)), user, payments.StatusCaptured)
			if err := s.Create(ctx, p); err != nil {
				t.Fatal(err)
			}
			all = append(all, p.ID)
			if user == "a" {
				mine = append(mine, p.ID)
			}
		}
		ids := func(ps []payments.Payment) []string {
			out := []string{}
			for _, p := range ps {
				out = append(out, p.ID)
			}
			return out
		}
		tests := []struct {
			name string
			q    payments.ListQuery
			want []string
		}{
			{"everyone", payments.ListQuery{Limit: 10}, all},
			{"limited", payments.ListQuery{Limit: 2}, all[:2]},
			{"after", payments.ListQuery{After: all[1], Limit: 10}, all[2:]},
			{"one user", payments.ListQuery{UserID: "a", Limit: 10}, mine},
			{"one user after", payments.ListQuery{UserID: "a", After: mine[0], Limit: 1}, mine[1:2]},
			{"nobody", payments.ListQuery{UserID: "c", Limit: 10}, []string{}},
			{"past the end", payments.ListQuery{After: all[4], Limit: 10}, []string{}},
		}
		for _, tt := range tests {
			got, err := s.List(ctx, tt.q)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if g, w := ids(got), tt.want; !slices.Equal(g, w) {
				t.Errorf("%s: List = %v, want %v", tt.name, g, w)
			}
		}
	})
}
