package outbox_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// BenchmarkCommitWithEvent measures a service's typical write on each
// dialect: a state change and its event in one transaction, from parallel
// writers.
func BenchmarkCommitWithEvent(b *testing.B) {
	for _, d := range sqldb.Dialects {
		b.Run(string(d), func(b *testing.B) {
			db := sqldbtest.OpenMessagingOn(b, d, "bench", shop)
			ctx := context.Background()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprint("o-", benchSeq.Add(1))
					e, err := event.New("orders", "orders.order.created", "OrderCreated", 1, id, map[string]string{"id": id})
					if err != nil {
						b.Error(err)
						return
					}
					if err := db.Atomic(ctx, func(ctx context.Context) error {
						if _, err := db.ExecContext(ctx, `INSERT INTO orders (id) VALUES (?)`, id); err != nil {
							return err
						}
						return outbox.Add(ctx, db, e)
					}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// benchSeq numbers the benchmark's orders.
var benchSeq atomic.Int64
