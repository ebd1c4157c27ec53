// Command microshop runs the microshop e-commerce shop: every service in one
// process (up), or the chosen services (serve).
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/config"
	"github.com/microshop/microshop/internal/shop"
	"github.com/microshop/microshop/internal/supervise"
	"github.com/microshop/microshop/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "microshop:", err)
		}
		stop()
		os.Exit(exitCode(err))
	}
}

func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, errUsage) || errors.Is(err, errNotAsked) {
		return 2
	}
	return 1
}

var errUsage = errors.New("usage")

const usage = `microshop is an e-commerce shop made of independent services.

Usage:
  microshop up                         start the whole shop in this process
  microshop up --split                 start every service as a process of its own,
                                       and restart any that crashes
  microshop serve --services=a,b       start only the named services
  microshop load --target URL          send shoppers to a running shop, and report
  microshop audit --target URL         check a running shop's invariants across its
                                       services; exit 1 if any fails
  microshop help                       show this help

Services: %s.

Configuration comes from the environment and from a .env file in the
working directory (the environment wins); see the README for every setting.
`

// run is the whole program; main only wires it to the process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, strings.Join(config.Services, ", "))
		return errUsage
	}
	switch args[0] {
	case "up":
		return up(ctx, args[1:], getenv, stdout, stderr)
	case "serve":
		return serve(ctx, args[1:], getenv, stdout, stderr)
	case "load":
		return loadTraffic(ctx, args[1:], getenv, stdout, stderr)
	case "audit":
		return auditShop(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprintf(stdout, usage, strings.Join(config.Services, ", "))
		return nil
	default:
		fmt.Fprintf(stderr, "microshop: unknown command %q\n\n"+usage, args[0], strings.Join(config.Services, ", "))
		return errUsage
	}
}

func up(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	envFile := fs.String("env-file", ".env", "a file of KEY=VALUE settings, read when present")
	split := fs.Bool("split", false, "run the broker, the registry, every service and the gateway each as a process of its own, supervised by this one")
	restartDelay := fs.Duration("restart-delay", supervise.DefaultBackoff().Initial, "with --split, the wait before restarting a process that crashed; it doubles with every crash in a row, up to "+supervise.DefaultBackoff().Max.String())
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: microshop up [--split [--restart-delay D]] [--env-file FILE]\n\nStarts the registry, every service and the gateway in this process, each on its\nown loopback port with its own database, seeds a new shop's catalog, and\nprints where to reach it. Ctrl-C stops everything gracefully.\n\nWith --split, each of them (and the embedded broker) runs as a child process\nof its own instead, started as `microshop serve --services=NAME`: its lines\nare prefixed with its name, a child that crashes is started again (with\nbackoff), and Ctrl-C stops them all, the gateway first and the broker last.\nKilling one child is a real outage of that service only.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, log, err := setup(*envFile, getenv, stderr)
	if err != nil {
		return err
	}
	if *split {
		return upSplit(ctx, cfg, *envFile, *restartDelay, log, stdout, stderr)
	}
	servePprof(ctx, cfg.PprofAddr, log)
	return shop.Run(ctx, shop.Options{Config: cfg, Services: config.Services, Seed: true, EmbedBroker: true, Stdout: stdout, Log: log})
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	envFile := fs.String("env-file", ".env", "a file of KEY=VALUE settings, read when present")
	list := fs.String("services", "", "comma-separated services to run, e.g. orders,payments")
	seed := fs.Bool("seed", false, "seed a new shop's catalog and stock once up, through the gateway run here, as up does")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: microshop serve --services=a,b [--seed] [--env-file FILE]\n\nStarts only the named services (of %s), or broker:\nthe embedded JetStream, listening on MICROSHOP_BROKER_ADDR. They find the\nothers through the registry at MICROSHOP_REGISTRY_URL.\n", strings.Join(config.Services, ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var services []string
	embedBroker := false
	for s := range strings.SplitSeq(*list, ",") {
		switch s = strings.TrimSpace(s); s {
		case "":
		case "broker":
			embedBroker = true
		default:
			services = append(services, s)
		}
	}
	if len(services) == 0 && !embedBroker {
		fs.Usage()
		return errUsage
	}
	cfg, log, err := setup(*envFile, getenv, stderr)
	if err != nil {
		return err
	}
	if embedBroker && cfg.BrokerURL != "" {
		return errors.New("the broker service is the embedded JetStream, but MICROSHOP_BROKER_URL names another broker: unset it, or leave broker out")
	}
	servePprof(ctx, cfg.PprofAddr, log)
	return shop.Run(ctx, shop.Options{Config: cfg, Services: services, Seed: *seed, EmbedBroker: embedBroker, Stdout: stdout, Log: log})
}

