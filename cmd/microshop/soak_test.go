package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/audit"
	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/discovery"
	"github.com/microshop/microshop/internal/load"
	"github.com/microshop/microshop/internal/resilience/resiliencetest"
)

// soakFor is how long TestChaosSoak injects faults in each saga style. The
// default is a brief run, as CI makes; a soak is asked for by name:
//
//	go test ./cmd/microshop -run TestChaosSoak -soak=10m -timeout=0
var soakFor = flag.Duration("soak", 0, "how long TestChaosSoak injects faults in each saga style (0: a brief run, as in CI)")

// briefSoak is the fault time per saga style of the run CI makes: long
// enough for every kind of fault to hit once in each style.
const briefSoak = 15 * time.Second

// recoveryBound is the promise the soak checks once the faults stop: within
// it, every order has ended.
const recoveryBound = 30 * time.Second

// TestChaosSoak runs the shop as a process per service, orders and
// inventory on a PostgreSQL server of the test's own, and drives the load
// generator at it in each saga style in turn while random faults hit: a
// service process or the broker killed with SIGKILL, latency and connection
// resets (toxiproxy) on the calls between services and on the database
// connections, and the database server restarted as after a crash. Every
// kind of fault hits at least once in each style, the rest are drawn at
// random. Then the faults stop: within 30 s every order has ended, the
// audit (the microshop audit command) finds every invariant's count at 0,
// no event was dead-lettered, and no request was answered 500 (a fault is
// an outage: 503).
func TestChaosSoak(t *testing.T) {
	needProc(t)
	perStyle := briefSoak
	if *soakFor > 0 {
		perStyle = *soakFor
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("chaos: seed=%d faults_per_style=%v", seed, perStyle)

	pg := newPostgresCluster(t)
	dbProxy := resiliencetest.NewProxy(t, pg.addr())
	env := []string{"MICROSHOP_BREAKER_OPEN_TIMEOUT=500ms"}
	for _, svc := range []string{"orders", "inventory"} {
		pg.createDatabase(t, svc)
		env = append(env, "MICROSHOP_"+strings.ToUpper(svc)+"_DB_URL=postgres://postgres@"+dbProxy.Addr+"/"+svc+"?sslmode=disable")
	}
	dir := t.TempDir()
	// A child killed again and again waits longer each time (doubling from
	// the restart delay up to 10 s); a short first delay keeps the outages
	// as short as the faults make them.
	shop := start(t, dir, env, "up", "--split", "--restart-delay=100ms")
	c := newClient(t, shop.addrs["gateway"]).unchecked() // faults make answers no document lists
	seeded(t, c)

	// Every call between services may cross a bad network: each service
	// the others call gets a second instance in the registry, a toxiproxy
	// in front of the real one, so callers taking turns send about half
	// their calls through it.
	ctx, stopProxies := context.WithCancel(context.Background())
	t.Cleanup(stopProxies)
	reg := newRegistrar(t, shop.addrs["registry"], filepath.Join(dir, "keys", "service-ed25519.pem"))
	proxies := map[string]*resiliencetest.Proxy{"database": dbProxy}
	for _, svc := range []string{"users", "catalog", "inventory", "payments", "shipping", "orders"} {
		proxies[svc] = reg.proxy(ctx, t, svc)
	}

	gen, err := load.New(load.Options{
		Target:    shop.addrs["gateway"],
		Rate:      8,
		Customers: 12,
		Admin:     load.Credentials{Email: adminEmail, Password: adminPassword},
		Drain:     recoveryBound,
	})
	if err != nil {
		t.Fatal(err)
	}
	loadCtx, stopLoad := context.WithCancel(context.Background())
	reports := make(chan load.Report, 1)
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		rep, err := gen.Run(loadCtx)
		if err != nil {
			t.Errorf("load: %v", err)
		}
		reports <- rep
	}()
	t.Cleanup(func() { // before the shop stops, on every way out
		stopLoad()
		<-loaded
	})
	waitFor(t, 60*time.Second, "the load generator to sign its customers up", func() bool { return gen.Snapshot().Running })

	chaos := &chaosMonkey{t: t, rng: rng, shop: shop, pg: pg, proxies: proxies, killed: map[string]time.Time{}, done: map[string]int{}}
	var admin string
	for _, mode := range []string{"orchestration", "choreography", "parallel"} {
		waitFor(t, 30*time.Second, "setting the saga style to "+mode, func() bool {
			admin = relogin(c) // a long soak outlives a token
			r, err := c.try("PUT", "/api/v1/admin/settings", admin, map[string]string{"saga_mode": mode})
			return err == nil && r.Status == 200
		})
		chaos.run(mode, perStyle)
	}
	chaos.calm()
	calm := time.Now()
	stopLoad()

	// Every order ends within the bound, whether the load generator saw it
	// placed or not: the audit counts them all, as the shop holds them.
	pending := -1
	for pending != 0 && time.Since(calm) < recoveryBound {
		time.Sleep(100 * time.Millisecond)
		if admin = relogin(c); admin == "" {
			continue
		}
		r, err := c.try("GET", "/api/v1/admin/audit", admin, nil)
		var rep audit.Report
		if err == nil && r.Status == 200 && json.Unmarshal(r.Body, &rep) == nil {
			pending = rep.Counts.Pending
		}
	}
	ended := time.Since(calm)
	if pending != 0 {
		explainPending(t, c, admin, shop)
		t.Fatalf("%d orders still pending %v after the faults stopped, want every order ended within %v", pending, ended, recoveryBound)
	}
	rep := <-reports

	verdict, out := auditVerdict(t, shop.addrs["gateway"])
	var dlq struct{ Items []map[string]any }
	c.must(200, "GET", "/api/v1/admin/dlq", admin, nil).json(t, &dlq)
	t.Logf("chaos verdict: styles=3 faults=%v all_ended_after=%v orders=%d completed=%d cancelled=%d lost=%d duplicated=%d unexpected_orders=%d double_charged=%d stock_mismatch=%d dead_letters=%d",
		chaos.done, ended.Round(100*time.Millisecond), verdict.Counts.Orders, verdict.Counts.Completed, verdict.Counts.Cancelled,
		verdict.Counts.Lost, verdict.Counts.Duplicated, verdict.Counts.UnexpectedOrders, verdict.Counts.DoubleCharged, verdict.Counts.StockMismatch, len(dlq.Items))
	t.Logf("load: requests=%d ok=%d failed=%d placed=%d completed=%d cancelled=%d pending=%d errors=%v",
		rep.Requests, rep.OK, rep.Failed, rep.OrdersPlaced, rep.CheckoutsCompleted, rep.Cancelled, rep.Pending, rep.Errors)

	if !verdict.OK {
		t.Errorf("the audit failed after the faults:\n%s", out)
	}
	for _, f := range verdict.Counts.Figures() {
		if f.Count != 0 {
			t.Errorf("%s: %d, want 0", f.Label, f.Count)
		}
	}
	if verdict.Counts.Orders == 0 || verdict.Counts.Completed == 0 || verdict.Counts.Cancelled == 0 {
		t.Errorf("the load placed %d orders (%d completed, %d cancelled): a soak with nothing at stake proves nothing",
			verdict.Counts.Orders, verdict.Counts.Completed, verdict.Counts.Cancelled)
	}
	if n := rep.Errors["http_500"]; n != 0 {
		// A fault is an outage: 503 and try again, never a bug's 500.
		t.Errorf("the shop answered %d requests with 500 during the faults, want 503s", n)
	}
	if len(dlq.Items) != 0 {
		t.Errorf("faults that pass dead-lettered %d events: %v", len(dlq.Items), dlq.Items)
	}
	for _, kind := range faultKinds {
		if chaos.done[kind] < 3 {
			t.Errorf("fault %s hit %d times, want at least once per saga style", kind, chaos.done[kind])
		}
	}
}

