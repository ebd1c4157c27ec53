package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/config"
)

// splitChildren are the processes of up --split: the embedded broker, the
// registry, every service and the gateway.
var splitChildren = append([]string{"broker"}, config.Services...)

// needProc skips a test that reads processes from /proc where there is
// none (or fails it in CI, where there must be).
func needProc(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no /proc: the split tests find the shop's processes there")
	}
	t.Skip("no /proc: the split tests find the shop's processes there")
}

// procStat reads a process's parent and state from /proc; ok is false
// when there is no such process.
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if i < 0 || len(f) < 2 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return ppid, f[0][0], true
}

// alive reports whether pid runs: a zombie, ended but not yet reaped, does
// not.
func alive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != 'Z'
}

// children returns the live processes the supervisor p started, by the
// service each runs (its --services flag).
func children(t *testing.T, p *proc) map[string]int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, state, ok := procStat(pid); !ok || ppid != p.cmd.Process.Pid || state == 'Z' {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for arg := range strings.SplitSeq(string(cmdline), "\x00") {
			if name, ok := strings.CutPrefix(arg, "--services="); ok {
				out[name] = pid
			}
		}
	}
	return out
}

// supervisorSaid returns the supervisor's log lines with msg about child.
func supervisorSaid(t *testing.T, p *proc, msg, child string) []logLine {
	t.Helper()
	var out []logLine
	for _, l := range p.logLines(t) {
		if l.str("service") == "supervisor" && l.str("msg") == msg && l.str("child") == child {
			out = append(out, l)
		}
	}
	return out
}

// restartedAfter waits until the child name runs again as a new process,
// up, after old was killed, and returns its pid.
func restartedAfter(t *testing.T, p *proc, name string, old int) int {
	t.Helper()
	var pid int
	waitFor(t, 30*time.Second, name+" to be restarted and up", func() bool {
		for _, l := range supervisorSaid(t, p, "up", name) {
			if n := int(l.fields["pid"].(float64)); n != old && alive(n) {
				pid = n
				return true
			}
		}
		return false
	})
	return pid
}

// TestSplitShopIsAProcessPerService starts up --split: the banner names the
// broker and every service, each runs in a process of its own, started by
// the supervisor and said so in its log, with each child's lines prefixed
// by its name; and a checkout runs across them.
func TestSplitShopIsAProcessPerService(t *testing.T) {
	needProc(t)
	shop := start(t, t.TempDir(), nil, "up", "--split")
	pids := children(t, shop)
	owner := map[int]string{}
	for _, name := range splitChildren {
		if !strings.Contains(shop.addrs[name], "://") {
			t.Errorf("the banner names no address for %s: %v", name, shop.addrs)
		}
		pid := pids[name]
		if pid == 0 {
			t.Errorf("no child process runs %s: %v", name, pids)
			continue
		}
		if other, ok := owner[pid]; ok {
			t.Errorf("%s and %s run in one process (pid %d)", name, other, pid)
		}
		owner[pid] = name
		if said := supervisorSaid(t, shop, "started", name); len(said) != 1 || int(said[0].fields["pid"].(float64)) != pid {
			t.Errorf("the supervisor's log says it started %s as %v, want once, as pid %d", name, said, pid)
		}
		// Its own banner line, on stdout, prefixed with its name.
		line := regexp.MustCompile(`(?m)^stdout: ` + name + ` *\|   ` + name + ` +` + regexp.QuoteMeta(shop.addrs[name]) + `$`)
		if !line.MatchString(shop.logs.String()) {
			t.Errorf("no prefixed banner line of %s in the output", name)
		}
	}
	t.Logf("split: processes=%d distinct_pids=%d", len(pids), len(owner))
	if len(owner) != len(splitChildren) {
		t.Errorf("%d distinct processes, want %d", len(owner), len(splitChildren))
	}

	c := newClient(t, shop.addrs["gateway"])
	catalog := seeded(t, c)
	_, token := c.signup("split@example.com")
	for _, mode := range []string{"orchestration", "choreography", "parallel"} {
		admin := c.login(adminEmail, adminPassword)
		c.must(200, "PUT", "/api/v1/admin/settings", admin, map[string]string{"saga_mode": mode})
		if o := placeAndWait(t, c, token, orderBody(catalog["MUG-001"].ID, 1, goodCard)); o["status"] != "COMPLETED" {
			t.Errorf("a %s checkout across processes ended %v, want COMPLETED", mode, o["status"])
		}
	}
	admin := c.login(adminEmail, adminPassword)
	if rep := c.must(200, "GET", "/api/v1/admin/audit", admin, nil); rep.obj(t)["ok"] != true {
		t.Errorf("audit: %s", rep.Body)
	}
}

