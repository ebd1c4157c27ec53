package catalogdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/microshop/microshop/internal/catalog"
	"github.com/microshop/microshop/internal/catalog/catalogdb"
	"github.com/microshop/microshop/internal/catalog/catalogtest"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

func openDB(t *testing.T) *sqldb.DB {
	t.Helper()
	return sqldbtest.OpenMessaging(t, "catalog", catalogdb.Migrations)
}

func product(sku string) catalog.Product {
	now := time.Now().UTC()
	return catalog.Product{
		ID: uuid.Must(uuid.NewV7()).String(), SKU: sku, Name: "Mug " + sku, Description: "A mug.\nWith a handle.",
		Category: "Kitchen", PriceCents: 1299, Currency: "USD", CreatedAt: now, UpdatedAt: now,
	}
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	if err := db.MigrateDown(ctx, catalogdb.Migrations); err != nil {
		t.Fatalf("migrating down: %v", err)
	}
	if _, err := db.ExecContext(ctx, `SELECT 1 FROM products`); err == nil {
		t.Fatal("products table still exists after migrating down")
	}
	if err := db.Migrate(ctx, catalogdb.Migrations); err != nil {
		t.Fatalf("migrating up again: %v", err)
	}
	store := catalogdb.New(db)
	if err := store.Create(ctx, product("AFTER-REDO")); err != nil {
		t.Fatalf("Create after migrating up again: %v", err)
	}
}

// TestStoreContract runs the catalog's store contract on SQLite.
func TestStoreContract(t *testing.T) {
	catalogtest.RunStore(t, func(t *testing.T) catalog.Store { return catalogdb.New(openDB(t)) })
}