// explainPending logs the orders still pending, and what the shop logged
// about each, for a soak that failed to end them.
func explainPending(t *testing.T, c *client, admin string, shop *proc) {
	t.Helper()
	r, err := c.try("GET", "/api/v2/admin/orders?limit=100", admin, nil)
	if err != nil || r.Status != 200 {
		t.Logf("listing the orders: %v %d", err, r.Status)
		return
	}
	var page struct{ Items []map[string]any }
	r.json(t, &page)
	logs := shop.logs.String()
	for _, o := range page.Items {
		if o["status"] != "PENDING" {
			continue
		}
		id, _ := o["id"].(string)
		t.Logf("pending: %v", o)
		for line := range strings.Lines(logs) {
			if strings.Contains(line, id) {
				t.Logf("  %s", strings.TrimSpace(line))
			}
		}
	}
}

// faultKinds are the faults the soak injects; each hits at least once in
// each saga style.
var faultKinds = []string{
	"kill-service",   // SIGKILL of a random service process, the gateway and registry among them
	"kill-broker",    // SIGKILL of the embedded broker's process
	"service-delay",  // latency on the calls to one service
	"service-resets", // connection resets on the calls to one service
	"database-delay", // latency on the database connections
	"database-reset", // connection resets on the database connections
	"database-crash", // the database server stopped at once and started again
}

