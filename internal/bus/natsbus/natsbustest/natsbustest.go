// Package natsbustest starts an embedded JetStream broker for a test, so
// that a service's consumer tests run on a real broker without a machine's
// NATS. It is apart from bustest because natsbus's own tests import
// bustest, and bustest importing natsbus would make a cycle.
package natsbustest

import (
	"context"
	"testing"

	"github.com/microshop/microshop/internal/bus/natsbus"
)

// Embedded starts a JetStream server of its own, storing in t.TempDir() and
// listening on a free local port, and returns a connection to it named
// name. Both are closed when the test ends.
func Embedded(t testing.TB, name string) *natsbus.Bus {
	t.Helper()
	ctx := context.Background()
	srv, err := natsbus.Embedded(ctx, t.TempDir(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatalf("starting the broker: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	b, err := natsbus.Connect(ctx, srv.ClientURL(), natsbus.Options{Name: name})
	if err != nil {
		t.Fatalf("connecting to the broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}
