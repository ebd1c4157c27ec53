// Package docdbtest gives tests a real document database: FerretDB embedded
// in the test process, on SQLite files in the test's temporary folder,
// reached through the MongoDB driver like any MongoDB server.
package docdbtest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/microshop/microshop/internal/docdb"
)

// Server starts an embedded document server for t on a free loopback port;
// it stops when t ends.
func Server(t testing.TB) *docdb.Server {
	t.Helper()
	srv, err := docdb.Embed(context.Background(), filepath.Join(t.TempDir(), "ferret"), "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("starting the embedded document server: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// Open opens a fresh database, with a random name, on srv; it is dropped
// and closed when t ends.
func Open(t testing.TB, srv *docdb.Server) *docdb.DB {
	t.Helper()
	db, err := srv.Open(context.Background(), fmt.Sprintf("test_%016x", rand.Uint64()))
	if err != nil {
		t.Fatalf("opening a test database: %v", err)
	}
	t.Cleanup(func() {
		_ = db.Drop(context.Background())
		_ = db.Close()
	})
	return db
}