// chaosMonkey injects the soak's faults, one at a time, and counts them.
type chaosMonkey struct {
	t       *testing.T
	rng     *rand.Rand
	shop    *proc
	pg      *postgresCluster
	proxies map[string]*resiliencetest.Proxy
	toxics  []struct{ proxy, name string } // the toxics in place now
	killed  map[string]time.Time           // when each process was last killed
	done    map[string]int
}

// run injects faults for d (or until every kind has hit once, if that takes
// longer) in the saga style the shop runs now.
func (m *chaosMonkey) run(style string, d time.Duration) {
	plan := slices.Clone(faultKinds)
	m.rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	deadline := time.Now().Add(d)
	for len(plan) > 0 || time.Now().Before(deadline) {
		var kind string
		if len(plan) > 0 {
			kind, plan = plan[0], plan[1:]
			if kind == "kill-broker" {
				time.Sleep(time.Until(m.killed["broker"].Add(respite)))
			}
		} else {
			for kind == "" || kind == "kill-broker" && m.resting("broker") {
				kind = faultKinds[m.rng.IntN(len(faultKinds))]
			}
		}
		what := m.inject(kind)
		m.done[kind]++
		m.t.Logf("chaos: %s: %s: %s", style, kind, what)
		m.pause(200*time.Millisecond, 1500*time.Millisecond)
		m.calm() // a toxic lasts until the next fault
	}
}

// inject makes one fault of kind and says what it did.
func (m *chaosMonkey) inject(kind string) string {
	switch kind {
	case "kill-service":
		victims := slices.DeleteFunc(slices.Clone(splitChildren), func(s string) bool { return s == "broker" || m.resting(s) })
		if len(victims) == 0 {
			return "every service was killed moments ago: none killed"
		}
		return m.kill(victims[m.rng.IntN(len(victims))])
	case "kill-broker":
		return m.kill("broker")
	case "service-delay", "service-resets":
		names := slices.DeleteFunc(slices.Sorted(maps.Keys(m.proxies)), func(s string) bool { return s == "database" })
		return m.toxic(names[m.rng.IntN(len(names))], kind)
	case "database-delay", "database-reset":
		return m.toxic("database", kind)
	case "database-crash":
		took, err := m.pg.restart()
		if err != nil {
			m.t.Fatalf("restarting the database server: %v", err)
		}
		return fmt.Sprintf("stopped immediately and started again in %v", took.Round(time.Millisecond))
	}
	panic("unknown fault " + kind)
}

