package supervise_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/supervise"
)

// The test binary is also the children the tests supervise: started with
// SUPERVISE_TEST_CHILD set, it behaves as that names instead of testing.
func TestMain(m *testing.M) {
	if mode := os.Getenv("SUPERVISE_TEST_CHILD"); mode != "" {
		os.Exit(child(mode, os.Getenv("SUPERVISE_TEST_NAME"), os.Getenv("SUPERVISE_TEST_FILE")))
	}
	os.Exit(m.Run())
}

// child is one helper process:
//   - serve: says it is up and waits for SIGTERM, then notes that it
//     stopped (in file) and exits 0;
//   - crash: says it is up and exits 3 at once;
//   - stubborn: says it is up and ignores SIGTERM;
//   - never: exits 1 without saying it is up.
func child(mode, name, file string) int {
	if mode == "never" {
		fmt.Fprintln(os.Stderr, "cannot start")
		return 1
	}
	if mode == "stubborn" {
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("up", name)
		time.Sleep(time.Hour)
		return 0
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Fprintln(os.Stderr, "hello from", name)
	fmt.Println("up", name)
	if mode == "crash" {
		return 3
	}
	<-term
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return 1
	}
	defer f.Close()
	fmt.Fprintln(f, name)
	return 0
}

// syncBuffer is a buffer safe for the supervisor's goroutines.
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

// run is a supervisor of the helper children under test, and what it
// wrote.
type run struct {
	t              *testing.T
	sup            *supervise.Supervisor
	stdout, stderr syncBuffer
	log            syncBuffer
	stopped        string // the file children note their stop in
	cancel         context.CancelFunc
	done           chan error
}

// helper is a child of mode, named name.
func (r *run) helper(name, mode string) *supervise.Child {
	return &supervise.Child{
		Name: name,
		Env: func() []string {
			return []string{"SUPERVISE_TEST_CHILD=" + mode, "SUPERVISE_TEST_NAME=" + name, "SUPERVISE_TEST_FILE=" + r.stopped}
		},
		Up: func(line string) bool { return line == "up "+name },
	}
}

func newRun(t *testing.T, backoff supervise.Backoff) *run {
	t.Helper()
	program, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r := &run{t: t, stopped: filepath.Join(t.TempDir(), "stopped")}
	r.sup = &supervise.Supervisor{
		Program: program,
		Stdout:  &r.stdout,
		Stderr:  &r.stderr,
		Log:     slog.New(slog.NewJSONHandler(&r.log, nil)),
		Backoff: backoff,
		Grace:   5 * time.Second,
	}
	return r
}

// start runs the supervisor until stop.
func (r *run) start(stages ...[]*supervise.Child) {
	r.sup.Stages = stages
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.sup.Run(ctx) }()
	r.t.Cleanup(func() { r.stop() })
}

// stop stops the supervisor and returns what Run returned.
func (r *run) stop() error {
	r.t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the next stop
		return err
	case <-time.After(30 * time.Second):
		r.t.Fatalf("the supervisor did not stop within 30s; its log:\n%s", r.log.String())
		return nil
	}
}

