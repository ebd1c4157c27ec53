// Package shop is microshop's composition root: it builds each service from
// configuration, by hand, and runs the chosen ones in this process. It is the
// only package that knows every service; the services know none of each other.
package shop

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/internal/audit"
	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/bus"
	"github.com/microshop/microshop/internal/bus/natsbus"
	"github.com/microshop/microshop/internal/bus/rabbitbus"
	"github.com/microshop/microshop/internal/config"
	"github.com/microshop/microshop/internal/console"
	"github.com/microshop/microshop/internal/discovery"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/facade"
	"github.com/microshop/microshop/internal/fault"
	"github.com/microshop/microshop/internal/gateway"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/inventory"
	"github.com/microshop/microshop/internal/inventory/inventorydb"
	"github.com/microshop/microshop/internal/inventory/inventoryevents"
	"github.com/microshop/microshop/internal/inventory/inventoryhttp"
	"github.com/microshop/microshop/internal/legacy"
	"github.com/microshop/microshop/internal/legacy/legacyclient"
	"github.com/microshop/microshop/internal/legacy/legacydb"
	"github.com/microshop/microshop/internal/legacy/legacyhttp"
	"github.com/microshop/microshop/internal/orders"
	"github.com/microshop/microshop/internal/orders/orderclient"
	"github.com/microshop/microshop/internal/orders/orderdb"
	"github.com/microshop/microshop/internal/orders/orderevents"
	"github.com/microshop/microshop/internal/orders/orderhttp"
	"github.com/microshop/microshop/internal/orders/ordermetrics"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/payments"
	"github.com/microshop/microshop/internal/payments/paymentdb"
	"github.com/microshop/microshop/internal/payments/paymentevents"
	"github.com/microshop/microshop/internal/payments/paymenthttp"
	"github.com/microshop/microshop/internal/payments/simprovider"
	"github.com/microshop/microshop/internal/registry"
	"github.com/microshop/microshop/internal/resilience"
	"github.com/microshop/microshop/internal/shipping"
	"github.com/microshop/microshop/internal/shipping/shipmentdb"
	"github.com/microshop/microshop/internal/shipping/shippingevents"
	"github.com/microshop/microshop/internal/shipping/shippinghttp"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/telemetry"
	"github.com/microshop/microshop/internal/upstream"
	"github.com/microshop/microshop/internal/users"
	"github.com/microshop/microshop/internal/users/userdb"
	"github.com/microshop/microshop/internal/users/userhttp"
	"github.com/microshop/microshop/internal/web"
)

// Options say what to run.
type Options struct {
	Config   config.Config
	Services []string // which services run in this process
	Seed     bool     // seed the catalog and stock of a new shop once up
	// EmbedBroker starts JetStream in this process when no broker URL is
	// configured (up, or serve --services=broker); otherwise services
	// connect to the configured one.
	EmbedBroker bool
	Stdout      io.Writer // where the banner and a generated admin password go
	Log         *slog.Logger
}