// kill sends SIGKILL to the child name, once it runs (it may still be
// coming back from an earlier kill).
func (m *chaosMonkey) kill(name string) string {
	var pid int
	waitFor(m.t, 30*time.Second, name+" to run, to kill it", func() bool {
		pid = children(m.t, m.shop)[name]
		return pid != 0
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		m.t.Fatalf("killing %s (pid %d): %v", name, pid, err)
	}
	m.killed[name] = time.Now()
	return fmt.Sprintf("SIGKILL to %s (pid %d)", name, pid)
}

// toxic puts latency or resets on the connections through one proxy.
func (m *chaosMonkey) toxic(proxy, kind string) string {
	name := fmt.Sprintf("%s-%d", kind, m.done[kind])
	var typ string
	var attrs map[string]any
	if strings.HasSuffix(kind, "delay") {
		typ, attrs = "latency", map[string]any{"latency": 50 + m.rng.IntN(400), "jitter": 50}
	} else {
		typ, attrs = "reset_peer", map[string]any{"timeout": m.rng.IntN(200)}
	}
	stream := []string{"upstream", "downstream"}[m.rng.IntN(2)]
	toxicity := 0.3 + 0.7*m.rng.Float64()
	m.proxies[proxy].AddSometimes(m.t, name, typ, stream, toxicity, attrs)
	m.toxics = append(m.toxics, struct{ proxy, name string }{proxy, name})
	return fmt.Sprintf("%s %v on %s's %s connections (toxicity %.2f)", typ, attrs, proxy, stream, toxicity)
}

// respite is how long a killed process is left alone. The supervisor waits
// longer after each crash in a row (doubling up to 10 s), so a process
// killed again and again would spend the soak waiting to start: the shop
// would be tested only for how it waits.
const respite = 10 * time.Second

// resting reports whether the process name was killed less than respite ago.
func (m *chaosMonkey) resting(name string) bool {
	return time.Since(m.killed[name]) < respite
}

// calm removes every toxic in place.
func (m *chaosMonkey) calm() {
	for _, x := range m.toxics {
		m.proxies[x.proxy].Remove(m.t, x.name)
	}
	m.toxics = nil
}

func (m *chaosMonkey) pause(least, most time.Duration) {
	time.Sleep(least + time.Duration(m.rng.Int64N(int64(most-least))))
}

// relogin signs the admin in, or returns "" when the shop cannot say yet.
func relogin(c *client) string {
	r, err := c.try("POST", "/api/v1/auth/login", "", map[string]string{"email": adminEmail, "password": adminPassword})
	if err != nil || r.Status != 200 {
		return ""
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(r.Body, &out) != nil {
		return ""
	}
	return out.AccessToken
}

// auditVerdict runs `microshop audit --json` against the gateway at target
// and returns its verdict, which must agree with its exit code, and what it
// printed.
func auditVerdict(t *testing.T, target string) (audit.Report, string) {
	t.Helper()
	run := runAudit(t, adminEmail, adminPassword, "--target", target, "--json")
	run.report(t) // every named figure is there
	lines := strings.Split(strings.TrimSpace(run.stdout), "\n")
	var rep audit.Report
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		t.Fatal(err)
	}
	if want := map[bool]int{true: 0, false: 1}[rep.OK]; run.code != want {
		t.Errorf("microshop audit exited %d with ok=%v, want %d", run.code, rep.OK, want)
	}
	return rep, run.stdout + run.stderr
}

// registrar puts toxiproxy instances of services into the shop's registry,
// as the services themselves register: with a service token signed by the
// shop's service key, in the name of the service.
type registrar struct {
	url string
	key ed25519.PrivateKey
	log *slog.Logger
}

func newRegistrar(t *testing.T, registryURL, keyFile string) *registrar {
	key, err := auth.LoadOrCreateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &registrar{url: registryURL, key: key, log: slog.New(slog.DiscardHandler)}
}

// proxy registers a second instance of service: a toxiproxy in front of
// the real one, kept pointed at it wherever it comes back after a kill.
// The instance is kept registered until ctx or the test ends.
func (r *registrar) proxy(ctx context.Context, t *testing.T, service string) *resiliencetest.Proxy {
	reg := discovery.NewClient(r.url, 0)
	reg.Authorize = auth.NewServiceSigner(service, r.key).Authorize
	id := "chaos-" + service
	real := func() string {
		services, err := reg.Services(ctx)
		if err != nil {
			r.log.Warn("asking the registry", slog.Any("err", err))
			return ""
		}
		for _, s := range services {
			for _, inst := range s.Instances {
				if s.Name == service && inst.ID != id && inst.Healthy {
					return inst.Address
				}
			}
		}
		return ""
	}
	var upstream string
	waitFor(t, 30*time.Second, service+" in the registry", func() bool {
		upstream = real()
		return upstream != ""
	})
	p := resiliencetest.NewProxy(t, upstream)
	ctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		stop()
		wg.Wait()
	})
	wg.Go(func() {
		reg.Keep(ctx, discovery.Instance{ID: id, Service: service, Address: p.Addr}, 3*time.Second, func() bool { return true }, r.log)
	})
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if now := real(); now != "" && now != p.Upstream() {
				if err := p.SetUpstream(now); err != nil {
					t.Errorf("pointing the %s proxy at %s: %v", service, now, err)
				}
			}
		}
	})
	return p
}