// TestSplitKillOneService kills the payments process with SIGKILL while its
// card provider holds a charge in flight: a real outage of payments alone.
// While it is down the rest of the shop serves (the catalog answers, the
// order in flight waits, PENDING, and a new order is refused as payments
// unavailable); the supervisor starts it again after its backoff, and then
// every order ends and the invariants hold.
func TestSplitKillOneService(t *testing.T) {
	needProc(t)
	// A long first backoff keeps payments down while the test looks.
	const delay = 5 * time.Second
	shop := start(t, t.TempDir(), nil, "up", "--split", "--restart-delay="+delay.String())
	c := newClient(t, shop.addrs["gateway"]).unchecked() // a dead service answers nothing documented
	catalog := seeded(t, c)
	admin := c.login(adminEmail, adminPassword)
	_, token := c.signup("outage@example.com")

	// The provider answers no charge, so the order placed now is mid-charge
	// when payments dies; its mode lives in the process, and comes back ok.
	// One order only: payments holds its charge's transaction while the
	// provider hangs, and with it every other write of its SQLite database,
	// a second order's card among them. Choreographed, so that the charge
	// is an event payments took and never acknowledged.
	c.must(200, "PUT", "/api/v1/admin/provider", admin, map[string]string{"mode": "timeout"})
	c.must(200, "PUT", "/api/v1/admin/settings", admin, map[string]string{"saga_mode": "choreography"})
	placed := []string{c.must(202, "POST", "/api/v1/orders", token, orderBody(catalog["TEE-002"].ID, 1, goodCard)).obj(t)["id"].(string)}
	victim := children(t, shop)["payments"]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitFor(t, 10*time.Second, "the payments process to die", func() bool { return !alive(victim) })

	// The outage, as a client sees it.
	reads := map[int]int{}
	for range 20 {
		reads[c.call("GET", "/api/v1/products/"+catalog["MUG-001"].ID, "", nil).Status]++
	}
	waiting := 0
	for _, id := range placed {
		if s := c.must(200, "GET", "/api/v1/orders/"+id, token, nil).obj(t)["status"]; s != "COMPLETED" && s != "CANCELLED" {
			waiting++
		}
	}
	refused := c.call("POST", "/api/v1/orders", token, orderBody(catalog["MUG-001"].ID, 1, goodCard))
	stillDown := children(t, shop)["payments"] == 0
	t.Logf("outage: product_reads=%v orders_waiting=%d/%d new_order=%d payments_still_down=%v", reads, waiting, len(placed), refused.Status, stillDown)
	if !stillDown {
		t.Fatalf("payments was restarted within %v of the kill, before the outage was looked at (took %v): the machine is too slow for this test's backoff", delay, time.Since(killed))
	}
	if reads[200] != 20 {
		t.Errorf("product reads while payments is down: %v, want 20 × 200", reads)
	}
	if waiting != len(placed) {
		t.Errorf("%d of the %d orders in flight ended while payments was down, want none", len(placed)-waiting, len(placed))
	}
	if refused.Status != 503 {
		t.Errorf("a new order while payments is down = %d %s, want 503 (payments unavailable)", refused.Status, refused.Body)
	}

	// Back, after the backoff, as a new process; then everything ends.
	back := restartedAfter(t, shop, "payments", victim)
	restarts := supervisorSaid(t, shop, "restarting", "payments")
	if len(restarts) != 1 || restarts[0].str("status") != "signal: killed" || time.Duration(restarts[0].fields["after"].(float64)) != delay {
		t.Errorf("the supervisor logged the restarts %v, want one, of a process killed by a signal, after %v", restarts, delay)
	}
	for name, pid := range children(t, shop) {
		if name != "payments" && len(supervisorSaid(t, shop, "started", name)) != 1 {
			t.Errorf("%s (pid %d) was restarted too; only payments died", name, pid)
		}
	}
	// The event the dead process took comes back to the new one once the
	// broker's AckWait (30s) has passed since it was delivered.
	completed := 0
	for _, id := range placed {
		var o map[string]any
		waitFor(t, 60*time.Second, "order "+id+" to end", func() bool {
			o = c.must(200, "GET", "/api/v1/orders/"+id, token, nil).obj(t)
			return o["status"] == "COMPLETED" || o["status"] == "CANCELLED"
		})
		if o["status"] == "COMPLETED" {
			completed++
		}
	}
	if o := placeAndWait(t, c, token, orderBody(catalog["MUG-001"].ID, 1, goodCard)); o["status"] != "COMPLETED" {
		t.Errorf("an order placed once payments was back ended %v, want COMPLETED", o["status"])
	}
	rep := c.must(200, "GET", "/api/v1/admin/audit", admin, nil)
	t.Logf("verdict: killed=payments pid=%d restarted_pid=%d orders=%d completed=%d cancelled=%d audit_ok=%v", victim, back, len(placed), completed, len(placed)-completed, rep.obj(t)["ok"])
	if rep.obj(t)["ok"] != true {
		t.Errorf("audit after payments came back: %s", rep.Body)
	}
}

