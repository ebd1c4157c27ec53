package docdb_test

import (
	"context"
	"testing"

	"github.com/microshop/microshop/internal/docdb"
)

// BenchmarkEmbeddedStart measures what the embedded default adds to a
// shop's start: starting FerretDB on an existing folder, connecting to it,
// ensuring an index, and stopping it again.
func BenchmarkEmbeddedStart(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	for b.Loop() {
		srv, err := docdb.Embed(ctx, dir, "127.0.0.1:0", nil)
		if err != nil {
			b.Fatal(err)
		}
		db, err := srv.Open(ctx, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if err := db.EnsureIndexes(ctx, "things", docdb.OutboxIndex); err != nil {
			b.Fatal(err)
		}
		_ = db.Close()
		_ = srv.Close()
	}
}