// postgresCluster is a PostgreSQL server of the test's own, in a temporary
// directory on a free loopback port, so that the test may crash and restart
// it without touching the machine's server or the other tests on it.
type postgresCluster struct {
	bin  string // the directory of initdb, pg_ctl and the server
	dir  string
	port int
	as   []string // runuser -u postgres --, when run as root (the server refuses root)
}

// newPostgresCluster makes and starts a server, stopped and removed when
// the test ends. It needs Debian's PostgreSQL server binaries.
func newPostgresCluster(t *testing.T) *postgresCluster {
	t.Helper()
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("PostgreSQL's server binaries (initdb, pg_ctl) are not installed: the soak runs a PostgreSQL server of its own")
		}
		t.Skip("PostgreSQL's server binaries (initdb, pg_ctl) are not installed: the soak runs a PostgreSQL server of its own")
	}
	slices.Sort(found)
	c := &postgresCluster{bin: filepath.Dir(found[len(found)-1])}
	dir, err := os.MkdirTemp("", "microshop-soak-pg-")
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, the server needs the postgres user to run as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.as = []string{"runuser", "-u", "postgres", "--"}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	if out, err := c.run("initdb", "-D", c.data(), "-U", "postgres", "-A", "trust", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		_, _ = c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	})
	if out, err := c.pgctl("start"); err != nil {
		t.Fatalf("starting PostgreSQL: %v\n%s", err, out)
	}
	return c
}

func (c *postgresCluster) data() string { return filepath.Join(c.dir, "data") }

func (c *postgresCluster) addr() string { return "127.0.0.1:" + strconv.Itoa(c.port) }

func (c *postgresCluster) run(program string, args ...string) ([]byte, error) {
	argv := append(slices.Clone(c.as), append([]string{filepath.Join(c.bin, program)}, args...)...)
	return exec.Command(argv[0], argv[1:]...).CombinedOutput()
}

// pgctl runs pg_ctl's action (start, restart) on the server, waiting for it.
func (c *postgresCluster) pgctl(action string, args ...string) ([]byte, error) {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200", c.port, c.dir)
	argv := append([]string{"-D", c.data(), "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "-o", opts}, args...)
	return c.run("pg_ctl", append(argv, action)...)
}

// restart stops the server at once, as a crash would (it recovers from
// its write-ahead log when it starts), and starts it again.
func (c *postgresCluster) restart() (time.Duration, error) {
	began := time.Now()
	out, err := c.pgctl("restart", "-m", "immediate")
	if err != nil {
		return 0, fmt.Errorf("%w: %s", err, out)
	}
	return time.Since(began), nil
}

func (c *postgresCluster) createDatabase(t *testing.T, name string) {
	t.Helper()
	if out, err := c.run("createdb", "-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-U", "postgres", name); err != nil {
		t.Fatalf("createdb %s: %v\n%s", name, err, out)
	}
}
