package userdb_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
	"github.com/microshop/microshop/internal/users"
	"github.com/microshop/microshop/internal/users/userdb"
)

// openDB opens a migrated users database on dialect d.
func openDB(t *testing.T, d sqldb.Dialect) *sqldb.DB {
	t.Helper()
	return sqldbtest.OpenOn(t, d, "users", userdb.Migrations)
}

func newUser(email string) users.User {
	return users.User{
		ID:           uuid.Must(uuid.NewV7()).String(),
		Email:        email,
		Name:         "Ada",
		Role:         users.RoleCustomer,
		PasswordHash: []byte("$2a$10$not-a-real-hash"),
		CreatedAt:    time.Date(2025, 3, 1, 12, 30, 45, 123456789, time.UTC),
	}
}

func TestMigrationsGoDownAndUpAgain(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		db := openDB(t, d)
		store := userdb.New(db)
		if err := store.Create(ctx, newUser("ada@example.com")); err != nil {
			t.Fatalf("Create after Migrate: %v", err)
		}
		if err := db.MigrateDown(ctx, userdb.Migrations); err != nil {
			t.Fatalf("MigrateDown: %v", err)
		}
		if err := store.Create(ctx, newUser("bob@example.com")); err == nil {
			t.Fatal("Create succeeded after MigrateDown: the users table is still there")
		}
		if err := db.Migrate(ctx, userdb.Migrations); err != nil {
			t.Fatalf("Migrate again: %v", err)
		}
		if err := db.Migrate(ctx, userdb.Migrations); err != nil {
			t.Fatalf("Migrate on an up-to-date schema: %v", err)
		}
		if _, err := store.ByEmail(ctx, "ada@example.com"); !fail.Is(err, fail.NotFound) {
			t.Errorf("ByEmail after Down/Up = %v, want not found: the table should start empty", err)
		}
		if err := store.Create(ctx, newUser("ada@example.com")); err != nil {
			t.Errorf("Create after Down/Up: %v", err)
		}
	})
}

func TestCreateThenReadBack(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		store := userdb.New(openDB(t, d))
		want := newUser("ada@example.com")
		want.Role = users.RoleAdmin
		if err := store.Create(ctx, want); err != nil {
			t.Fatal(err)
		}
		for name, read := range map[string]func() (users.User, error){
			"ByID":    func() (users.User, error) { return store.ByID(ctx, want.ID) },
			"ByEmail": func() (users.User, error) { return store.ByEmail(ctx, want.Email) },
		} {
			got, err := read()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got.ID != want.ID || got.Email != want.Email || got.Name != want.Name || got.Role != want.Role ||
				string(got.PasswordHash) != string(want.PasswordHash) || !got.CreatedAt.Equal(want.CreatedAt) {
				t.Errorf("%s = %+v, want %+v", name, got, want)
			}
		}
	})
}

func TestCreateRefusesATakenEmail(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		store := userdb.New(openDB(t, d))
		first := newUser("ada@example.com")
		if err := store.Create(ctx, first); err != nil {
			t.Fatal(err)
		}
		second := newUser("ada@example.com")
		second.Name = "Impostor"
		err := store.Create(ctx, second)
		if !fail.Is(err, fail.Conflict) {
			t.Fatalf("Create with a taken email: %v, want conflict", err)
		}
		if _, err := store.ByID(ctx, second.ID); !fail.Is(err, fail.NotFound) {
			t.Errorf("ByID(refused user) = %v, want not found", err)
		}
		got, err := store.ByEmail(ctx, "ada@example.com")
		if err != nil || got.ID != first.ID || got.Name != "Ada" {
			t.Errorf("ByEmail = %+v, %v; want the first account unchanged", got, err)
		}
	})
}

func TestCreateRefusesAnUnknownRole(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		u := newUser("ada@example.com")
		u.Role = "root"
		if err := userdb.New(openDB(t, d)).Create(context.Background(), u); err == nil {
			t.Error("Create stored a user with role \"root\"; the schema must refuse it")
		}
	})
}

func TestReadsOfAbsentUsersAreNotFound(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		ctx := context.Background()
		store := userdb.New(openDB(t, d))
		if err := store.Create(ctx, newUser("ada@example.com")); err != nil {
			t.Fatal(err)
		}
		if _, err := store.ByID(ctx, uuid.Must(uuid.NewV7()).String()); !fail.Is(err, fail.NotFound) {
			t.Errorf("ByID(unknown) = %v, want not found", err)
		}
		if _, err := store.ByEmail(ctx, "bob@example.com"); !fail.Is(err, fail.NotFound) {
			t.Errorf("ByEmail(unknown) = %v, want not found", err)
		}
		// The store matches emails exactly; normalising is the domain's job.
		if _, err := store.ByEmail(ctx, "ADA@example.com"); !fail.Is(err, fail.NotFound) {
			t.Errorf("ByEmail(other case) = %v, want not found", err)
		}
	})
}

func TestMigrationsRoundTripOnEveryDialect(t *testing.T) {
	sqldbtest.MigrationsRoundTrip(t, userdb.Migrations)
}

// TestConcurrentSignUpsWithOneEmailMakeOneAccount races sign-ups for one
// email: the unique key lets exactly one through, the others are told the
// email is taken.
func TestConcurrentSignUpsWithOneEmailMakeOneAccount(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, d sqldb.Dialect) {
		db := openDB(t, d)
		store := userdb.New(db)
		const racers = 12
		results := make(chan error, racers)
		var wg sync.WaitGroup
		for range racers {
			wg.Go(func() { results <- store.Create(context.Background(), newUser("race@example.com")) })
		}
		wg.Wait()
		close(results)
		created, conflicts := 0, 0
		for err := range results {
			switch {
			case err == nil:
				created++
			case fail.Is(err, fail.Conflict):
				conflicts++
			default:
				t.Errorf("Create = %v, want success or a conflict", err)
			}
		}
		var rows int
		if err := db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM users WHERE email = ?`, "race@example.com").Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if created != 1 || conflicts != racers-1 || rows != 1 {
			t.Errorf("created=%d conflicts=%d rows=%d, want 1, %d, 1", created, conflicts, rows, racers-1)
		}
	})
}