// TestSplitKillTheBroker kills the broker's process with SIGKILL while
// checkouts are placed and run: the supervisor starts it again on the same
// address and data directory, the services reconnect, and every order the
// shop accepted ends, once, with the invariants holding.
func TestSplitKillTheBroker(t *testing.T) {
	needProc(t)
	shop := start(t, t.TempDir(), nil, "up", "--split")
	c := newClient(t, shop.addrs["gateway"]).unchecked()
	catalog := seeded(t, c)
	admin := c.login(adminEmail, adminPassword)
	_, token := c.signup("broker-kill@example.com")
	skus := []string{"MUG-001", "TEE-002", "STICK-005", "PLANT-010"}
	cards := []string{goodCard, goodCard, goodCard, declinedCard}
	modes := []string{"orchestration", "choreography", "parallel"}
	body := func(i int) map[string]any {
		return orderBody(catalog[skus[i%len(skus)]].ID, 1, cards[i%len(cards)])
	}
	const killAt, total = 20, 60
	victim := children(t, shop)["broker"]
	var (
		mu       sync.Mutex
		accepted = map[int]string{} // request number -> order id
		unknown  []int              // requests with no answer
		refused  int                // answered 503: the shop said no
		next     int
		wg       sync.WaitGroup
	)
	for range 6 {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= total {
					return
				}
				if i%5 == 0 {
					c.try("PUT", "/api/v1/admin/settings", admin, map[string]string{"saga_mode": modes[(i/5)%3]})
				}
				if i == killAt {
					if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
						t.Error(err)
					}
				}
				r, err := c.try("POST", "/api/v1/orders", token, body(i), "Idempotency-Key", fmt.Sprintf("broker-%d", i))
				mu.Lock()
				switch {
				case err != nil:
					unknown = append(unknown, i)
				case r.Status == 202:
					accepted[i] = r.obj(t)["id"].(string)
				case r.Status == 503:
					refused++
				default:
					t.Errorf("order %d: %d %s", i, r.Status, r.Body)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	back := restartedAfter(t, shop, "broker", victim)
	for _, i := range unknown { // reconcile each unknown outcome by its key
		r := c.must(202, "POST", "/api/v1/orders", token, body(i), "Idempotency-Key", fmt.Sprintf("broker-%d", i))
		accepted[i] = r.obj(t)["id"].(string)
	}
	completed, cancelled := 0, 0
	ids := map[string]bool{}
	for _, id := range accepted {
		ids[id] = true
		switch waitEnded(t, c, token, id)["status"] {
		case "COMPLETED":
			completed++
		case "CANCELLED":
			cancelled++
		}
	}
	banners := regexp.MustCompile(`(?m)^stdout: broker *\|   broker +(\S+)$`).FindAllStringSubmatch(shop.logs.String(), -1)
	rep := c.must(200, "GET", "/api/v1/admin/audit", admin, nil)
	t.Logf("verdict: killed=broker pid=%d restarted_pid=%d orders=%d accepted=%d refused=%d unknown=%d completed=%d cancelled=%d duplicated=%d audit_ok=%v",
		victim, back, total, len(accepted), refused, len(unknown), completed, cancelled, len(accepted)-len(ids), rep.obj(t)["ok"])
	if len(banners) != 2 || banners[0][1] != shop.addrs["broker"] || banners[1][1] != shop.addrs["broker"] {
		t.Errorf("the broker said it listened at %v, want twice at %s (the services were given that address)", banners, shop.addrs["broker"])
	}
	if len(accepted) == 0 || len(ids) != len(accepted) {
		t.Errorf("accepted %d orders as %d ids, want some, each its own", len(accepted), len(ids))
	}
	if rep.obj(t)["ok"] != true {
		t.Errorf("audit after the broker came back: %s", rep.Body)
	}
}

// TestSplitStopsEveryChild ends the supervisor, gracefully with SIGTERM and
// then with SIGKILL: either way no child process is left running.
func TestSplitStopsEveryChild(t *testing.T) {
	needProc(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			shop := start(t, t.TempDir(), nil, "up", "--split")
			pids := children(t, shop)
			if len(pids) != len(splitChildren) {
				t.Fatalf("children %v, want one of each of %v", pids, splitChildren)
			}
			if err := shop.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-shop.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("the supervisor did not end within 30s of %v", sig)
			}
			if sig == syscall.SIGTERM {
				if code := shop.cmd.ProcessState.ExitCode(); code != 0 {
					t.Errorf("the supervisor exited %d after SIGTERM, want 0", code)
				}
				// Each stopped once, gracefully, the gateway first and the
				// broker and registry last.
				var order []string
				for _, l := range shop.logLines(t) {
					if l.str("service") == "supervisor" && l.str("msg") == "stopped" {
						order = append(order, l.str("child"))
						if l.str("status") != "exit status 0" {
							t.Errorf("%s stopped with %s, want exit status 0", l.str("child"), l.str("status"))
						}
					}
				}
				t.Logf("stopped in the order %v", order)
				if len(order) != len(splitChildren) || order[0] != "gateway" || !slices.Contains(order[len(order)-2:], "broker") || !slices.Contains(order[len(order)-2:], "registry") {
					t.Errorf("children stopped in the order %v, want each once: the gateway first, the broker and the registry last", order)
				}
				if slices.ContainsFunc(shop.logLines(t), func(l logLine) bool { return l.str("msg") == "restarting" }) {
					t.Error("a child was restarted while the shop stopped")
				}
			}
			// A child killed with its parent may take a moment to go.
			waitFor(t, 10*time.Second, "every child to end", func() bool {
				for _, pid := range pids {
					if alive(pid) {
						return false
					}
				}
				return true
			})
		})
	}
}
