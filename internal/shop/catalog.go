package shop

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/catalog"
	"github.com/microshop/microshop/internal/catalog/catalogdb"
	"github.com/microshop/microshop/internal/catalog/catalogdoc"
	"github.com/microshop/microshop/internal/catalog/cataloghttp"
	"github.com/microshop/microshop/internal/docdb"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/host"
	"github.com/microshop/microshop/internal/inbox"
	"github.com/microshop/microshop/internal/outbox"
	"github.com/microshop/microshop/internal/telemetry"
	"github.com/microshop/microshop/internal/web"
)

// catalog builds the catalog service on its document database: the MongoDB
// that MICROSHOP_CATALOG_DB_URL names, or by default FerretDB embedded in
// this process on SQLite files in <DataDir>/catalog-ferret. An sqlite://
// URL keeps the catalog on its SQL store and transactional outbox.
func (b *builder) catalog() (*host.Service, error) {
	dbURL := b.cfg.Services["catalog"].DBURL
	if strings.HasPrefix(dbURL, "sqlite:") {
		db, err := b.openDB("catalog", catalogdb.Migrations)
		if err != nil {
			return nil, err
		}
		return b.eventful(b.service("catalog", cataloghttp.Routes(catalog.NewService(catalogdb.New(db)))), db, nil)
	}
	db, err := b.openDocDB("catalog", dbURL)
	if err != nil {
		return nil, err
	}
	if err := catalogdoc.Migrate(b.ctx, db); err != nil {
		return nil, fmt.Errorf("indexing the catalog database (%s): %w", docdb.Redact(dbURL), err)
	}
	s := b.service("catalog", cataloghttp.Routes(catalog.NewService(catalogdoc.New(db))))
	conn, err := b.connect(s.Name)
	if err != nil {
		return nil, err
	}
	// The relay logs in the trace of each event it publishes, as the SQL
	// services' relays do (see messaging).
	s.Log = slog.New(telemetry.LogHandler(s.Log.Handler()))
	opts := outbox.Options{Service: s.Name, Lease: 5 * time.Second}
	b.failpoint(s.Name, &opts)
	pub := guardedPublisher{edge: b.caller(s.Name).Edges().Edge("broker"), pub: conn,
		tracer: b.tracer(s.Name).Tracer("github.com/microshop/microshop/internal/docdb")}
	relay := docdb.NewRelay(db, catalogdoc.Collection, pub, s.Log.With(slog.String("component", "relay")), opts)
	db.OnCommit(relay.Wake)
	s.Metrics.Registry.MustRegister(relay.Collectors()...)
	s.Health.Add("db", db.Ping)
	s.Health.Add("broker", conn.Ping)
	mountNoDeadLetters(s.Routes)
	s.Workers = append(s.Workers, func(ctx context.Context) {
		if err := relay.Run(ctx); err != nil && ctx.Err() == nil {
			s.Log.Error("outbox relay stopped", slog.Any("err", err))
		}
	})
	s.Verifier = b.remoteVerifier(s.Name)
	return s, nil
}

// openDocDB opens service name's document database: the MongoDB at dbURL,
// or, when dbURL is empty, its own FerretDB started in this process on a
// loopback port, keeping its files in <DataDir>/<name>-ferret. Both close
// when the shop stops, the database before its server.
func (b *builder) openDocDB(name, dbURL string) (*docdb.DB, error) {
	if dbURL != "" {
		db, err := docdb.Open(b.ctx, dbURL, name)
		if err != nil {
			return nil, fmt.Errorf("opening the %s database: %w", name, err)
		}
		b.closeLater(db)
		return db, nil
	}
	srv, err := docdb.Embed(b.ctx, filepath.Join(b.cfg.DataDir, name+"-ferret"), "127.0.0.1:0",
		b.log.With(slog.String("service", name), slog.String("component", "ferretdb")))
	if err != nil {
		return nil, fmt.Errorf("opening the %s database: %w", name, err)
	}
	b.closeLater(srv)
	db, err := srv.Open(b.ctx, name)
	if err != nil {
		return nil, fmt.Errorf("opening the %s database on the embedded server: %w", name, err)
	}
	b.closeLater(db)
	return db, nil
}

// mountNoDeadLetters answers the dead-letter admin routes for a service that
// consumes no events, so it has no inbox and never a dead letter: the
// listing every service offers (the gateway gathers them all) is empty,
// and a replay finds nothing.
func mountNoDeadLetters(mux *http.ServeMux) {
	mux.HandleFunc(inbox.ListPattern, func(w http.ResponseWriter, r *http.Request) {
		if _, err := auth.Admin(r.Context()); err != nil {
			web.Error(w, r, err)
			return
		}
		if _, _, err := web.PageParams(r, inbox.DefaultPageLimit, inbox.MaxPageLimit); err != nil {
			web.Error(w, r, err)
			return
		}
		web.JSON(w, http.StatusOK, web.Page[struct{}]{Items: []struct{}{}})
	})
	mux.HandleFunc(inbox.ReplayPattern, func(w http.ResponseWriter, r *http.Request) {
		if _, err := auth.Admin(r.Context()); err != nil {
			web.Error(w, r, err)
			return
		}
		web.Error(w, r, fail.New(fail.NotFound, "dead letter not found"))
	})
}
