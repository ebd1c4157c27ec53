// Package config reads microshop's configuration once, at start-up, from the
// environment and an optional .env file, into typed values with defaults. No
// other package reads the environment.
package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Services lists every service microshop can run, in start order.
var Services = []string{"registry", "users", "catalog", "inventory", "payments", "shipping", "orders", "legacy", "gateway"}

// BusinessServices are the services that own data; each has a database.
var BusinessServices = []string{"users", "catalog", "inventory", "payments", "shipping", "orders", "legacy"}

// Saga modes: the three ways the checkout saga can run.
const (
	SagaOrchestration = "orchestration"
	SagaChoreography  = "choreography"
	SagaParallel      = "parallel"
)

// Secret is a string that never prints its value.
type Secret string

// String masks the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "********"
}

// LogValue masks the secret in structured logs.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Reveal returns the secret's value, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }

// Service is one service's own settings.
type Service struct {
	// Addr is where the service listens; port 0 picks a free one.
	Addr string
	// DBURL is the service's database; empty means the SQLite file in DataDir.
	DBURL string
}

// Config is everything microshop reads from its environment.
type Config struct {
	Addr         string // the gateway's public listen address
	RegistryAddr string // where the built-in registry listens when it runs here
	RegistryURL  string // where services find the registry
	RegistryTTL  time.Duration
	// AdvertiseHost is the host other processes reach this one at (a
	// pod's IP, a container's name), announced to the registry with each
	// service's port; empty: the listen address, or this machine's own
	// address when listening on every interface.
	AdvertiseHost string
	// PprofAddr, when set, is a loopback address where the process serves
	// Go's profiles (net/http/pprof) to whoever can reach it: for
	// measuring, off by default, and never on another interface.
	PprofAddr     string
	DataDir       string
	AdminEmail    string
	AdminPassword Secret
	JWTKeyFile    string // the users service's signing key ring (PEM, PKCS#8 Ed25519)
	// ServiceKeyFile is the shop-wide key every service signs its service
	// tokens with, for other services' internal endpoints (PEM, PKCS#8
	// Ed25519); every process of one shop must read the same key.
	ServiceKeyFile string
	// KeyRefresh is how often a service fetches the users service's
	// public keys again; a next signing key is published for twice as
	// long before a rotation may make it sign.
	KeyRefresh time.Duration
	TokenTTL   time.Duration
	SagaMode   string
	// BrokerURL is the message broker: nats://... (JetStream) or
	// amqp://... (RabbitMQ). Empty: `up` embeds JetStream, listening on
	// BrokerAddr, and `serve` connects to nats://BrokerAddr.
	BrokerURL  string
	BrokerAddr string
	// BrokerNamespace prefixes every stream, subject, exchange and queue,
	// so that several shops can share one broker.
	BrokerNamespace string
	// Failpoint, for crash tests only, makes a process kill itself at one
	// exact point: "<service>:before-publish" (an event committed to the
	// outbox, not yet published) or "<service>:after-publish" (published
	// and acknowledged, not yet marked). Empty in any real run.
	Failpoint string
	// RateLimitRPS and RateLimitBurst size each client's token bucket at
	// the gateway: RateLimitBurst requests at once, refilled at
	// RateLimitRPS a second. A client is a token's subject, or else an
	// address.
	RateLimitRPS   float64
	RateLimitBurst int
	// OTLPEndpoint is where spans are exported over OTLP/HTTP, e.g.
	// http://127.0.0.1:4318 (Jaeger, an OpenTelemetry Collector); empty:
	// traces are made and propagated but not exported.
	OTLPEndpoint string
	LogLevel     slog.Level
	LogFormat    string // json or text
	Services     map[string]Service
	// Resilience guards every call from one service to another.
	Resilience Resilience
	// FacadeRoutes is where the gateway's strangler-fig facade starts each
	// of the monolith's routes, by path: "legacy" or the route's new
	// service. Routes not named start on the monolith. A route the monolith
	// has handed over stays with its service whatever this says.
	FacadeRoutes map[string]string
}

