package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/catalog/cataloghttp"
	"github.com/microshop/microshop/internal/contract"
	"github.com/microshop/microshop/internal/gateway"
	"github.com/microshop/microshop/internal/inventory/inventoryhttp"
	"github.com/microshop/microshop/internal/legacy/legacyhttp"
	"github.com/microshop/microshop/internal/orders/orderhttp"
	"github.com/microshop/microshop/internal/payments/paymenthttp"
	"github.com/microshop/microshop/internal/registry"
	"github.com/microshop/microshop/internal/shipping/shippinghttp"
	"github.com/microshop/microshop/internal/users/userhttp"
)

// binary is the microshop program under test, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "microshop-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "microshop")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building microshop:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const adminEmail, adminPassword = "admin@example.com", "admin-password-e2e"

// proc is a running microshop process.
type proc struct {
	t     testing.TB
	cmd   *exec.Cmd
	addrs map[string]string // service -> http://host:port, from the banner
	logs  *syncBuffer
	done  chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// splitMode says that the end-to-end tests run the shop as a process per
// service, supervised (up --split), rather than in one process: set
// MICROSHOP_TEST_SPLIT=1 to run the whole suite that way.
var splitMode = os.Getenv("MICROSHOP_TEST_SPLIT") == "1"

// start runs microshop with args and env on free ports, and waits until it
// prints that it is up (or, for serve, until waitFor answers /ready). In
// split mode, up is up --split.
func start(t testing.TB, dataDir string, env []string, args ...string) *proc {
	t.Helper()
	if splitMode && args[0] == "up" && !slices.Contains(args, "--split") {
		if slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "MICROSHOP_FAILPOINT=") }) {
			// The failpoint kills the one process it fires in; a supervisor
			// restarts that child with the same failpoint, which fires again
			// at every start: the test's crash of the whole shop is up's.
			// TestSplitKill* kill one process of a split shop instead.
			t.Skip("split mode: a failpoint would crash the restarted service at every start; this test crashes the one-process shop")
		}
		args = append([]string{"up", "--split"}, args[1:]...)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(),
		"MICROSHOP_ADDR=127.0.0.1:0",
		"MICROSHOP_REGISTRY_ADDR=127.0.0.1:0",
		"MICROSHOP_BROKER_ADDR=127.0.0.1:0",
		// The tests drive load through a handful of clients: rate limits
		// are tested on their own (TestGatewayLimits), not here.
		"MICROSHOP_RATE_LIMIT_RPS=100000",
		"MICROSHOP_RATE_LIMIT_BURST=100000",
		"MICROSHOP_DATA_DIR="+dataDir,
		"MICROSHOP_ADMIN_EMAIL="+adminEmail,
		"MICROSHOP_ADMIN_PASSWORD="+adminPassword,
		"MICROSHOP_REGISTRY_TTL=3s",
		"LOG_FORMAT=json",
		"LOG_LEVEL=info",
	)
	cmd.Env = append(cmd.Env, env...)
	cmd.Dir = dataDir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, addrs: map[string]string{}, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.logs
	if slices.Contains(args, "--split") {
		cmd.Stderr = &unprefixed{w: p.logs}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	up := make(chan struct{})
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		banner := false
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte("stdout: " + line + "\n"))
			if line == "microshop is up" {
				banner = true
				continue
			}
			if f := strings.Fields(line); banner && len(f) == 2 && strings.Contains(f[1], "://") {
				p.addrs[f[0]] = f[1]
				if f[0] == "broker" {
					continue
				}
				if f[0] == "gateway" || (args[0] == "serve" && len(p.addrs) == strings.Count(args[1], ",")+1) {
					close(up)
					banner = false
				}
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case <-up:
	case <-p.done:
		t.Fatalf("microshop %v exited before it was up:\n%s", args, p.logs)
	case <-time.After(30 * time.Second):
		p.kill()
		t.Fatalf("microshop %v not up after 30s:\n%s", args, p.logs)
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("logs of microshop %v:\n%s", args, tail(p.logs.String(), 80))
		}
	})
	return p
}

