package host_test

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/discovery"
	"github.com/microshop/microshop/internal/host"
)

// announcements records what a service announces, as any registry backend
// would receive it.
type announcements struct {
	mu   sync.Mutex
	seen []discovery.Instance
}

func (a *announcements) Announce(_ context.Context, inst discovery.Instance, _ time.Duration) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen = append(a.seen, inst)
	return nil
}

func (a *announcements) Keep(ctx context.Context, _ discovery.Instance, _ time.Duration, _ func() bool, _ *slog.Logger) {
	<-ctx.Done()
}

func (a *announcements) Resolve(context.Context, string) (string, error)       { return "", nil }
func (a *announcements) Forget(string)                                         {}
func (a *announcements) Services(context.Context) ([]discovery.Service, error) { return nil, nil }
func (a *announcements) Close() error                                          { return nil }

func (a *announcements) first() (discovery.Instance, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.seen) == 0 {
		return discovery.Instance{}, false
	}
	return a.seen[0], true
}

// TestTheAnnouncedAddressIsOneOthersCanDial: a service announces the host
// it was told to advertise, with its bound port, or else where it is bound.
func TestTheAnnouncedAddressIsOneOthersCanDial(t *testing.T) {
	for _, tc := range []struct {
		name, advertise, wantHost string
	}{
		{"advertised", "orders.shop.svc", "orders.shop.svc"},
		{"bound to loopback", "", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := &announcements{}
			svc := newService("orders")
			svc.Advertise = tc.advertise
			svc.Registry, svc.RegistryTTL = reg, 3*time.Second
			bound := make(chan string, 1)
			svc.OnListen = func(addr string) { bound <- addr }
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- svc.Run(ctx) }()
			defer func() { cancel(); <-errc }()
			addr := <-bound
			eventually(t, "the instance is announced", func() bool { _, ok := reg.first(); return ok })
			inst, _ := reg.first()
			h, port, err := net.SplitHostPort(inst.Address)
			_, boundPort, _ := net.SplitHostPort(addr)
			if err != nil || port != boundPort || h != tc.wantHost || inst.ID != "orders-"+inst.Address {
				t.Errorf("announced %+v for an instance bound at %s (advertise %q)", inst, addr, tc.advertise)
			}
		})
	}
}

// TestEveryInterfaceIsAnnouncedAsThisMachine: an instance bound to every
// interface (0.0.0.0, as in a container) announces this machine's own
// address, never 0.0.0.0, which no other process can dial.
func TestEveryInterfaceIsAnnouncedAsThisMachine(t *testing.T) {
	var own net.IP
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipnet, ok := a.(*net.IPNet); ok && ipnet.IP.IsGlobalUnicast() && own == nil {
			own = ipnet.IP
		}
	}
	if own == nil {
		t.Skip("this machine has no address but loopback to announce")
	}
	for _, bound := range []string{"0.0.0.0:8080", "[::]:8080"} {
		got := host.Announced(&host.Service{}, bound)
		h, port, _ := net.SplitHostPort(got)
		if ip := net.ParseIP(h); ip == nil || !ip.IsGlobalUnicast() || port != "8080" {
			t.Errorf("bound at %s, announced %s; want this machine's address, port 8080", bound, got)
		}
	}
	if got := host.Announced(&host.Service{Advertise: "10.0.0.9"}, "0.0.0.0:8080"); got != "10.0.0.9:8080" {
		t.Errorf("advertising 10.0.0.9, bound at 0.0.0.0:8080: announced %s, want 10.0.0.9:8080", got)
	}
}