// Load reads the configuration from getenv, falling back to the KEY=VALUE
// lines of dotenv (which may be nil) and then to defaults. It reports every
// invalid value at once.
func Load(getenv func(string) string, dotenv io.Reader) (Config, error) {
	file, err := parseDotenv(dotenv)
	if err != nil {
		return Config{}, fmt.Errorf("reading .env: %w", err)
	}
	get := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		if v, ok := file[key]; ok && v != "" {
			return v
		}
		return def
	}
	var errs []error
	// secret reads a secret from KEY, or from the file KEY_FILE names (a
	// Kubernetes Secret mounted as a file), never both.
	secret := func(key string) Secret {
		v, path := get(key, ""), get(key+"_FILE", "")
		switch {
		case v != "" && path != "":
			errs = append(errs, fmt.Errorf("%s and %s_FILE are both set: choose one", key, key))
		case path != "":
			b, err := os.ReadFile(path)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s_FILE: %w", key, err))
			}
			v = strings.TrimRight(string(b), "\r\n")
		}
		return Secret(v)
	}
	c := Config{
		Addr:            get("MICROSHOP_ADDR", "127.0.0.1:8080"),
		RegistryAddr:    get("MICROSHOP_REGISTRY_ADDR", "127.0.0.1:8090"),
		DataDir:         get("MICROSHOP_DATA_DIR", "./data"),
		AdminEmail:      get("MICROSHOP_ADMIN_EMAIL", "admin@microshop.local"),
		AdminPassword:   secret("MICROSHOP_ADMIN_PASSWORD"),
		SagaMode:        get("MICROSHOP_SAGA_MODE", SagaOrchestration),
		BrokerURL:       get("MICROSHOP_BROKER_URL", ""),
		BrokerAddr:      get("MICROSHOP_BROKER_ADDR", "127.0.0.1:4223"),
		BrokerNamespace: get("MICROSHOP_BROKER_NAMESPACE", ""),
		Failpoint:       get("MICROSHOP_FAILPOINT", ""),
		OTLPEndpoint:    strings.TrimRight(get("OTEL_EXPORTER_OTLP_ENDPOINT", ""), "/"),
		LogFormat:       get("LOG_FORMAT", ""),
		Services:        map[string]Service{},
	}
	c.RegistryURL = get("MICROSHOP_REGISTRY_URL", "http://"+c.RegistryAddr)
	c.AdvertiseHost = get("MICROSHOP_ADVERTISE_HOST", "")
	c.PprofAddr = get("MICROSHOP_PPROF_ADDR", "")
	c.JWTKeyFile = get("MICROSHOP_JWT_KEY_FILE", filepath.Join(c.DataDir, "keys", "jwt-ed25519.pem"))
	c.ServiceKeyFile = get("MICROSHOP_SERVICE_KEY_FILE", filepath.Join(c.DataDir, "keys", "service-ed25519.pem"))
	c.KeyRefresh, err = duration(get("MICROSHOP_JWKS_REFRESH", "30s"))
	errs = append(errs, field("MICROSHOP_JWKS_REFRESH", err))
	c.RegistryTTL, err = duration(get("MICROSHOP_REGISTRY_TTL", "6s"))
	errs = append(errs, field("MICROSHOP_REGISTRY_TTL", err))
	c.TokenTTL, err = duration(get("MICROSHOP_TOKEN_TTL", "1h"))
	errs = append(errs, field("MICROSHOP_TOKEN_TTL", err))
	c.RateLimitRPS, err = positiveFloat(get("MICROSHOP_RATE_LIMIT_RPS", "100"))
	errs = append(errs, field("MICROSHOP_RATE_LIMIT_RPS", err))
	c.RateLimitBurst, err = positiveInt(get("MICROSHOP_RATE_LIMIT_BURST", "200"))
	errs = append(errs, field("MICROSHOP_RATE_LIMIT_BURST", err))
	c.Resilience, err = loadResilience(get)
	errs = append(errs, err)
	c.FacadeRoutes, err = routeTable(get("MICROSHOP_FACADE_ROUTES", ""))
	errs = append(errs, field("MICROSHOP_FACADE_ROUTES", err))
	if err := c.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL", "info"))); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL: %w", err))
	}
	for _, name := range Services {
		key := "MICROSHOP_" + strings.ToUpper(name)
		c.Services[name] = Service{
			Addr:  get(key+"_ADDR", "127.0.0.1:0"),
			DBURL: get(key+"_DB_URL", ""),
		}
	}
	gw := c.Services["gateway"]
	gw.Addr = c.Addr
	c.Services["gateway"] = gw
	reg := c.Services["registry"]
	reg.Addr = c.RegistryAddr
	c.Services["registry"] = reg
	errs = append(errs, c.validate())
	return c, errors.Join(errs...)
}