// setup reads the configuration and makes the logger.
func setup(envFile string, getenv func(string) string, stderr io.Writer) (config.Config, *slog.Logger, error) {
	f, err := config.OpenDotenv(envFile)
	if err != nil {
		return config.Config{}, nil, fmt.Errorf("opening %s: %w", envFile, err)
	}
	var cfg config.Config
	if f != nil {
		cfg, err = config.Load(getenv, f)
		f.Close()
	} else {
		cfg, err = config.Load(getenv, nil)
	}
	if err != nil {
		return config.Config{}, nil, fmt.Errorf("configuration: %w", err)
	}
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewJSONHandler(stderr, opts)
	if cfg.LogFormat == "text" || (cfg.LogFormat == "" && isTerminal(stderr)) {
		h = slog.NewTextHandler(stderr, opts)
	}
	// Every line logged in a trace (a request's, an event's) says which.
	log := slog.New(telemetry.LogHandler(h))
	log.LogAttrs(context.Background(), slog.LevelInfo, "configuration", cfg.Attrs()...)
	return cfg, log, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// upSplit runs the shop as a process per service, supervised by this one:
// the embedded broker and the registry first, then every service, then the
// gateway, each a child started as `serve` with what it needs to find the
// others. It prints where the shop is once every child is up, as up does.
func upSplit(ctx context.Context, cfg config.Config, envFile string, restartDelay time.Duration, log *slog.Logger, stdout, stderr io.Writer) error {
	program, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this program to start the services with: %w", err)
	}
	// Every child signs and checks service tokens with one key: it is made
	// here, once, rather than raced for by children starting together.
	if _, err := auth.LoadOrCreateKey(cfg.ServiceKeyFile); err != nil {
		return fmt.Errorf("loading the service key: %w", err)
	}
	// The children share one environment, so they could not share one
	// profiles address: profile a split shop's process with serve.
	shared := []string{"MICROSHOP_DATA_DIR=" + cfg.DataDir, "MICROSHOP_PPROF_ADDR="}
	if cfg.AdminPassword.Reveal() == "" {
		// users creates the first admin with it, and the gateway seeds
		// the catalog as that admin: both must know the same password.
		pass := rand.Text()
		fmt.Fprintf(stdout, "Admin %s has password %s if the shop has no admin yet (shown once; set MICROSHOP_ADMIN_PASSWORD to choose it)\n", cfg.AdminEmail, pass)
		shared = append(shared, "MICROSHOP_ADMIN_PASSWORD="+pass)
	}
	seen := &banners{urls: map[string]string{}}
	child := func(name string, env func() []string, args ...string) *supervise.Child {
		return &supervise.Child{
			Name: name,
			Args: append([]string{"serve", "--services=" + name, "--env-file", envFile}, args...),
			Env:  func() []string { return append(slices.Clone(shared), env()...) },
			Up:   func(line string) bool { return seen.learn(name, line) },
		}
	}
	// The broker, the registry and the gateway are reached by an address
	// others were given (in their environment, or in the banner), so each
	// listens again where it first did; a service is found through the
	// registry, and may come back anywhere.
	var first []*supervise.Child
	if strings.HasPrefix(cfg.RegistryURL, "http://") || strings.HasPrefix(cfg.RegistryURL, "https://") {
		// The built-in registry, as up runs it; with etcd or Kubernetes
		// DNS every child finds the others there instead.
		first = append(first, child("registry", func() []string {
			return []string{"MICROSHOP_REGISTRY_ADDR=" + seen.listen("registry", cfg.RegistryAddr)}
		}))
	}
	if cfg.BrokerURL == "" {
		first = append(first, child("broker", func() []string {
			return []string{"MICROSHOP_BROKER_ADDR=" + seen.listen("broker", cfg.BrokerAddr)}
		}))
	}
	found := func() []string {
		var env []string
		if u := seen.url("registry"); u != "" {
			env = append(env, "MICROSHOP_REGISTRY_URL="+u)
		}
		if u := seen.url("broker"); u != "" {
			env = append(env, "MICROSHOP_BROKER_URL="+u)
		}
		return env
	}
	var services []*supervise.Child
	for _, name := range config.BusinessServices {
		services = append(services, child(name, found))
	}
	gateway := child("gateway", func() []string {
		return append(found(), "MICROSHOP_ADDR="+seen.listen("gateway", cfg.Addr))
	}, "--seed")

	backoff := supervise.DefaultBackoff()
	backoff.Initial = restartDelay
	sup := &supervise.Supervisor{
		Program: program,
		Stages:  [][]*supervise.Child{first, services, {gateway}},
		Stdout:  stdout,
		Stderr:  stderr,
		Log:     log.With(slog.String("service", "supervisor")),
		Backoff: backoff,
		OnUp:    func(w io.Writer) { _, _ = io.WriteString(w, seen.banner()) },
	}
	return sup.Run(ctx)
}

// banners keeps what each child of up --split said in its banner: the
// line "name url" that says it is up, and where.
type banners struct {
	mu   sync.Mutex
	urls map[string]string
}

// learn reads a line the child name wrote, and reports whether it was the
// child's banner line.
func (b *banners) learn(name, line string) bool {
	f := strings.Fields(line)
	if len(f) != 2 || f[0] != name || !strings.Contains(f[1], "://") {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.urls[name] = f[1]
	return true
}

// url is where the child name said it is, or "" before it said so.
func (b *banners) url(name string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.urls[name]
}

// listen is the host:port the child name listens on: where it said it
// listened, or def before it first did.
func (b *banners) listen(name, def string) string {
	_, hostport, ok := strings.Cut(b.url(name), "://")
	if !ok {
		return def
	}
	return hostport
}

// banner is up's banner for the whole split shop.
func (b *banners) banner() string {
	var s strings.Builder
	s.WriteString("microshop is up\n")
	for _, name := range append([]string{"broker"}, config.Services...) {
		if u := b.url(name); u != "" {
			fmt.Fprintf(&s, "  %-10s %s\n", name, u)
		}
	}
	return s.String()
}
