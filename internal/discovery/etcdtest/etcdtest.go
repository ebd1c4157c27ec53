// Package etcdtest runs a real etcd server for tests: Debian's etcd-server,
// one member on loopback ports, its data in the test's temporary directory.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is where Debian's etcd-server package installs etcd.
const Binary = "/usr/bin/etcd"

// Server is one etcd member run by a test, stopped when the test ends.
type Server struct {
	t        testing.TB
	Endpoint string // host:port clients connect to
	DataDir  string
	peer     string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logs *lockedWriter // the running etcd's output, for failures
}

// Start runs etcd on free loopback ports and waits until it answers. Where
// etcd is not installed the test is skipped, or fails when CI=true.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		msg := "etcd is not installed at " + Binary + " (apt-get install etcd-server)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	s := &Server{t: t, DataDir: filepath.Join(t.TempDir(), "etcd")}
	var err error
	// A port found free may be taken before etcd binds it: try again.
	for range 3 {
		s.Endpoint, s.peer = freePort(t), freePort(t)
		if err = s.start(); err == nil {
			t.Cleanup(func() {
				s.Stop()
				if t.Failed() {
					t.Logf("etcd's output:\n%s", s.logs.String())
				}
			})
			return s
		}
	}
	t.Fatalf("starting etcd: %v", err)
	return nil
}

// URL is the registry URL of this etcd, with the key prefix given.
func (s *Server) URL(prefix string) string {
	return "etcd://" + s.Endpoint + "?prefix=" + prefix
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	client, peer := "http://"+s.Endpoint, "http://"+s.peer
	cmd := exec.Command(Binary,
		"--name", "test",
		"--data-dir", s.DataDir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "test="+peer,
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn",
	)
	logs := &lockedWriter{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no etcd outlives the test binary
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done, s.logs = cmd, done, logs
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("etcd exited: %s", logs.String())
		default:
		}
		if healthy(client) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-done
	return fmt.Errorf("etcd not healthy after 15s: %s", logs.String())
}

func healthy(client string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, client+"/health", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body [64]byte
	n, _ := resp.Body.Read(body[:])
	return resp.StatusCode == http.StatusOK && strings.Contains(string(body[:n]), `"true"`)
}

// Stop stops etcd gracefully and waits for it; it keeps its data.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart starts etcd again on the same ports, with its data kept or, when
// wipe is set, lost, as a member rebuilt from nothing would be.
func (s *Server) Restart(wipe bool) {
	s.t.Helper()
	s.Stop()
	if wipe {
		if err := os.RemoveAll(s.DataDir); err != nil {
			s.t.Fatal(err)
		}
	}
	if err := s.start(); err != nil {
		s.t.Fatalf("restarting etcd: %v", err)
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type lockedWriter struct {
	mu sync.Mutex
	w  strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