// unprefixed passes on the lines a split shop logs without the name the
// supervisor prefixed each child's lines with, so that the tests read the
// log lines of many processes as they read those of one.
type unprefixed struct {
	w       io.Writer
	partial []byte
}

// childPrefix is the supervisor's prefix of a child's line: its name,
// aligned, and a bar.
var childPrefix = regexp.MustCompile(`^[a-z]+ *\| `)

func (u *unprefixed) Write(b []byte) (int, error) {
	u.partial = append(u.partial, b...)
	for {
		i := bytes.IndexByte(u.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := u.partial[:i+1]
		if loc := childPrefix.FindIndex(line); loc != nil {
			line = line[loc[1]:]
		}
		if _, err := u.w.Write(line); err != nil {
			return 0, err
		}
		u.partial = u.partial[i+1:]
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// stop asks the process to stop gracefully and waits for it.
func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.t.Errorf("microshop did not stop within 20s of SIGTERM")
		p.kill()
	}
}

// kill ends the process at once, as a crash would.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// client talks to the shop through its gateway.
type client struct {
	t    testing.TB
	base string
	hc   *http.Client
}

// newClient returns a client of base whose every exchange is checked against
// the published OpenAPI documents: an undocumented route or status, or an
// answer that breaks its schema, fails the test.
func newClient(t testing.TB, base string) *client {
	t.Helper()
	docs, err := contract.LoadAll(gateway.OpenAPI, userhttp.OpenAPI, cataloghttp.OpenAPI, inventoryhttp.OpenAPI,
		orderhttp.OpenAPI, paymenthttp.OpenAPI, shippinghttp.OpenAPI, legacyhttp.OpenAPI, registry.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	tr := contract.Transport(docs, nil, func(err error) { t.Errorf("contract: %v", err) })
	return &client{t: t, base: base, hc: &http.Client{Timeout: 15 * time.Second, Transport: tr}}
}

// unchecked returns a client of the same base that checks no contract, for
// requests no document describes (an internal path asked of the gateway).
func (c *client) unchecked() *client {
	return &client{t: c.t, base: c.base, hc: &http.Client{Timeout: 15 * time.Second}}
}

// response is an answer with its decoded JSON body.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.Body, err)
	}
}

func (r response) obj(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	r.json(t, &m)
	return m
}

// call sends a request; body, when not nil, goes as JSON. A failure to get
// an answer fails the test.
func (c *client) call(method, path, token string, body any, headers ...string) response {
	c.t.Helper()
	r, err := c.try(method, path, token, body, headers...)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// try sends a request and returns the answer, or the error when there was
// none (the server died, the connection broke).
func (c *client) try(method, path, token string, body any, headers ...string) (response, error) {
	var rd io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rd = strings.NewReader(s)
		} else {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
	}
	req, err := http.NewRequestWithContext(context.Background(), method, c.base+path, rd)
	if err != nil {
		return response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// must sends a request and fails the test unless the status is want.
func (c *client) must(want int, method, path, token string, body any, headers ...string) response {
	c.t.Helper()
	r := c.call(method, path, token, body, headers...)
	if r.Status != want {
		c.t.Fatalf("%s %s = %d %s, want %d", method, path, r.Status, r.Body, want)
	}
	return r
}

// signup creates a customer and returns their id and token.
func (c *client) signup(email string) (id, token string) {
	c.t.Helper()
	r := c.must(201, "POST", "/api/v1/users", "", map[string]string{"email": email, "name": "Test " + email, "password": "password-" + email})
	id = r.obj(c.t)["id"].(string)
	return id, c.login(email, "password-"+email)
}

func (c *client) login(email, password string) string {
	c.t.Helper()
	r := c.must(200, "POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": password})
	return r.obj(c.t)["access_token"].(string)
}

// waitFor polls cond every 20 ms until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
