package natsbus

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// SyncInterval is how often the embedded server flushes its files to disk
// in the background. JetStream's default is two minutes, and an
// acknowledged publish then lives only in the operating system's page
// cache until the next flush: it survives the process dying, not the
// machine. The embedded server instead writes every message with SyncAlways
// (the file is opened O_SYNC), so an acknowledged publish is on disk when
// Publish returns; this interval then only bounds how stale the server's
// index and consumer-state files can be, which it rebuilds from the
// messages after a crash anyway.
const SyncInterval = time.Second

// Server is a NATS server with JetStream running inside this process: the
// broker of the one-process shop, so that nothing needs installing.
type Server struct {
	ns   *server.Server
	host string // as given to Embedded
}

// machinePort is the port of the machine's own NATS server, which the
// embedded one must never take: a shop that did would receive, or shadow,
// everything meant for that server.
const machinePort = 4222

// Embedded starts a NATS server with JetStream storing its files in dir,
// listening on addr ("host:port"; port 0 lets the system pick a free one,
// and port machinePort is refused). ctx bounds the start-up only; the
// server runs until Shutdown. Starting again on the same dir finds every
// stream, message and consumer as it was.
func Embedded(ctx context.Context, dir, addr string, log *slog.Logger) (*Server, error) {
	host, port, err := listenAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("starting embedded nats server: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := &server.Options{
		ServerName:   "microshop",
		Host:         host,
		Port:         port,
		JetStream:    true,
		StoreDir:     dir,
		SyncAlways:   true,
		SyncInterval: SyncInterval,
		NoSigs:       true, // the shop owns the signals and shuts the server down itself
		MaxPayload:   1 << 20,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configuring embedded nats server: %w", err)
	}
	fatal := make(chan string, 1)
	ns.SetLoggerV2(slogAdapter{log.With("component", "nats-server"), fatal}, false, false, false)
	ns.Start()
	for !ns.ReadyForConnections(100 * time.Millisecond) {
		select {
		case msg := <-fatal: // e.g. the port is taken: it will never be ready
			ns.Shutdown()
			ns.WaitForShutdown()
			return nil, fmt.Errorf("starting embedded nats server on %s: %s", addr, msg)
		default:
		}
		if err := ctx.Err(); err != nil {
			ns.Shutdown()
			ns.WaitForShutdown()
			return nil, fmt.Errorf("starting embedded nats server in %s: %w", dir, err)
		}
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("starting embedded nats server in %s: jetstream did not start", dir)
	}
	return &Server{ns: ns, host: host}, nil
}

// listenAddr splits addr into the server's host and port options. Port 0
// becomes server.RANDOM_PORT, since the server reads 0 as its default port,
// which is machinePort.
func listenAddr(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("listen address %q: %w", addr, err)
	}
	port, err = strconv.Atoi(p)
	switch {
	case err != nil || port < 0 || port > 65535:
		return "", 0, fmt.Errorf("listen address %q: port must be a number from 0 to 65535", addr)
	case port == machinePort:
		return "", 0, fmt.Errorf("listen address %q: port %d belongs to the machine's own NATS server; use another port, or 0 for a free one", addr, machinePort)
	case port == 0:
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// ClientURL is the nats:// address to Connect to: the address the server
// listens on, with loopback for a server listening on every interface.
func (s *Server) ClientURL() string {
	addr, ok := s.ns.Addr().(*net.TCPAddr)
	if !ok {
		return s.ns.ClientURL()
	}
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
		if ip := net.ParseIP(s.host); ip != nil && ip.To4() == nil {
			host = "::1" // the server was given "::"
		}
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(addr.Port))
}

// Shutdown stops the server, closing its client connections, and returns
// once its files are flushed and closed.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// slogAdapter passes the server's log lines to slog. Its notices (the
// start-up banner, stream recovery) go to Debug so that the shop's own log
// stays readable; warnings and errors keep their level. The first fatal
// error also goes to fatal, since the server reports a failed start (a port
// already in use) only in its log.
type slogAdapter struct {
	log   *slog.Logger
	fatal chan<- string
}

func (a slogAdapter) Noticef(format string, v ...any) { a.log.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.log.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	a.log.Error(msg)
	select {
	case a.fatal <- msg:
	default:
	}
}

func (a slogAdapter) Errorf(format string, v ...any) { a.log.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any) { a.log.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any) { a.log.Debug(fmt.Sprintf(format, v...)) }
