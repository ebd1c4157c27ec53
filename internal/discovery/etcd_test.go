package discovery_test

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/microshop/microshop/internal/discovery"
	"github.com/microshop/microshop/internal/discovery/etcdtest"
	"github.com/microshop/microshop/internal/fail"
)

// ttl is the lease the tests keep instances under: etcd's shortest (a
// shorter one is granted as two seconds anyway).
const ttl = 2 * time.Second

// openEtcd returns a registry backend of srv under prefix, as one process
// of the shop would open it.
func openEtcd(t *testing.T, srv *etcdtest.Server, prefix string) discovery.Registry {
	t.Helper()
	reg, err := discovery.New(srv.URL(prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	return reg
}

// kept is an instance kept registered by Keep in the background.
type kept struct {
	stop    context.CancelFunc
	done    chan struct{}
	healthy atomic.Bool
	frozen  atomic.Bool // while set, healthy blocks: the process stopped renewing
}

func keep(t *testing.T, reg discovery.Registry, inst discovery.Instance) *kept {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	k := &kept{stop: stop, done: make(chan struct{})}
	k.healthy.Store(true)
	healthy := func() bool {
		for k.frozen.Load() && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		return k.healthy.Load()
	}
	go func() {
		defer close(k.done)
		reg.Keep(ctx, inst, ttl, healthy, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(k.leave)
	return k
}

// leave stops Keep as a clean shutdown does, and waits for it.
func (k *kept) leave() {
	k.stop()
	<-k.done
}

func orders(id, addr string) discovery.Instance {
	return discovery.Instance{ID: id, Service: "orders", Address: addr}
}

// listed returns the addresses of the instances of orders that reg lists,
// healthy or not; a failure to list fails the test.
func listed(t *testing.T, reg discovery.Registry) []string {
	t.Helper()
	services, err := reg.Services(context.Background())
	if err != nil {
		t.Fatalf("Services: %v", err)
	}
	var out []string
	for _, s := range services {
		if s.Name == "orders" {
			for _, inst := range s.Instances {
				out = append(out, inst.Address)
			}
		}
	}
	return out
}

// eventually polls cond every 20 ms until it holds, and fails the test
// when it has not within timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// resolvesTo reports whether n resolutions of orders hand out exactly the
// addresses want, each as often.
func resolvesTo(reg discovery.Registry, n int, want ...string) bool {
	got := map[string]int{}
	for range n {
		addr, err := reg.Resolve(context.Background(), "orders")
		if err != nil {
			return len(want) == 0 && fail.Is(err, fail.Unavailable)
		}
		got[addr]++
	}
	if len(got) != len(want) {
		return false
	}
	for _, a := range want {
		if got[a] != n/len(want) {
			return false
		}
	}
	return true
}

func TestEtcdResolveTakesTurnsAmongHealthyInstances(t *testing.T) {
	srv := etcdtest.Start(t)
	// Each instance is kept by a process of its own; a third resolves.
	a, b, c := openEtcd(t, srv, "/turns"), openEtcd(t, srv, "/turns"), openEtcd(t, srv, "/turns")
	keep(t, a, orders("orders-a", "127.0.0.1:1"))
	keep(t, b, orders("orders-b", "127.0.0.1:2"))
	sick := keep(t, b, orders("orders-c", "127.0.0.1:3"))
	sick.healthy.Store(false)
	eventually(t, 10*time.Second, "the resolver sees both healthy instances", func() bool {
		return resolvesTo(c, 2, "127.0.0.1:1", "127.0.0.1:2")
	})
	if !resolvesTo(c, 10, "127.0.0.1:1", "127.0.0.1:2") {
		t.Error("10 resolutions did not hand out the two healthy instances 5 times each")
	}
	eventually(t, 10*time.Second, "the unhealthy instance is listed as such", func() bool {
		return slices.Equal(listed(t, c), []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"})
	})
	if addr, err := c.Resolve(context.Background(), "payments"); !fail.Is(err, fail.Unavailable) {
		t.Errorf("Resolve(payments) with none registered = %q, %v; want unavailable", addr, err)
	}
}

// TestEtcdInstanceThatStopsRenewingDropsOutWithItsLease: an instance
// whose process stops renewing without leaving (frozen, or crashed: its
// connection gone) stays listed until its lease expires, then is gone.
func TestEtcdInstanceThatStopsRenewingDropsOutWithItsLease(t *testing.T) {
	srv := etcdtest.Start(t)
	for _, how := range []string{"frozen", "crashed"} {
		t.Run(how, func(t *testing.T) {
			prefix := "/" + how
			watcher := openEtcd(t, srv, prefix)
			process := openEtcd(t, srv, prefix)
			k := keep(t, process, orders("orders-1", "127.0.0.1:1"))
			eventually(t, 10*time.Second, "the instance is listed", func() bool { return len(listed(t, watcher)) == 1 })

			stopped := time.Now()
			if how == "frozen" {
				k.frozen.Store(true)
			} else {
				_ = process.Close() // the connection is gone; Keep's renewals and its revoke fail
			}
			eventually(t, 5*ttl, "the instance drops out", func() bool { return len(listed(t, watcher)) == 0 })
			if waited := time.Since(stopped); waited < ttl/3 {
				t.Errorf("dropped out %v after it stopped renewing; a lease of %v renewed every %v cannot expire so soon", waited, ttl, ttl/3)
			}
			eventually(t, 5*time.Second, "resolving finds no instance", func() bool { return resolvesTo(watcher, 1) })
			select {
			case <-k.done:
				t.Fatal("Keep returned on its own: the instance left instead of expiring")
			default:
			}
			if how == "crashed" {
				return
			}
			// Thawed, it renews again: its lease is gone, so it takes a new one.
			k.frozen.Store(false)
			eventually(t, 10*time.Second, "the thawed instance is listed again", func() bool { return len(listed(t, watcher)) == 1 })
		})
	}
}

func TestEtcdDeregisterRemovesAtOnce(t *testing.T) {
	srv := etcdtest.Start(t)
	reg, watcher := openEtcd(t, srv, "/leave"), openEtcd(t, srv, "/leave")
	k := keep(t, reg, orders("orders-1", "127.0.0.1:1"))
	keep(t, reg, orders("orders-2", "127.0.0.1:2"))
	eventually(t, 10*time.Second, "both instances resolve", func() bool { return resolvesTo(watcher, 2, "127.0.0.1:1", "127.0.0.1:2") })

	k.leave()
	if got := listed(t, watcher); !slices.Equal(got, []string{"127.0.0.1:2"}) {
		t.Errorf("listed right after orders-1 left: %v, want only 127.0.0.1:2", got)
	}
	eventually(t, 5*time.Second, "the watch drops the instance that left", func() bool { return resolvesTo(watcher, 2, "127.0.0.1:2") })
}

// TestEtcdWatchKeepsResolutionsCurrent: another process's instances
// coming, turning unhealthy and going are seen without asking.
func TestEtcdWatchKeepsResolutionsCurrent(t *testing.T) {
	srv := etcdtest.Start(t)
	announcer, resolver := openEtcd(t, srv, "/watch"), openEtcd(t, srv, "/watch")
	ctx := context.Background()
	if err := announcer.Announce(ctx, orders("orders-1", "127.0.0.1:1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the announced instance resolves", func() bool { return resolvesTo(resolver, 2, "127.0.0.1:1") })

	// A key under the prefix that is not an instance hides nothing.
	raw := rawClient(t, srv)
	if _, err := raw.Put(ctx, "/watch/services/orders/junk", "not json"); err != nil {
		t.Fatal(err)
	}
	second := keep(t, announcer, orders("orders-2", "127.0.0.1:2"))
	eventually(t, 5*time.Second, "a new instance joins the turns", func() bool {
		return resolvesTo(resolver, 2, "127.0.0.1:1", "127.0.0.1:2")
	})
	second.healthy.Store(false)
	eventually(t, 5*time.Second, "an instance that turned unhealthy leaves the turns", func() bool {
		return resolvesTo(resolver, 2, "127.0.0.1:1")
	})
	second.healthy.Store(true)
	eventually(t, 5*time.Second, "it comes back once healthy", func() bool {
		return resolvesTo(resolver, 2, "127.0.0.1:1", "127.0.0.1:2")
	})
	// Instances of another shop, under another prefix, are not this one's.
	other := openEtcd(t, srv, "/other")
	if err := other.Announce(ctx, orders("orders-9", "127.0.0.1:9"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, resolver); !slices.Equal(got, []string{"127.0.0.1:1", "127.0.0.1:2"}) {
		t.Errorf("listed %v, want this shop's two instances only", got)
	}
	if !resolvesTo(resolver, 2, "127.0.0.1:1", "127.0.0.1:2") {
		t.Error("an instance under another prefix joined the turns")
	}
}

// TestEtcdRestartedInstancesAreListedAgain: after etcd restarts, every
// kept instance is listed again, with its lease if etcd kept its data, or
// a new one if it lost it.
func TestEtcdRestartedInstancesAreListedAgain(t *testing.T) {
	srv := etcdtest.Start(t)
	process, watcher := openEtcd(t, srv, "/restart"), openEtcd(t, srv, "/restart")
	keep(t, process, orders("orders-1", "127.0.0.1:1"))
	eventually(t, 10*time.Second, "the instance resolves", func() bool { return resolvesTo(watcher, 2, "127.0.0.1:1") })
	key := "/restart/services/orders/orders-1"
	before := leaseOf(t, srv, key)

	for _, wipe := range []bool{false, true} {
		srv.Restart(wipe)
		eventually(t, 10*time.Second, "the instance is listed again", func() bool {
			l, err := watcher.Services(context.Background())
			return err == nil && len(l) == 1 && len(l[0].Instances) == 1 && l[0].Instances[0].Healthy
		})
		after := leaseOf(t, srv, key)
		if wipe && after == before {
			t.Errorf("after etcd lost its data the instance is held by lease %x, the one etcd lost", after)
		}
		if !resolvesTo(watcher, 2, "127.0.0.1:1") {
			t.Errorf("after the restart (data lost: %v) the instance does not resolve", wipe)
		}
		before = after
	}
	// The watch follows the new etcd too: an instance that joins now is seen.
	keep(t, process, orders("orders-2", "127.0.0.1:2"))
	eventually(t, 20*time.Second, "an instance registered after the restart resolves", func() bool {
		return resolvesTo(watcher, 2, "127.0.0.1:1", "127.0.0.1:2")
	})
}

func TestEtcdUnreachableIsUnavailable(t *testing.T) {
	reg, err := discovery.New("etcd://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	ctx := context.Background()
	if addr, err := reg.Resolve(ctx, "orders"); !fail.Is(err, fail.Unavailable) {
		t.Errorf("Resolve with etcd unreachable = %q, %v; want unavailable", addr, err)
	}
	if got, err := reg.Services(ctx); !fail.Is(err, fail.Unavailable) {
		t.Errorf("Services with etcd unreachable = %v, %v; want unavailable", got, err)
	}
	if err := reg.Announce(ctx, orders("orders-1", "127.0.0.1:1"), ttl); !fail.Is(err, fail.Unavailable) {
		t.Errorf("Announce with etcd unreachable = %v; want unavailable", err)
	}
}

// rawClient is a plain etcd client of srv, for what the registry does not
// show: leases, foreign keys.
func rawClient(t *testing.T, srv *etcdtest.Server) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func leaseOf(t *testing.T, srv *etcdtest.Server, key string) clientv3.LeaseID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := rawClient(t, srv).Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("reading %s: %v, %+v", key, err, resp)
	}
	return clientv3.LeaseID(resp.Kvs[0].Lease)
}