func (c Config) validate() error {
	var errs []error
	for name, s := range c.Services {
		if _, _, err := net.SplitHostPort(s.Addr); err != nil {
			errs = append(errs, fmt.Errorf("listen address of %s %q: %w", name, s.Addr, err))
		}
	}
	if err := checkRegistryURL(c.RegistryURL); err != nil {
		errs = append(errs, fmt.Errorf("MICROSHOP_REGISTRY_URL %q: %w", c.RegistryURL, err))
	}
	if h := c.AdvertiseHost; h != "" && net.ParseIP(h) == nil && !dnsLabels(strings.ToLower(h)) {
		errs = append(errs, fmt.Errorf("MICROSHOP_ADVERTISE_HOST %q: want a host name or an IP address, with no port", h))
	}
	if a := c.PprofAddr; a != "" && !loopback(a) {
		errs = append(errs, fmt.Errorf("MICROSHOP_PPROF_ADDR %q: want a loopback host:port, e.g. 127.0.0.1:6060 (profiles show the process's insides)", a))
	}
	for _, name := range BusinessServices {
		if err := checkDBURL(name, c.Services[name].DBURL); err != nil {
			errs = append(errs, fmt.Errorf("MICROSHOP_%s_DB_URL %q: %w", strings.ToUpper(name), redactURL(c.Services[name].DBURL), err))
		}
	}
	if !strings.Contains(c.AdminEmail, "@") {
		errs = append(errs, fmt.Errorf("MICROSHOP_ADMIN_EMAIL %q: not an email address", c.AdminEmail))
	}
	if p := c.AdminPassword.Reveal(); p != "" && len(p) < 8 {
		errs = append(errs, errors.New("MICROSHOP_ADMIN_PASSWORD: at least 8 characters"))
	}
	if !slices.Contains([]string{SagaOrchestration, SagaChoreography, SagaParallel}, c.SagaMode) {
		errs = append(errs, fmt.Errorf("MICROSHOP_SAGA_MODE %q: want orchestration, choreography or parallel", c.SagaMode))
	}
	if c.BrokerURL != "" {
		if u, err := url.Parse(c.BrokerURL); err != nil || (u.Scheme != "nats" && u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
			errs = append(errs, errors.New("MICROSHOP_BROKER_URL: want nats://host:port or amqp://user:pass@host:port/"))
		}
	}
	if ns := c.BrokerNamespace; ns != "" && (len(ns) > 32 || strings.Trim(ns, "abcdefghijklmnopqrstuvwxyz0123456789-") != "") {
		errs = append(errs, fmt.Errorf("MICROSHOP_BROKER_NAMESPACE %q: 1 to 32 of a-z, 0-9 and -", ns))
	}
	if _, port, err := net.SplitHostPort(c.BrokerAddr); err != nil {
		errs = append(errs, fmt.Errorf("MICROSHOP_BROKER_ADDR %q: %w", c.BrokerAddr, err))
	} else if port == "4222" {
		errs = append(errs, errors.New("MICROSHOP_BROKER_ADDR: port 4222 belongs to a standalone NATS server; the embedded broker uses another"))
	}
	if fp := c.Failpoint; fp != "" {
		svc, point, _ := strings.Cut(fp, ":")
		if !slices.Contains(BusinessServices, svc) || (point != "before-publish" && point != "after-publish") {
			errs = append(errs, fmt.Errorf("MICROSHOP_FAILPOINT %q: want <service>:before-publish or <service>:after-publish", fp))
		}
	}
	if c.RegistryTTL < time.Second {
		errs = append(errs, errors.New("MICROSHOP_REGISTRY_TTL: at least 1s"))
	}
	if c.TokenTTL < time.Minute {
		errs = append(errs, errors.New("MICROSHOP_TOKEN_TTL: at least 1m"))
	}
	if c.KeyRefresh < 100*time.Millisecond || c.KeyRefresh > 10*time.Minute {
		errs = append(errs, errors.New("MICROSHOP_JWKS_REFRESH: from 100ms to 10m"))
	}
	if c.LogFormat != "" && c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("LOG_FORMAT %q: want json or text", c.LogFormat))
	}
	return errors.Join(errs...)
}

