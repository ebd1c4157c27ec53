package natsbus

import (
	"context"
	"fmt"
	"log/slog"
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
	ns *server.Server
}

// Embedded starts a NATS server with JetStream storing its files in dir,
// listening on 127.0.0.1 on a port the system picks (never 4222, which
// belongs to the machine's own NATS). ctx bounds the start-up only; the
// server runs until Shutdown. Starting again on the same dir finds every
// stream, message and consumer as it was.
func Embedded(ctx context.Context, dir string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := &server.Options{
		ServerName:   "microshop",
		Host:         "127.0.0.1",
		Port:         server.RANDOM_PORT,
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
	ns.SetLoggerV2(slogAdapter{log.With("component", "nats-server")}, false, false, false)
	ns.Start()
	for !ns.ReadyForConnections(100 * time.Millisecond) {
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
	return &Server{ns: ns}, nil
}

// ClientURL is the nats:// address to Connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Shutdown stops the server, closing its client connections, and returns
// once its files are flushed and closed.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// slogAdapter passes the server's log lines to slog. Its notices (the
// start-up banner, stream recovery) go to Debug so that the shop's own log
// stays readable; warnings and errors keep their level.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.log.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.log.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.log.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.log.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.log.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  { a.log.Debug(fmt.Sprintf(format, v...)) }
