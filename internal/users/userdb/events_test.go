package userdb_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
	"github.com/microshop/microshop/internal/users"
	"github.com/microshop/microshop/internal/users/userdb"
)

// openWithOutbox opens a users database with the messaging tables too.
func openWithOutbox(t *testing.T, d sqldb.Dialect) *sqldb.DB {
	t.Helper()
	return sqldbtest.OpenMessagingOn(t, d, "users", userdb.Migrations)
}

func account(email string) users.User {
	return users.User{
		ID: uuid.Must(uuid.NewV7()).String(), Email: email, Name: "Ada", Role: users.RoleCustomer,
		PasswordHash: []byte("not a real hash"), CreatedAt: time.Now().UTC(),
	}
}

func announce(t *testing.T, u users.User) event.Event {
	t.Helper()
	e, err := event.New(users.Source, users.TopicUserCreated, users.TypeUserCreated, 1, u.ID, users.UserCreated{UserID: u.ID, Name: u.Name})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func outboxCount(t *testing.T, db *sqldb.DB, eventID string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM outbox WHERE event_id = ?`, eventID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCreateStoresItsEventIfAndOnlyIfTheUserIs(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		db := openWithOutbox(t, d)
		store := userdb.New(db)

		ada := account("ada@example.com")
		created := announce(t, ada)
		if err := store.Create(ctx, ada, created); err != nil {
			t.Fatalf("Create: %v", err)
		}
		if got := outboxCount(t, db, created.ID); got != 1 {
			t.Errorf("outbox rows for the created user's event = %d, want 1", got)
		}

		again := account("ada@example.com")
		refused := announce(t, again)
		if err := store.Create(ctx, again, refused); !fail.Is(err, fail.Conflict) {
			t.Fatalf("Create of a taken email = %v, want fail.Conflict", err)
		}
		if got := outboxCount(t, db, refused.ID); got != 0 {
			t.Errorf("outbox rows for the refused user's event = %d, want 0", got)
		}

		bob := account("bob@example.com")
		rolledBack := announce(t, bob)
		boom := errors.New("failed after the store's work")
		err := db.Atomic(ctx, func(ctx context.Context) error {
			if err := store.Create(ctx, bob, rolledBack); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Atomic = %v, want %v", err, boom)
		}
		if got := outboxCount(t, db, rolledBack.ID); got != 0 {
			t.Errorf("outbox rows after the rollback = %d, want 0", got)
		}
		if _, err := store.ByID(ctx, bob.ID); !fail.Is(err, fail.NotFound) {
			t.Errorf("ByID after the rollback = %v, want fail.NotFound", err)
		}
	})
}

func TestCreateWithAnEventNeedsTheOutbox(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		// Without the messaging tables an event cannot be stored, and then the
		// user is not created either: no account goes unannounced.
		ctx := context.Background()
		db := sqldbtest.OpenOn(t, d, "users", userdb.Migrations)
		store := userdb.New(db)
		ada := account("ada@example.com")
		if err := store.Create(ctx, ada, announce(t, ada)); err == nil {
			t.Fatal("Create with an event and no outbox = nil, want an error")
		}
		if _, err := store.ByID(ctx, ada.ID); !fail.Is(err, fail.NotFound) {
			t.Errorf("ByID = %v, want fail.NotFound: the user must not outlive its event", err)
		}
	})
}

func renaming(t *testing.T, id, name string) users.Renaming {
	t.Helper()
	e, err := event.New(users.Source, users.TopicUserRenamed, users.TypeUserRenamed, 1, id, users.UserRenamed{UserID: id, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return users.Renaming{UserID: id, Name: name, Event: e}
}

// TestRenameStoresTheNameAndItsEventTogether: a rename and its event commit
// together or not at all; a rename to the same name stores neither; an
// unknown user is reported, not created.
func TestRenameStoresTheNameAndItsEventTogether(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		db := openWithOutbox(t, d)
		store := userdb.New(db)
		ada, bob := account("ada@example.com"), account("bob@example.com")
		for _, u := range []users.User{ada, bob} {
			if err := store.Create(ctx, u); err != nil {
				t.Fatal(err)
			}
		}

		toKing, same, ghost := renaming(t, ada.ID, "Ada King"), renaming(t, bob.ID, bob.Name), renaming(t, "no-such-user", "Ghost")
		missing, err := store.Rename(ctx, toKing, same, ghost)
		if err != nil {
			t.Fatalf("Rename: %v", err)
		}
		if len(missing) != 1 || missing[0] != "no-such-user" {
			t.Errorf("missing = %v, want [no-such-user]", missing)
		}
		if got, _ := store.ByID(ctx, ada.ID); got.Name != "Ada King" {
			t.Errorf("ada's name = %q, want %q", got.Name, "Ada King")
		}
		if got := outboxCount(t, db, toKing.Event.ID); got != 1 {
			t.Errorf("outbox rows for the rename = %d, want 1", got)
		}
		if got := outboxCount(t, db, same.Event.ID); got != 0 {
			t.Errorf("outbox rows for a rename to the same name = %d, want 0", got)
		}
		if got := outboxCount(t, db, ghost.Event.ID); got != 0 {
			t.Errorf("outbox rows for an unknown user's rename = %d, want 0", got)
		}
		if _, err := store.ByID(ctx, "no-such-user"); !fail.Is(err, fail.NotFound) {
			t.Errorf("ByID(unknown) after its rename = %v, want fail.NotFound", err)
		}

		// Rolled back with the unit around it: neither the name nor the event stays.
		rolledBack := renaming(t, bob.ID, "Robert")
		boom := errors.New("failed after the store's work")
		err = db.Atomic(ctx, func(ctx context.Context) error {
			if _, err := store.Rename(ctx, rolledBack); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Atomic = %v, want %v", err, boom)
		}
		if got, _ := store.ByID(ctx, bob.ID); got.Name != bob.Name {
			t.Errorf("bob's name = %q after the rollback, want %q", got.Name, bob.Name)
		}
		if got := outboxCount(t, db, rolledBack.Event.ID); got != 0 {
			t.Errorf("outbox rows after the rollback = %d, want 0", got)
		}
	})
}

// TestConcurrentRenamesToOneNameAnnounceItOnce races renames of one user to
// one new name: the name changes once, so exactly one event is stored.
func TestConcurrentRenamesToOneNameAnnounceItOnce(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		db := openWithOutbox(t, d)
		store := userdb.New(db)
		ada := account("ada@example.com")
		if err := store.Create(ctx, ada); err != nil {
			t.Fatal(err)
		}
		const racers = 8
		var wg sync.WaitGroup
		errs := make(chan error, racers)
		for range racers {
			wg.Go(func() {
				_, err := store.Rename(ctx, renaming(t, ada.ID, "Ada King"))
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("Rename: %v", err)
			}
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox WHERE topic = ?`, users.TopicUserRenamed).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("UserRenamed events stored = %d, want 1", n)
		}
	})
}
