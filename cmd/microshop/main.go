// Command microshop runs the microshop e-commerce shop: every service in one
// process (up), or the chosen services (serve).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mattn/go-isatty"

	"github.com/microshop/microshop/internal/config"
	"github.com/microshop/microshop/internal/shop"
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
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

var errUsage = errors.New("usage")

const usage = `microshop is an e-commerce shop made of independent services.

Usage:
  microshop up                         start the whole shop in this process
  microshop serve --services=a,b       start only the named services
  microshop load --target URL          send shoppers to a running shop, and report
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
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: microshop up [--env-file FILE]\n\nStarts the registry, every service and the gateway in this process, each on its\nown loopback port with its own database, seeds a new shop's catalog, and\nprints where to reach it. Ctrl-C stops everything gracefully.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, log, err := setup(*envFile, getenv, stderr)
	if err != nil {
		return err
	}
	return shop.Run(ctx, shop.Options{Config: cfg, Services: config.Services, Seed: true, EmbedBroker: true, Stdout: stdout, Log: log})
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	envFile := fs.String("env-file", ".env", "a file of KEY=VALUE settings, read when present")
	list := fs.String("services", "", "comma-separated services to run, e.g. orders,payments")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: microshop serve --services=a,b [--env-file FILE]\n\nStarts only the named services (of %s); they find the\nothers through the registry at MICROSHOP_REGISTRY_URL.\n", strings.Join(config.Services, ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var services []string
	for s := range strings.SplitSeq(*list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			services = append(services, s)
		}
	}
	if len(services) == 0 {
		fs.Usage()
		return errUsage
	}
	cfg, log, err := setup(*envFile, getenv, stderr)
	if err != nil {
		return err
	}
	return shop.Run(ctx, shop.Options{Config: cfg, Services: services, Stdout: stdout, Log: log})
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
