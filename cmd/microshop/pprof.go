package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// servePprof serves Go's profiles at addr (a loopback address, checked by
// the configuration) until ctx ends, for measuring a running shop:
//
//	go tool pprof -top 'http://127.0.0.1:6060/debug/pprof/profile?seconds=15'
//
// It is the process's only listener outside the services' own routes, so
// that no service's mux ever serves /debug/. A port that is taken is logged
// and the shop runs on without profiles.
func servePprof(ctx context.Context, addr string, log *slog.Logger) {
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Warn("not serving profiles", slog.String("addr", addr), slog.Any("err", err))
		return
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("serving profiles", slog.String("url", "http://"+l.Addr().String()+"/debug/pprof/"))
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("profiles server stopped", slog.Any("err", err))
		}
	}()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
}
