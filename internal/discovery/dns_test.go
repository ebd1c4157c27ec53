package discovery_test

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/microshop/microshop/internal/discovery"
	"github.com/microshop/microshop/internal/fail"
)

// fakeDNS answers SRV and A questions from a table, on a loopback UDP
// port, as a cluster's DNS answers for headless Services. It can be made
// to fail (SERVFAIL), and counts the SRV questions it is asked.
type fakeDNS struct {
	conn net.PacketConn

	mu      sync.Mutex
	srv     map[string][]dnsmessage.SRVResource // _http._tcp.<name>. -> records
	a       map[string][]netip.Addr             // <host>. -> addresses
	failing bool
	asked   int
}

func startDNS(t *testing.T) *fakeDNS {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDNS{conn: conn, srv: map[string][]dnsmessage.SRVResource{}, a: map[string][]netip.Addr{}}
	done := make(chan struct{})
	go func() { defer close(done); d.serve() }()
	t.Cleanup(func() { conn.Close(); <-done })
	return d
}

// service publishes the pods of a headless Service: each pod a name of
// its own with one address, on port.
func (d *fakeDNS) service(name string, port uint16, pods map[string]string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var records []dnsmessage.SRVResource
	for pod, addr := range pods {
		host := pod + "." + name + "."
		records = append(records, dnsmessage.SRVResource{Priority: 0, Weight: 10, Port: port, Target: dnsmessage.MustNewName(host)})
		d.a[host] = []netip.Addr{netip.MustParseAddr(addr)}
	}
	d.srv["_http._tcp."+name+"."] = records
}

func (d *fakeDNS) setFailing(failing bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failing = failing
}

func (d *fakeDNS) srvQuestions() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.asked
}

// resolver is a resolver that asks this server, whatever the system's.
func (d *fakeDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, "udp", d.conn.LocalAddr().String())
	}}
}

func (d *fakeDNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if answer, err := d.answer(buf[:n]); err == nil {
			_, _ = d.conn.WriteTo(answer, from)
		}
	}
}

func (d *fakeDNS) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	name := strings.ToLower(q.Name.String())
	if q.Type == dnsmessage.TypeSRV {
		d.asked++
	}
	srvs, srvOK := d.srv[name]
	addrs, aOK := d.a[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	switch {
	case d.failing:
		rh.RCode = dnsmessage.RCodeServerFailure
	case !srvOK && !aOK:
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if rh.RCode == dnsmessage.RCodeSuccess {
		rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}
		switch q.Type {
		case dnsmessage.TypeSRV:
			for _, s := range srvs {
				if err := b.SRVResource(rr, s); err != nil {
					return nil, err
				}
			}
		case dnsmessage.TypeA:
			for _, a := range addrs {
				if err := b.AResource(rr, dnsmessage.AResource{A: a.As4()}); err != nil {
					return nil, err
				}
			}
		}
	}
	return b.Finish()
}

const zone = "shop.svc.cluster.local"