// Run starts the chosen services, prints where the shop can be reached once
// every one is ready, and runs until ctx ends; then it stops them all and
// returns. If any service fails, the others are stopped too.
func Run(ctx context.Context, opt Options) error {
	for _, s := range opt.Services {
		if !slices.Contains(config.Services, s) {
			return fmt.Errorf("unknown service %q (services are %v)", s, config.Services)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The admin password, when configured, is known to every process, so
	// that a process running the gateway without users can seed.
	b := &builder{cfg: opt.Config, log: opt.Log, stdout: opt.Stdout, ctx: ctx, adminPass: opt.Config.AdminPassword.Reveal()}
	if slices.Contains(opt.Services, "gateway") {
		// The console lives in the gateway; every span of this process
		// reaches it straight from the SDK.
		b.collector = console.NewCollector()
	}
	if err := b.loadServiceKey(); err != nil {
		return err
	}

	// Things stop in the reverse order they started: the services first
	// (Run waits for them below), then their broker connections and
	// databases, then the embedded broker, and the registry last, so that
	// every service can still leave it.
	var stops []func()
	defer func() {
		for _, stop := range slices.Backward(stops) {
			stop()
		}
	}()
	var (
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}
	run := func(ctx context.Context, wg *sync.WaitGroup, s *host.Service) {
		wg.Go(func() {
			if err := s.Run(ctx); err != nil {
				fail(err)
			}
		})
	}

	// The built-in registry starts first, because everyone else announces
	// itself there and its address may only be known once it listens. It
	// runs only when it is the registry in use: with etcd or Kubernetes
	// DNS the instances are kept there, and the gateway lists them itself.
	switch {
	case slices.Contains(opt.Services, "registry") && !builtinRegistry(b.cfg.RegistryURL):
		b.log.Info("the built-in registry does not run: MICROSHOP_REGISTRY_URL names another", slog.String("registry_url", b.cfg.RegistryURL))
	case slices.Contains(opt.Services, "registry"):
		var regWG sync.WaitGroup
		regCtx, stopRegistry := context.WithCancel(context.WithoutCancel(ctx))
		stops = append(stops, func() { stopRegistry(); regWG.Wait() })
		listening := make(chan string, 1)
		run(regCtx, &regWG, b.registry(func(addr string) { listening <- addr }))
		select {
		case addr := <-listening:
			b.cfg.RegistryURL = "http://" + addr
		case <-ctx.Done():
			return errors.Join(firstErr, ctx.Err())
		}
	}
	reg, err := discovery.New(b.cfg.RegistryURL,
		discovery.WithCache(time.Second),
		discovery.WithAuthorize(auth.NewServiceSigner(registryClient, b.serviceKey).Authorize),
		discovery.WithServices(config.Services),
		discovery.WithLogger(b.log.With(slog.String("component", "discovery"))))
	if err != nil {
		return fmt.Errorf("opening the registry: %w", err)
	}
	// Closed once every service has left it, before the built-in registry stops.
	stops = append(stops, func() { _ = reg.Close() })
	b.regClient = reg

	if b.cfg.BrokerURL == "" {
		if opt.EmbedBroker {
			srv, err := natsbus.Embedded(ctx, filepath.Join(b.cfg.DataDir, "broker"), b.cfg.BrokerAddr, b.log.With(slog.String("service", "broker")))
			if err != nil {
				return fmt.Errorf("starting the embedded broker: %w", err)
			}
			stops = append(stops, srv.Shutdown)
			b.cfg.BrokerURL = srv.ClientURL()
			b.addrs.Store("broker", strings.TrimPrefix(b.cfg.BrokerURL, "nats://"))
		} else {
			b.cfg.BrokerURL = "nats://" + b.cfg.BrokerAddr
		}
	}
	stops = append(stops, b.closeAll)

	var services []*host.Service
	for _, name := range config.Services {
		if name == "registry" || !slices.Contains(opt.Services, name) {
			continue
		}
		s, err := b.build(name)
		if err != nil {
			return fmt.Errorf("building %s: %w", name, err)
		}
		services = append(services, s)
	}
	var wg sync.WaitGroup
	for _, s := range services {
		run(ctx, &wg, s)
	}
	if err := waitReady(ctx, append(services, b.registrySvc)); err == nil {
		b.banner()
		if opt.Seed {
			if err := b.seed(ctx); err != nil && ctx.Err() == nil {
				opt.Log.Warn("seeding the catalog failed", slog.Any("err", err))
			}
		}
	}
	wg.Wait()
	// A process that runs only the registry or the embedded broker has no
	// service to wait for: it serves until it is stopped, or fails.
	<-ctx.Done()
	errMu.Lock()
	defer errMu.Unlock()
	return firstErr
}

// waitReady waits until every service says it is ready.
func waitReady(ctx context.Context, services []*host.Service) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		ready := true
		for _, s := range services {
			if s != nil && !s.Health.Ready() {
				ready = false
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// builder builds services from configuration and remembers what it opened.
type builder struct {
	ctx         context.Context
	cfg         config.Config
	log         *slog.Logger
	stdout      io.Writer
	regClient   discovery.Registry
	registrySvc *host.Service
	closersMu   sync.Mutex
	closers     []io.Closer           // closed in reverse order when the shop stops
	addrs       sync.Map              // service name -> listen address
	adminPass   string                // the admin password, when this process knows it
	serviceKey  ed25519.PrivateKey    // the shop-wide key service tokens are signed with
	services    *auth.ServiceVerifier // what internal endpoints check service tokens with

	callersMu sync.Mutex
	callers   map[string]*upstream.Client // one per service, so one breaker per upstream
	tracersMu sync.Mutex
	tracers   map[string]*sdktrace.TracerProvider // one per service
	collector *console.Collector                  // the console's, when the gateway runs here
}

// closeLater has c closed when the shop stops, after what was opened after it.
func (b *builder) closeLater(c io.Closer) {
	b.closersMu.Lock()
	defer b.closersMu.Unlock()
	b.closers = append(b.closers, c)
}

func (b *builder) closeAll() {
	b.closersMu.Lock()
	defer b.closersMu.Unlock()
	for _, c := range slices.Backward(b.closers) {
		_ = c.Close()
	}
	b.closers = nil
}

func (b *builder) service(name string, routes *http.ServeMux) *host.Service {
	s := &host.Service{
		Name:        name,
		Addr:        b.cfg.Services[name].Addr,
		Log:         b.log.With(slog.String("service", name)),
		Routes:      routes,
		Health:      web.NewHealth(),
		Metrics:     web.NewMetrics(name),
		Registry:    b.regClient, // nil for the registry itself
		RegistryTTL: b.cfg.RegistryTTL,
		Advertise:   b.cfg.AdvertiseHost,
		OnListen:    func(addr string) { b.addrs.Store(name, addr) },
		Services:    b.internalGuard(name),
		Tracing:     telemetry.Middleware(name, b.tracer(name)),
	}
	// Every service's outgoing edges are counted and listed; the gateway
	// lists them all, its own included, on its own route.
	edges := b.caller(name).Edges()
	s.Metrics.Registry.MustRegister(edges.Collectors()...)
	if name != "gateway" {
		resilience.Mount(routes, edges)
	}
	// An admin can inject faults into every service that owns data (the
	// gateway and the registry are the path faults are set through).
	if slices.Contains(config.BusinessServices, name) {
		s.Faults = fault.New(name)
		fault.Mount(routes, s.Faults)
	}
	return s
}

func (b *builder) registry(onListen func(string)) *host.Service {
	reg := registry.New()
	verifier := b.remoteVerifier("registry")
	s := b.service("registry", registry.Routes(reg, func(r *http.Request) error {
		_, err := auth.Admin(r.Context())
		return err
	}))
	s.Verifier = verifier
	var self registry.Instance
	s.OnListen = func(addr string) {
		b.addrs.Store("registry", addr)
		self = registry.Instance{ID: "registry-" + addr, Service: "registry", Address: addr, Healthy: true}
		onListen(addr)
	}
	s.Workers = []host.Worker{
		func(ctx context.Context) { reg.Sweep(ctx, time.Second) },
		// The registry lists itself, straight in its own table.
		func(ctx context.Context) {
			t := time.NewTicker(b.cfg.RegistryTTL / 3)
			defer t.Stop()
			for {
				reg.Heartbeat(self, b.cfg.RegistryTTL)
				select {
				case <-ctx.Done():
					reg.Deregister(self.ID)
					return
				case <-t.C:
				}
			}
		},
	}
	b.registrySvc = s
	return s
}

// remoteVerifier verifies tokens with the keys the users service publishes,
// fetched through the registry when first needed and again every
// KeyRefresh, so that a rotation's next key is known before it signs.
func (b *builder) remoteVerifier(caller string) *auth.Verifier {
	return auth.NewVerifier(auth.NewRemoteKeys(func(ctx context.Context) ([]byte, error) {
		var raw json.RawMessage
		err := b.caller(caller).Do(ctx, upstream.Call{Service: "users", Method: http.MethodGet, Path: "/.well-known/jwks.json", Out: &raw})
		return raw, err
	}).RefreshEvery(b.cfg.KeyRefresh))
}

// caller returns the client the service name uses to call others: one per
// service, so that all its calls to one upstream share a breaker and a
// bulkhead. The registry client is only set once the registry listens, so
// it is looked up late.
func (b *builder) caller(name string) *upstream.Client {
	b.callersMu.Lock()
	defer b.callersMu.Unlock()
	if cl, ok := b.callers[name]; ok {
		return cl
	}
	if b.callers == nil {
		b.callers = map[string]*upstream.Client{}
	}
	log := b.log.With(slog.String("service", name), slog.String("component", "upstream"))
	tp := b.tracer(name)
	cl := upstream.New(name, lateResolver{b}, upstream.WithEdges(resilience.NewEdges(name, b.policy(), log)),
		upstream.WithTransport(func(rt http.RoundTripper) http.RoundTripper { return telemetry.Transport(rt, tp) }))
	cl.Authorize = b.authorizeInternal(name)
	b.callers[name] = cl
	return cl
}

// queueDepths reads from the broker how many messages it keeps for a
// consumer group, through a connection of the gateway's own, opened when
// first needed (a gateway does not need the broker to start).
func (b *builder) queueDepths() func(ctx context.Context, group string, topics []string) (int, error) {
	var (
		mu   sync.Mutex
		conn bus.Broker
	)
	return func(ctx context.Context, group string, topics []string) (int, error) {
		mu.Lock()
		if conn == nil {
			c, err := b.connect("gateway")
			if err != nil {
				mu.Unlock()
				return 0, err
			}
			conn = c
		}
		mu.Unlock()
		return conn.Waiting(ctx, bus.Subscription{Group: group, Topics: topics})
	}
}

// viewer returns the client the gateway's admin views call services with:
// the gateway's identity and tracing, and edges of its own, kept out of the
// listing of the gateway's edges.
func (b *builder) viewer() *upstream.Client {
	log := b.log.With(slog.String("service", "gateway"), slog.String("component", "views"))
	tp := b.tracer("gateway")
	cl := upstream.New("gateway", lateResolver{b}, upstream.WithEdges(resilience.NewEdges("gateway", b.policy(), log)),
		upstream.WithTransport(func(rt http.RoundTripper) http.RoundTripper { return telemetry.Transport(rt, tp) }))
	cl.Authorize = b.authorizeInternal("gateway")
	return cl
}

// tracer returns the tracer provider of the service name: one per service,
// so every span names the service it was made in, also in one process. It
// is flushed and shut down with the service's other resources.
func (b *builder) tracer(name string) *sdktrace.TracerProvider {
	b.tracersMu.Lock()
	defer b.tracersMu.Unlock()
	if tp, ok := b.tracers[name]; ok {
		return tp
	}
	if b.tracers == nil {
		b.tracers = map[string]*sdktrace.TracerProvider{}
	}
	tp, err := telemetry.NewProvider(b.ctx, name, b.cfg.OTLPEndpoint)
	if err != nil { // only a malformed endpoint fails; trace without exporting
		b.log.Warn("tracing without an exporter", slog.String("service", name), slog.Any("err", err))
		tp, _ = telemetry.NewProvider(b.ctx, name, "")
	}
	b.observe(name, tp)
	b.tracers[name] = tp
	b.closeLater(closerFunc(func() error { return tp.Shutdown(context.Background()) }))
	return tp
}

// observe sends the spans of service name to the console: straight from
// the SDK when the gateway runs in this process, else over OTLP/HTTP to the
// gateway the registry names, with the service's token.
func (b *builder) observe(name string, tp *sdktrace.TracerProvider) {
	if b.collector != nil {
		tp.RegisterSpanProcessor(b.collector.Processor())
		return
	}
	authorize := b.authorizeInternal(name)
	exp, err := console.Exporter(b.ctx, lateResolver{b}, func(r *http.Request) error { return authorize(r.Context(), r) })
	if err != nil {
		b.log.Warn("the console will not see this process's spans", slog.String("service", name), slog.Any("err", err))
		return
	}
	tp.RegisterSpanProcessor(sdktrace.NewBatchSpanProcessor(exp, sdktrace.WithBatchTimeout(500*time.Millisecond)))
}

// closerFunc adapts a function to io.Closer.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// policy is how every call between services is guarded, as configured.
func (b *builder) policy() resilience.Policy {
	p := resilience.DefaultPolicy()
	p.Failures = b.cfg.Resilience.BreakerFailures
	p.OpenTimeout = b.cfg.Resilience.BreakerOpenTimeout
	p.MaxAttempts = b.cfg.Resilience.RetryMaxAttempts
	p.Bulkhead = b.cfg.Resilience.Bulkhead
	return p
}

// builtinRegistry says whether the registry URL names microshop's own
// registry, rather than etcd or Kubernetes DNS.
func builtinRegistry(rawURL string) bool {
	return strings.HasPrefix(rawURL, "http://") || strings.HasPrefix(rawURL, "https://")
}

type lateResolver struct{ b *builder }

func (l lateResolver) Resolve(ctx context.Context, service string) (string, error) {
	if l.b.regClient == nil {
		return "", fmt.Errorf("resolving %s: the registry is not known yet", service)
	}
	return l.b.regClient.Resolve(ctx, service)
}

func (l lateResolver) Forget(service string) { l.b.regClient.Forget(service) }

// openDB opens service name's own database, whichever dialect its URL
// names (SQLite by default; PostgreSQL or MySQL by MICROSHOP_<NAME>_DB_URL),
// and brings its schema and its messaging tables up to date. Errors say
// which service and which database, password redacted.
func (b *builder) openDB(name string, migrations fs.FS) (*sqldb.DB, error) {
	db, err := b.openSchema(name, migrations)
	if err != nil {
		return nil, err
	}
	if err := outbox.Migrate(b.ctx, db); err != nil {
		return nil, fmt.Errorf("migrating the %s database (%s %s): %w", name, db.Dialect, sqldb.Redact(b.cfg.DBURL(name)), err)
	}
	return db, nil
}

// openSchema opens service name's own database with its own schema only:
// the monolith, which sends and takes no events, has no messaging tables.
func (b *builder) openSchema(name string, migrations fs.FS) (*sqldb.DB, error) {
	dbURL := b.cfg.DBURL(name)
	db, err := sqldb.Open(b.ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("opening the %s database: %w", name, err)
	}
	b.closeLater(db)
	if err := db.Migrate(b.ctx, migrations); err != nil {
		return nil, fmt.Errorf("migrating the %s database (%s %s): %w", name, db.Dialect, sqldb.Redact(dbURL), err)
	}
	return db, nil
}

// messaging gives a service its broker connection, the relay that publishes
// its outbox, and the inbox its consumers apply events through; their
// metrics, health check and dead-letter routes go on the service.
func (b *builder) messaging(s *host.Service, db *sqldb.DB, relayOpts outbox.Options) (bus.Broker, *inbox.Inbox, error) {
	conn, err := b.connect(s.Name)
	if err != nil {
		return nil, nil, err
	}
	// Every queue the service consumes from is measured on its metrics.
	queues := bus.NewQueues(conn, s.Name)
	s.Metrics.Registry.MustRegister(queues)
	var broker bus.Broker = queues
	// Work done for an event (its effect, the relay publishing it) logs in
	// the event's trace, as a request's work does. The handler is usually
	// wrapped already (main does it); wrapping is idempotent.
	s.Log = slog.New(telemetry.LogHandler(s.Log.Handler()))
	relayOpts.Service = s.Name
	// A relay renews its lease at every pass (at least once a second), so a
	// short lease loses little after a crash: the next relay takes over
	// within it.
	relayOpts.Lease = 5 * time.Second
	b.failpoint(s.Name, &relayOpts)
	relay := outbox.NewRelay(db, guardedPublisher{edge: b.caller(s.Name).Edges().Edge("broker"), pub: broker, tracer: b.tracer(s.Name).Tracer("github.com/microshop/microshop/internal/outbox")}, s.Log.With(slog.String("component", "relay")), relayOpts)
	db.OnCommit(relay.Wake)
	in := inbox.New(db, s.Name, s.Log.With(slog.String("component", "inbox")))
	in.Trace(b.tracer(s.Name))
	s.Metrics.Registry.MustRegister(relay.Collectors()...)
	s.Metrics.Registry.MustRegister(in.Collectors()...)
	s.Health.Add("broker", broker.Ping)
	inbox.Mount(s.Routes, in)
	s.Workers = append(s.Workers, func(ctx context.Context) {
		if err := relay.Run(ctx); err != nil && ctx.Err() == nil {
			s.Log.Error("outbox relay stopped", slog.Any("err", err))
		}
	})
	return broker, in, nil
}

// failpoint arms a crash test's failpoint: the process kills itself with
// SIGKILL, as a crash would, at the named point of the service's relay.
func (b *builder) failpoint(service string, opts *outbox.Options) {
	svc, point, _ := strings.Cut(b.cfg.Failpoint, ":")
	if svc != service {
		return
	}
	crash := func(e event.Event) error {
		b.log.Warn("failpoint: killing the process", slog.String("failpoint", b.cfg.Failpoint), slog.String("event_id", e.ID))
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal ends the process before this returns
	}
	switch point {
	case "before-publish":
		opts.BeforePublish = crash
	case "after-publish":
		opts.AfterPublish = crash
	}
}

// connect opens a broker connection for one service.
func (b *builder) connect(name string) (bus.Broker, error) {
	var (
		broker bus.Broker
		err    error
	)
	log := b.log.With(slog.String("service", name), slog.String("component", "bus"))
	if strings.HasPrefix(b.cfg.BrokerURL, "amqp") {
		broker, err = rabbitbus.Connect(b.ctx, b.cfg.BrokerURL, rabbitbus.Options{Name: name, Log: log, Namespace: b.cfg.BrokerNamespace})
	} else {
		broker, err = natsbus.Connect(b.ctx, b.cfg.BrokerURL, natsbus.Options{Name: name, Log: log, Namespace: b.cfg.BrokerNamespace})
	}
	if err != nil {
		return nil, fmt.Errorf("connecting %s to the broker: %w", name, err)
	}
	b.closeLater(broker)
	return broker, nil
}

func (b *builder) build(name string) (*host.Service, error) {
	switch name {
	case "users":
		return b.users()
	case "catalog":
		return b.catalog() // on documents (catalog.go)
	case "inventory":
		db, err := b.openDB(name, inventorydb.Migrations)
		if err != nil {
			return nil, err
		}
		svc := inventory.NewService(inventorydb.New(db))
		return b.eventful(b.service(name, inventoryhttp.Routes(svc)), db, func(ctx context.Context, sub bus.Subscriber, in *inbox.Inbox, log *slog.Logger) error {
			return inventoryevents.Consume(ctx, sub, in, svc, log)
		})
	case "payments":
		db, err := b.openDB(name, paymentdb.Migrations)
		if err != nil {
			return nil, err
		}
		provider := simprovider.New()
		svc := payments.NewService(paymentdb.New(db), provider)
		routes := paymenthttp.Routes(svc)
		paymenthttp.MountProvider(routes, provider)
		return b.eventful(b.service(name, routes), db, func(ctx context.Context, sub bus.Subscriber, in *inbox.Inbox, log *slog.Logger) error {
			return paymentevents.Consume(ctx, sub, in, svc, log)
		})
	case "shipping":
		db, err := b.openDB(name, shipmentdb.Migrations)
		if err != nil {
			return nil, err
		}
		svc := shipping.NewService(shipmentdb.New(db))
		return b.eventful(b.service(name, shippinghttp.Routes(svc)), db, func(ctx context.Context, sub bus.Subscriber, in *inbox.Inbox, log *slog.Logger) error {
			return shippingevents.Consume(ctx, sub, in, svc, log)
		})
	case "orders":
		return b.orders()
	case "legacy":
		// The old shop: one database, no events; it asks users for a
		// new customer's account and catalog for prices, over their APIs.
		db, err := b.openSchema(name, legacydb.Migrations)
		if err != nil {
			return nil, err
		}
		call := b.caller(name)
		svc := legacy.NewService(legacydb.New(db), legacyclient.Accounts{Caller: call}, legacyclient.Catalog{Caller: call})
		return b.withDB(b.service(name, legacyhttp.Routes(svc)), db), nil
	case "gateway":
		return b.gateway()
	}
	return nil, fmt.Errorf("no such service %q", name)
}

// consumeFunc runs a service's subscriptions until ctx ends.
type consumeFunc func(ctx context.Context, sub bus.Subscriber, in *inbox.Inbox, log *slog.Logger) error

// eventful builds a service that publishes through its outbox and, when
// consume is set, consumes events through its inbox.
func (b *builder) eventful(s *host.Service, db *sqldb.DB, consume consumeFunc) (*host.Service, error) {
	broker, in, err := b.messaging(s, db, outbox.Options{})
	if err != nil {
		return nil, err
	}
	if consume != nil {
		sub := subscriber(s, broker)
		s.Consumers = append(s.Consumers, func(ctx context.Context) {
			if err := consume(ctx, sub, in, s.Log); err != nil {
				s.Log.Error("stopped consuming", slog.Any("err", err))
			}
		})
	}
	return b.withDB(s, db), nil
}

// subscriber is the broker as the consumers of s subscribe to it: through
// its faults, so that they take no event while an admin has it down.
func subscriber(s *host.Service, broker bus.Broker) bus.Subscriber {
	if s.Faults == nil {
		return broker
	}
	return s.Faults.Subscriber(broker)
}

// withDB adds the database health check and the token verifier that every
// data-owning service other than users has.
func (b *builder) withDB(s *host.Service, db *sqldb.DB) *host.Service {
	s.Health.Add("db", db.Ping)
	if s.Verifier == nil {
		s.Verifier = b.remoteVerifier(s.Name)
	}
	return s
}

func (b *builder) users() (*host.Service, error) {
	db, err := b.openDB("users", userdb.Migrations)
	if err != nil {
		return nil, err
	}
	signer, err := b.keyRing()
	if err != nil {
		return nil, err
	}
	svc := users.NewService(userdb.New(db), signer)
	generated, err := svc.EnsureAdmin(b.ctx, b.cfg.AdminEmail, b.cfg.AdminPassword.Reveal())
	if err != nil {
		return nil, fmt.Errorf("creating the first admin: %w", err)
	}
	b.adminPass = b.cfg.AdminPassword.Reveal()
	if generated != "" {
		b.adminPass = generated
		fmt.Fprintf(b.stdout, "Created admin %s with password %s (shown once; set MICROSHOP_ADMIN_PASSWORD to choose it)\n", b.cfg.AdminEmail, generated)
	}
	s := b.service("users", userhttp.Routes(svc, signer))
	s.Verifier = auth.NewVerifier(signer)
	s.Workers = append(s.Workers, followKeyRing(signer, b.cfg.KeyRefresh, s.Log))
	return b.eventful(s, db, nil)
}

func (b *builder) orders() (*host.Service, error) {
	db, err := b.openDB("orders", orderdb.Migrations)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(orders.Modes, b.cfg.SagaMode) {
		return nil, fmt.Errorf("saga mode %q is not available; this build runs %v", b.cfg.SagaMode, orders.Modes)
	}
	store := orderdb.New(db)
	call := b.caller("orders")
	log := slog.New(telemetry.LogHandler(b.log.Handler())).With(slog.String("service", "orders"))
	meter := ordermetrics.New("orders")
	runner := orders.NewRunner(store, log.With(slog.String("component", "saga")))
	runner.Measure(meter)
	runner.Trace(b.tracer("orders"))
	svc := orders.NewService(store, orderclient.Catalog{Caller: call}, orderclient.Vault{Caller: call}, b.cfg.SagaMode, runner.Wake)
	svc.Measure(meter)
	proj := orders.NewProjector(store)
	rebuild := func(ctx context.Context) (int, error) {
		return store.RebuildViews(ctx, func(ctx context.Context, e event.Event) error { return orderevents.Project(ctx, proj, e) })
	}
	s := b.service("orders", orderhttp.Routes(svc, orderhttp.Deps{History: store.History, Rebuild: rebuild}))
	s.Metrics.Registry.MustRegister(meter.Collectors()...)
	// The outbox is orders' event log, which the read model is rebuilt
	// from: it is kept.
	broker, in, err := b.messaging(s, db, outbox.Options{Retention: -1})
	if err != nil {
		return nil, err
	}
	s.Workers = append(s.Workers, runner.Run)
	sub := subscriber(s, broker)
	s.Consumers = append(s.Consumers, func(ctx context.Context) {
		if err := orderevents.Consume(ctx, sub, in, svc, proj, s.Log); err != nil {
			s.Log.Error("orders stopped consuming", slog.Any("err", err))
		}
	})
	return b.withDB(s, db), nil
}

func (b *builder) gateway() (*host.Service, error) {
	log := b.log.With(slog.String("service", "gateway"))
	// The proxy and the gateway's own calls share one breaker per upstream.
	call := b.caller("gateway")
	tp := b.tracer("gateway")
	opts := []gateway.Option{gateway.WithEdges(call.Edges()),
		gateway.WithTransport(func(rt http.RoundTripper) http.RoundTripper { return telemetry.Transport(rt, tp) })}
	if !builtinRegistry(b.cfg.RegistryURL) {
		// No registry service to forward the admin's listing to: the
		// gateway answers it from etcd or DNS.
		opts = append(opts, gateway.WithRegistryListing(b.regClient.Services, registry.OpenAPI))
	}
	proxy, err := gateway.NewProxy(lateResolver{b}, b.cfg.RegistryURL, log, opts...)
	if err != nil {
		return nil, err
	}
	// The admin's views (the audit, every service's dead letters and
	// breakers) ask every service through edges of their own: watching the
	// shop, as the console does every second, never trips the breakers that
	// guard the customers' traffic, even while a service is down.
	views := b.viewer()
	auditor := func(ctx context.Context, token string) (audit.Report, error) {
		snap, err := audit.APISource{Caller: views, Token: token}.Snapshot(ctx)
		if err != nil {
			return audit.Report{}, err
		}
		return audit.Run(snap, time.Now(), audit.DefaultGrace), nil
	}
	routes := gateway.Routes(proxy, auditor, views)
	// The strangler fig: the monolith's old routes go to it, or to the
	// service that took each over, through the same proxy and breakers.
	strangler, err := facade.New(facade.Options{Legacy: proxy.Handler(facade.Legacy), Call: call, Admin: views, Start: b.cfg.FacadeRoutes,
		Log: log.With(slog.String("component", "facade"))})
	if err != nil {
		return nil, err
	}
	strangler.Mount(routes)
	console.New(console.Config{
		Collector: b.collector,
		Services:  b.regClient.Services,
		Admin:     routes,
		Ask: func(ctx context.Context, service, path, token string, out any) error {
			return views.Do(ctx, upstream.Call{Service: service, Method: http.MethodGet, Path: path, Token: token, Out: out})
		},
		Queued:   b.queueDepths(),
		Traffic:  b.traffic(),
		Topology: console.NewTopology(console.Nodes),
		Log:      log.With(slog.String("component", "console")),
	}).Mount(routes)
	s := b.service("gateway", routes)
	s.Metrics.Registry.MustRegister(strangler.Collectors()...)
	s.Workers = append(s.Workers, func(ctx context.Context) { strangler.Run(ctx, b.cfg.FacadeRoutes) })
	limited := gateway.Limit(s.Routes, gateway.NewLimits(gateway.LimitOptions{RPS: b.cfg.RateLimitRPS, Burst: b.cfg.RateLimitBurst}))
	// Spans from services in other processes: an internal path, so only
	// services with their tokens post there, and it is not rate limited
	// like a client.
	limited.Handle("POST "+console.OTLPPath, console.OTLPHandler(b.collector))
	s.Routes = limited
	s.Services = b.services
	s.Internal = func(p string) bool { return p == console.OTLPPath }
	s.Verifier = b.remoteVerifier("gateway")
	s.Health.Add("registry", func(ctx context.Context) error {
		_, err := b.regClient.Services(ctx)
		return err
	})
	return s, nil
}

// banner tells the person who started the shop where it is.
func (b *builder) banner() {
	fmt.Fprintln(b.stdout, "microshop is up")
	if addr, ok := b.addrs.Load("broker"); ok {
		fmt.Fprintf(b.stdout, "  %-10s nats://%s\n", "broker", addr)
	}
	for _, name := range config.Services {
		if addr, ok := b.addrs.Load(name); ok {
			fmt.Fprintf(b.stdout, "  %-10s http://%s\n", name, addr)
		}
	}
}

// guardedPublisher sends a service's events to the broker through the
// service's "broker" edge: the same breaker and bulkhead as its calls to
// other services, so an unreachable broker is failed fast while the relay
// backs off, and shows on /api/v1/admin/resilience like any other edge.
//
// Each publish is a producer span in the trace the event carries, and the
// event goes out carrying that span's context, so that its consumers'
// spans are the publish's children: request, publish and every consumer
// are one trace.
type guardedPublisher struct {
	edge   *resilience.Edge
	pub    bus.Publisher
	tracer trace.Tracer
}

func (g guardedPublisher) Publish(ctx context.Context, e event.Event) (err error) {
	ctx = telemetry.Propagator.Extract(ctx, propagation.MapCarrier{"traceparent": e.TraceParent})
	ctx, span := g.tracer.Start(ctx, "publish "+e.Topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.destination.name", e.Topic), attribute.String("messaging.message.id", e.ID)))
	defer func() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	if tp := telemetry.TraceParent(ctx); tp != "" {
		e.TraceParent = tp
	}
	leave, err := g.edge.Enter()
	if err != nil {
		return err
	}
	defer leave()
	done, err := g.edge.Try()
	if err != nil {
		return err
	}
	g.edge.Attempted()
	err = g.pub.Publish(ctx, e)
	switch {
	case err == nil:
		done(resilience.Success)
	case ctx.Err() != nil, errors.Is(err, rabbitbus.ErrUnroutable):
		// A caller that gave up, or a broker that answered "no queue yet"
		// (a consumer not yet bound at start-up), says nothing of its health.
		done(resilience.Ignored)
	default:
		done(resilience.Failure)
	}
	return err
}
