package docdb

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Server is FerretDB running in this process: a MongoDB wire-protocol
// server on a loopback port, keeping each database in an SQLite file of its
// folder. It lets the same document store code run with no server
// installed.
type Server struct {
	uri    string
	writes sync.Mutex // shared by every DB opened with Open; see the package documentation
	stop   context.CancelFunc
	done   chan struct{}
}

// Embed starts FerretDB on the SQLite files in dir (created if missing),
// listening on addr (a loopback host:port; port 0 picks a free one), and
// returns once it accepts connections. FerretDB logs through log, errors
// only (see minLevel). Close stops it.
func Embed(ctx context.Context, dir, addr string, log *slog.Logger) (*Server, error) {
	if host, _, err := net.SplitHostPort(addr); err != nil || !net.ParseIP(host).IsLoopback() {
		return nil, fmt.Errorf("embedded document server address %q: want a loopback host:port", addr)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the document database folder: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    slog.New(minLevel{Handler: log.Handler(), min: slog.LevelError}),
	})
	if err != nil {
		return nil, fmt.Errorf("starting the embedded document server: %w", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &Server{stop: stop, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = f.Run(runCtx) // it returns once runCtx ends, having closed its listener and files
	}()
	// MongoDBURI waits until the listener has its address.
	s.uri = f.MongoDBURI()
	return s, nil
}

// URI is the server's mongodb:// address, with no database.
func (s *Server) URI() string { return s.uri }

// Open connects to database name on the server. Every DB opened here shares
// the server's write lock, so that DB.Exclusive makes a read-dependent
// write atomic across all of them.
func (s *Server) Open(ctx context.Context, name string) (*DB, error) {
	return open(ctx, s.uri, name, &s.writes)
}

// Close stops the server and waits until its files are closed. Close the
// DBs opened on it first.
func (s *Server) Close() error {
	s.stop()
	<-s.done
	return nil
}

// minLevel passes on only records at min or above. FerretDB logs every
// command a client gets wrong (a duplicate key included) as a warning with
// the whole wire message, and the driver's end of session as an unknown
// command: noise that would bury the service's own log.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(attrs), min: h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}