// checkRegistryURL checks that raw names a registry discovery can use:
// the built-in one (http://host:port), etcd or Kubernetes DNS.
func checkRegistryURL(raw string) error {
	const want = "want http://host:port (the built-in registry), etcd://host:port[,host:port][?prefix=/microshop] or kubernetes://namespace[?domain=cluster.local]"
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New(want)
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		if u.Host == "" {
			return errors.New(want)
		}
		return nil
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return fmt.Errorf("no user, path or fragment: %s", want)
	}
	switch u.Scheme {
	case "etcd":
		for ep := range strings.SplitSeq(u.Host, ",") {
			if host, port, err := net.SplitHostPort(ep); err != nil || host == "" || port == "" {
				return fmt.Errorf("etcd endpoint %q is not host:port: %s", ep, want)
			}
		}
		q := u.Query()
		if p := q.Get("prefix"); len(q) > 1 || (len(q) == 1 && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/"))) {
			return fmt.Errorf("etcd takes only prefix=/name (no trailing slash): %s", want)
		}
	case "kubernetes":
		q := u.Query()
		if !dnsLabels(u.Host) || strings.Contains(u.Host, ".") {
			return fmt.Errorf("the namespace must be a DNS label: %s", want)
		}
		if d := q.Get("domain"); len(q) > 1 || (len(q) == 1 && !dnsLabels(d)) {
			return fmt.Errorf("kubernetes takes only domain=<DNS name>: %s", want)
		}
	default:
		return errors.New(want)
	}
	return nil
}

// dnsLabels says whether s is a DNS name of lowercase RFC 1123 labels, as
// Kubernetes names namespaces and cluster domains.
func dnsLabels(s string) bool {
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' ||
			strings.Trim(label, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return false
		}
	}
	return true
}

// DBURL returns the database URL of a service: its own setting, or the SQLite
// file <DataDir>/<service>.db.
func (c Config) DBURL(service string) string {
	if u := c.Services[service].DBURL; u != "" {
		return u
	}
	return "sqlite://" + filepath.Join(c.DataDir, service+".db")
}