func openDNS(t *testing.T, d *fakeDNS, cacheFor time.Duration) discovery.Registry {
	t.Helper()
	reg, err := discovery.New("kubernetes://shop", discovery.WithResolver(d.resolver()), discovery.WithCache(cacheFor),
		discovery.WithServices([]string{"catalog", "orders", "payments"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	return reg
}

func TestDNSResolveTakesTurnsAmongTheServicesPods(t *testing.T) {
	d := startDNS(t)
	d.service("orders."+zone, 8080, map[string]string{"10-0-0-1": "10.0.0.1", "10-0-0-2": "10.0.0.2"})
	reg := openDNS(t, d, time.Hour)
	if !resolvesTo(reg, 10, "10.0.0.1:8080", "10.0.0.2:8080") {
		t.Error("10 resolutions did not hand out both pods 5 times each")
	}
	if n := d.srvQuestions(); n != 1 {
		t.Errorf("DNS asked %d times within the cache period, want 1", n)
	}
	if addr, err := reg.Resolve(context.Background(), "payments"); !fail.Is(err, fail.Unavailable) {
		t.Errorf("Resolve(payments), a name DNS does not know = %q, %v; want unavailable", addr, err)
	}
}

func TestDNSForgetLooksUpAgain(t *testing.T) {
	d := startDNS(t)
	d.service("orders."+zone, 8080, map[string]string{"10-0-0-1": "10.0.0.1"})
	reg := openDNS(t, d, time.Hour)
	if !resolvesTo(reg, 2, "10.0.0.1:8080") {
		t.Fatal("the one pod does not resolve")
	}
	// The pod was replaced; the cache does not know yet.
	d.service("orders."+zone, 8080, map[string]string{"10-0-0-3": "10.0.0.3"})
	if !resolvesTo(reg, 2, "10.0.0.1:8080") {
		t.Fatal("the cached pod is not used within the cache period")
	}
	reg.Forget("orders")
	if !resolvesTo(reg, 2, "10.0.0.3:8080") {
		t.Error("after Forget the new pod is not resolved")
	}
}

func TestDNSKeepsTheCachedPodsWhileDNSFails(t *testing.T) {
	d := startDNS(t)
	d.service("orders."+zone, 8080, map[string]string{"10-0-0-1": "10.0.0.1", "10-0-0-2": "10.0.0.2"})
	reg := openDNS(t, d, 0) // every Resolve looks up again
	if !resolvesTo(reg, 2, "10.0.0.1:8080", "10.0.0.2:8080") {
		t.Fatal("the pods do not resolve")
	}
	d.setFailing(true)
	before := d.srvQuestions()
	if !resolvesTo(reg, 4, "10.0.0.1:8080", "10.0.0.2:8080") {
		t.Error("while DNS fails, the pods it last gave are not used")
	}
	if d.srvQuestions() == before {
		t.Error("DNS was not asked again: the test does not exercise the fallback")
	}
	if _, err := reg.Services(context.Background()); !fail.Is(err, fail.Unavailable) {
		t.Errorf("Services while DNS fails = %v, want unavailable", err)
	}
	reg.Forget("orders")
	if addr, err := reg.Resolve(context.Background(), "orders"); !fail.Is(err, fail.Unavailable) {
		t.Errorf("after Forget, with DNS failing, Resolve = %q, %v; want unavailable", addr, err)
	}
}

func TestDNSServicesListsTheNamedServicesThatHavePods(t *testing.T) {
	d := startDNS(t)
	d.service("orders."+zone, 8080, map[string]string{"10-0-0-1": "10.0.0.1", "10-0-0-2": "10.0.0.2"})
	d.service("catalog."+zone, 9090, map[string]string{"10-0-0-7": "10.0.0.7"})
	d.service("gateway."+zone, 8080, map[string]string{"10-0-0-9": "10.0.0.9"}) // not named: not listed
	reg := openDNS(t, d, time.Hour)
	got, err := reg.Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []discovery.Service{
		{Name: "catalog", Instances: []discovery.Instance{{ID: "10-0-0-7.catalog." + zone, Service: "catalog", Address: "10.0.0.7:9090", Healthy: true}}},
		{Name: "orders", Instances: []discovery.Instance{
			{ID: "10-0-0-1.orders." + zone, Service: "orders", Address: "10.0.0.1:8080", Healthy: true},
			{ID: "10-0-0-2.orders." + zone, Service: "orders", Address: "10.0.0.2:8080", Healthy: true},
		}},
	}
	if !slices.EqualFunc(got, want, func(a, b discovery.Service) bool {
		return a.Name == b.Name && slices.Equal(a.Instances, b.Instances)
	}) {
		t.Errorf("Services = %+v\nwant %+v", got, want)
	}
}

// TestDNSLeavesAnnouncingToKubernetes: Announce and Keep send nothing, and
// Keep returns when its context ends.
func TestDNSLeavesAnnouncingToKubernetes(t *testing.T) {
	d := startDNS(t)
	reg := openDNS(t, d, time.Hour)
	inst := discovery.Instance{ID: "orders-1", Service: "orders", Address: "127.0.0.1:1"}
	if err := reg.Announce(context.Background(), inst, time.Second); err != nil {
		t.Errorf("Announce = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		reg.Keep(ctx, inst, time.Second, func() bool { return true }, slog.New(slog.DiscardHandler))
	}()
	cancel()
	<-done
	if n := d.srvQuestions(); n != 0 {
		t.Errorf("announcing asked DNS %d times, want 0", n)
	}
}