// entries are the supervisor's log lines with msg.
func (r *run) entries(msg string) []map[string]any {
	var out []map[string]any
	for line := range strings.SplitSeq(r.log.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// pids are the children named name the supervisor said it started, in
// order.
func (r *run) pids(name string) []int { return r.said("started", name) }

// ups are the children named name the supervisor said were up, in order.
func (r *run) ups(name string) []int { return r.said("up", name) }

func (r *run) said(msg, name string) []int {
	var out []int
	for _, e := range r.entries(msg) {
		if e["child"] == name {
			out = append(out, int(e["pid"].(float64)))
		}
	}
	return out
}

func (r *run) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		select {
		case err := <-r.done:
			r.done <- err
			r.t.Fatalf("the supervisor stopped (%v) while waiting for %s; its log:\n%s", err, what, r.log.String())
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s; the supervisor's log:\n%s", what, r.log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// alive reports whether pid is a process that has not ended (a zombie,
// ended but not yet reaped, has).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return syscall.Kill(pid, 0) == nil // no /proc: ask the kernel
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestBackoffNext(t *testing.T) {
	b := supervise.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Reset: time.Minute}
	for _, tc := range []struct {
		name         string
		prev, uptime time.Duration
		want         time.Duration
	}{
		{"a first crash", 0, time.Second, 100 * time.Millisecond},
		{"a second crash in a row doubles", 100 * time.Millisecond, time.Second, 200 * time.Millisecond},
		{"a crash that never came up doubles", 400 * time.Millisecond, 0, 800 * time.Millisecond},
		{"doubling stops at the cap", 6400 * time.Millisecond, time.Second, 10 * time.Second},
		{"the cap holds", 10 * time.Second, time.Second, 10 * time.Second},
		{"a minute up starts over", 10 * time.Second, time.Minute, 100 * time.Millisecond},
		{"just short of a minute does not", 10 * time.Second, time.Minute - time.Millisecond, 10 * time.Second},
	} {
		if got := b.Next(tc.prev, tc.uptime); got != tc.want {
			t.Errorf("%s: Next(%v, %v) = %v, want %v", tc.name, tc.prev, tc.uptime, got, tc.want)
		}
	}
	long := supervise.Backoff{Initial: 20 * time.Second, Max: 10 * time.Second, Reset: time.Minute}
	if got := long.Next(20*time.Second, time.Second); got != 20*time.Second {
		t.Errorf("with Initial above Max, Next = %v, want Initial (20s): a restart never waits less than the first", got)
	}
}

// TestRestartsACrashingChildWithBackoff lets a child crash again and again:
// each restart is logged with its exit status, and the waits follow the
// policy (doubling from Initial, capped at Max).
func TestRestartsACrashingChildWithBackoff(t *testing.T) {
	r := newRun(t, supervise.Backoff{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond, Reset: time.Hour})
	r.start([]*supervise.Child{r.helper("crasher", "crash")})
	r.waitFor("five restarts", func() bool { return len(r.pids("crasher")) >= 6 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	var waits []time.Duration
	for _, e := range r.entries("restarting")[:5] {
		waits = append(waits, time.Duration(e["after"].(float64)))
		if e["child"] != "crasher" || e["status"] != "exit status 3" {
			t.Errorf("restart logged as %v, want child crasher and status exit status 3", e)
		}
	}
	ms := time.Millisecond
	if want := []time.Duration{10 * ms, 20 * ms, 40 * ms, 40 * ms, 40 * ms}; !slices.Equal(waits, want) {
		t.Errorf("waits before the restarts = %v, want %v", waits, want)
	}
	if pids := r.pids("crasher"); len(pids) < 6 || len(slices.Compact(slices.Sorted(slices.Values(pids)))) != len(pids) {
		t.Errorf("pids started = %v, want at least 6, each a new process", pids)
	}
}

// TestRestartsAChildKilledFromOutside kills a child with SIGKILL, as a crash
// would: it is started again, as a new process, and the restart says how
// the old one ended.
func TestRestartsAChildKilledFromOutside(t *testing.T) {
	r := newRun(t, supervise.Backoff{Initial: 10 * time.Millisecond, Max: time.Second, Reset: time.Minute})
	r.start([]*supervise.Child{r.helper("victim", "serve")})
	r.waitFor("the child to be up", func() bool { return len(r.ups("victim")) == 1 })
	first := r.pids("victim")[0]
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r.waitFor("the child to start again", func() bool { return len(r.pids("victim")) == 2 })
	second := r.pids("victim")[1]
	if second == first || !alive(second) || alive(first) {
		t.Errorf("after the kill: first pid %d alive=%v, second %d alive=%v; want the first gone and a new one running", first, alive(first), second, alive(second))
	}
	restarts := r.entries("restarting")
	if len(restarts) != 1 || restarts[0]["status"] != "signal: killed" {
		t.Errorf("restarts logged = %v, want one, status signal: killed", restarts)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if alive(second) {
		t.Errorf("the restarted child %d outlived the supervisor's stop", second)
	}
}

// TestStopsLastStageFirstAndRestartsNothing stops a supervisor of three
// stages: every child gets SIGTERM and exits, the last stage's first and
// the first stage's last, and no child that exits so is started again.
func TestStopsLastStageFirstAndRestartsNothing(t *testing.T) {
	r := newRun(t, supervise.DefaultBackoff())
	r.start(
		[]*supervise.Child{r.helper("broker", "serve")},
		[]*supervise.Child{r.helper("orders", "serve"), r.helper("payments", "serve")},
		[]*supervise.Child{r.helper("gateway", "serve")},
	)
	r.waitFor("every child to be up", func() bool { return len(r.ups("gateway")) == 1 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	b, err := os.ReadFile(r.stopped)
	if err != nil {
		t.Fatal(err)
	}
	order := strings.Fields(string(b))
	if len(order) != 4 || order[0] != "gateway" || order[3] != "broker" || !slices.Contains(order[1:3], "orders") || !slices.Contains(order[1:3], "payments") {
		t.Errorf("children stopped in the order %v, want gateway, then orders and payments, then broker", order)
	}
	if n := len(r.entries("restarting")); n != 0 {
		t.Errorf("%d restarts while stopping, want none", n)
	}
	for _, name := range []string{"broker", "orders", "payments", "gateway"} {
		pids := r.pids(name)
		if len(pids) != 1 || alive(pids[0]) {
			t.Errorf("%s: started %v, want one process, gone once stopped", name, pids)
		}
	}
	for _, e := range r.entries("stopped") {
		if e["status"] != "exit status 0" {
			t.Errorf("stopped %v, want exit status 0 (a graceful stop)", e)
		}
	}
}

// TestKillsAChildThatIgnoresSIGTERM gives a child that ignores SIGTERM its
// grace period, then kills it.
func TestKillsAChildThatIgnoresSIGTERM(t *testing.T) {
	r := newRun(t, supervise.DefaultBackoff())
	r.sup.Grace = 200 * time.Millisecond
	r.start([]*supervise.Child{r.helper("stubborn", "stubborn")})
	r.waitFor("the child to be up", func() bool { return len(r.ups("stubborn")) == 1 })
	if err := r.stop(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	stopped := r.entries("stopped")
	if len(stopped) != 1 || stopped[0]["status"] != "signal: killed" || alive(r.pids("stubborn")[0]) {
		t.Errorf("stopped %v, want the child killed after its grace period", stopped)
	}
}

// TestAChildThatNeverComesUpFailsTheStart starts a child that exits at once:
// Run stops the children it had started and says which failed, and how.
func TestAChildThatNeverComesUpFailsTheStart(t *testing.T) {
	r := newRun(t, supervise.DefaultBackoff())
	up := false
	r.sup.OnUp = func(io.Writer) { up = true }
	r.start([]*supervise.Child{r.helper("registry", "serve")}, []*supervise.Child{r.helper("users", "never")})
	select {
	case err := <-r.done:
		r.done <- err
		if err == nil || !strings.Contains(err.Error(), "users exited before it was up (exit status 1)") {
			t.Errorf("Run = %v, want users exited before it was up (exit status 1)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("Run still running 20s after a child failed to start; its log:\n%s", r.log.String())
	}
	if pids := r.pids("registry"); len(pids) != 1 || alive(pids[0]) {
		t.Errorf("registry started %v, want one process, stopped when the start failed", pids)
	}
	if up {
		t.Error("OnUp was called, though a child never came up")
	}
	if !strings.Contains(r.stderr.String(), "users    | cannot start\n") {
		t.Errorf("stderr = %q, want the failing child's own words, prefixed", r.stderr.String())
	}
}

// TestPrefixesEveryLineWithItsChild checks what a person reads: each line a
// child writes, on stdout or stderr, prefixed with its name, aligned; and
// the supervisor's own lines (OnUp) whole.
func TestPrefixesEveryLineWithItsChild(t *testing.T) {
	r := newRun(t, supervise.DefaultBackoff())
	upCalled := make(chan struct{})
	r.sup.OnUp = func(w io.Writer) {
		fmt.Fprint(w, "all up\n")
		close(upCalled)
	}
	r.start([]*supervise.Child{r.helper("a", "serve"), r.helper("inventory", "serve")})
	select {
	case <-upCalled:
	case <-time.After(20 * time.Second):
		t.Fatalf("OnUp not called; log:\n%s", r.log.String())
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	out := strings.Split(strings.TrimSpace(r.stdout.String()), "\n")
	slices.Sort(out)
	if want := []string{"a         | up a", "all up", "inventory | up inventory"}; !slices.Equal(out, want) {
		t.Errorf("stdout lines = %q, want %q", out, want)
	}
	errLines := strings.Split(strings.TrimSpace(r.stderr.String()), "\n")
	slices.Sort(errLines)
	if want := []string{"a         | hello from a", "inventory | hello from inventory"}; !slices.Equal(errLines, want) {
		t.Errorf("stderr lines = %q, want %q", errLines, want)
	}
}