// checkDBURL checks that raw (empty: the embedded SQLite default) names a
// database the service can use: sqlite:///path, postgres:// (postgresql://)
// or mysql:// with a host and a database; and for catalog, whose documents
// are not SQL, sqlite:// or mongodb://. Reaching it is left to start-up.
func checkDBURL(service, raw string) error {
	if raw == "" {
		return nil
	}
	want := "want sqlite:///path, postgres://user@host:5432/db or mysql://user@host:3306/db"
	allowed := []string{"sqlite", "postgres", "postgresql", "mysql"}
	if service == "catalog" {
		want = "want sqlite:///path or mongodb://host:27017/db"
		allowed = []string{"sqlite", "mongodb", "mongodb+srv"}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %s", want)
	}
	if !slices.Contains(allowed, u.Scheme) {
		return fmt.Errorf("unsupported scheme %q: %s", u.Scheme, want)
	}
	switch u.Scheme {
	case "sqlite":
		if u.Host != "" || u.Path == "" || u.Path == "/" {
			return fmt.Errorf("sqlite takes a file path (three slashes: sqlite:///var/lib/microshop/%s.db): %s", service, want)
		}
	case "postgres", "postgresql", "mysql":
		if u.Hostname() == "" {
			return fmt.Errorf("no host: %s", want)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("port %q: %s", p, want)
			}
		}
		if db := strings.TrimPrefix(u.Path, "/"); db == "" || strings.Contains(db, "/") {
			return fmt.Errorf("want one database name as the path: %s", want)
		}
	case "mongodb", "mongodb+srv":
		if u.Host == "" {
			return fmt.Errorf("no host: %s", want)
		}
	}
	return nil
}

// Attrs describes the configuration for a start-up log line, secrets masked
// and database passwords redacted.
func (c Config) Attrs() []slog.Attr {
	attrs := []slog.Attr{
		slog.String("addr", c.Addr),
		slog.String("registry_url", c.RegistryURL),
		slog.String("data_dir", c.DataDir),
		slog.String("admin_email", c.AdminEmail),
		slog.Any("admin_password", c.AdminPassword),
		slog.String("saga_mode", c.SagaMode),
		slog.String("broker", redactURL(c.BrokerURL)),
		slog.Float64("rate_limit_rps", c.RateLimitRPS),
		slog.Int("rate_limit_burst", c.RateLimitBurst),
		slog.String("pprof_addr", c.PprofAddr),
	}
	for _, name := range BusinessServices {
		db := redactURL(c.DBURL(name))
		if name == "catalog" && c.Services[name].DBURL == "" {
			// The catalog's embedded default is a document database.
			db = "embedded FerretDB on SQLite in " + filepath.Join(c.DataDir, "catalog-ferret")
		}
		attrs = append(attrs, slog.String(name+"_db", db))
	}
	return attrs
}

// loopback reports whether hostport is host:port on a loopback address.
func loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// routeTable parses "/profile=users,/orders=legacy": each of the monolith's
// routes once, with where it starts. Which routes and targets exist is the
// facade's to check; this checks the form.
func routeTable(raw string) (map[string]string, error) {
	table := map[string]string{}
	for pair := range strings.SplitSeq(raw, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		route, target, ok := strings.Cut(pair, "=")
		route, target = strings.TrimSpace(route), strings.TrimSpace(target)
		if !ok || !strings.HasPrefix(route, "/") || target == "" {
			return nil, fmt.Errorf("%q: want /route=target pairs separated by commas", pair)
		}
		if _, dup := table[route]; dup {
			return nil, fmt.Errorf("route %s named twice", route)
		}
		table[route] = target
	}
	return table, nil
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

func duration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		if n, nerr := strconv.Atoi(s); nerr == nil {
			return time.Duration(n) * time.Second, nil
		}
		return 0, fmt.Errorf("%q is not a duration like 30s or 5m", s)
	}
	return d, nil
}

func positiveFloat(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || f <= 0 {
		return 0, fmt.Errorf("%q is not a number above 0", s)
	}
	return f, nil
}

func positiveInt(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a whole number above 0", s)
	}
	return n, nil
}

func field(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}

// parseDotenv reads KEY=VALUE lines, skipping blanks and # comments and
// removing matching quotes around a value.
func parseDotenv(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	if r == nil {
		return out, nil
	}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, value, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(key) == "" {
			return nil, fmt.Errorf("line %d: want KEY=VALUE", n)
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		out[strings.TrimSpace(key)] = value
	}
	return out, sc.Err()
}

// OpenDotenv opens path for Load, or returns nil when there is no such file.
func OpenDotenv(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return f, err
}
