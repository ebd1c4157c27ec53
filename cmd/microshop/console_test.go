package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium, which the console's browser test drives.
const chromiumPath = "/usr/bin/chromium"

// TestConsoleInABrowser drives the console in a real browser against a real
// shop, as a person would: it signs in, checks every part of the shop is
// drawn, opens a service's panel and sees its live health, starts traffic
// and watches real spans move and the order counters rise, replays a
// checkout's trace, then takes inventory down from its panel and watches
// the node turn red and the gateway's breaker open, and brings it back.
// The browser's console must stay free of errors throughout. With
// MICROSHOP_SCREENSHOTS set, the screenshots the README shows are written
// there.
func TestConsoleInABrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is needed at %s for the console's browser test: %v", chromiumPath, err)
		}
		t.Skipf("chromium is not installed at %s (apt-get install chromium): the console's browser test needs it", chromiumPath)
	}
	// A short open timeout lets the test watch the breaker close again.
	shop := start(t, t.TempDir(), []string{"MICROSHOP_BREAKER_OPEN_TIMEOUT=3s"}, "up")
	base := shop.addrs["gateway"]
	c := newClient(t, base).unchecked() // the console's routes and injected 503s are in no document
	admin := c.login(adminEmail, adminPassword)
	mug := seeded(t, c)["MUG-001"].ID
	var topology struct {
		Nodes []struct{ Name, Kind string }
	}
	c.must(200, "GET", "/api/v1/console/topology", admin, nil).json(t, &topology)
	if len(topology.Nodes) == 0 {
		t.Fatal("the topology lists no nodes")
	}

	b := newBrowser(t)
	shots := screenshotDir(t)

	// 1. Sign in; every node of the topology is drawn.
	b.do("opening the console", chromedp.Navigate(base+"/"))
	b.do("signing in",
		chromedp.WaitVisible(chromedp.ID("signin-password")),
		chromedp.SetValue(chromedp.ID("signin-email"), adminEmail),
		chromedp.SendKeys(chromedp.ID("signin-password"), adminPassword),
		chromedp.Click(chromedp.ID("signin-submit")),
	)
	b.wait("the diagram drawn after sign-in", `document.querySelector('#node-gateway') !== null`)
	var missing []string
	for _, n := range topology.Nodes {
		if !b.is(fmt.Sprintf(`document.querySelector('#node-%s') !== null`, n.Name)) {
			missing = append(missing, n.Kind+" "+n.Name)
		}
	}
	t.Logf("console: topology nodes=%d drawn=%d", len(topology.Nodes), len(topology.Nodes)-len(missing))
	if len(missing) > 0 {
		t.Errorf("nodes not drawn: %v", missing)
	}
	b.wait("the live stream", `document.querySelector('#conn').textContent === 'live'`)

	// 2. A service's panel, with its health from the live stats.
	b.do("clicking orders", chromedp.Click(chromedp.ID("node-orders")))
	b.wait("the orders panel", `document.querySelector('#panel-title')?.textContent === 'orders' && !document.querySelector('#panel').hidden`)
	b.wait("orders' health up in its panel", `document.querySelector('#panel-health').textContent === 'up'`)
	b.wait("orders' API document listed", `document.querySelectorAll('#panel-api details').length > 0`)

	// 3. Traffic: real spans move along the edges and the counters rise.
	// A modest rate: the suite runs beside other packages' tests on two
	// cores, and a shop pushed past its bulkheads answers 503s, which the
	// browser logs as errors.
	b.do("starting traffic at 10/s",
		chromedp.SetValue(chromedp.ID("traffic-rate"), "10"),
		chromedp.Click(chromedp.ID("traffic-start")),
	)
	b.wait("flows drawn", `document.querySelectorAll('circle.flow').length > 0`)
	b.wait("a completed order counted", `Number(document.querySelector('#count-completed').textContent.replace(/,/g, '')) > 0`)
	flows := b.number(`document.querySelectorAll('circle.flow').length`)
	completed := b.number(`Number(document.querySelector('#count-completed').textContent.replace(/,/g, ''))`)
	t.Logf("console: with traffic at 10/s, flows on screen=%v completed=%v", flows, completed)
	b.wait("traces in the orders panel", `document.querySelectorAll('#panel-traces .trace').length > 0`)
	b.shot(shots, "console-panel.png")
	b.do("closing the panel", chromedp.Click(chromedp.CSS(".panel-close")))
	b.wait("flows drawn", `document.querySelectorAll('circle.flow').length > 0`)
	b.shot(shots, "console-overview.png")

	// The sagas: recent orders with their steps, and a checkout replayed.
	b.do("opening the sagas", chromedp.Click(chromedp.ID("tab-sagas")))
	b.wait("recent orders listed", `document.querySelectorAll('#orders details.order').length > 0`)
	// The lists refresh as orders arrive, so these clicks go through the
	// page: a node replaced under the mouse would fail a synthetic click.
	b.do("opening the newest order's saga", chromedp.Evaluate[chromedp.Void](`document.querySelector('#orders details.order summary').click()`))
	b.wait("its saga's steps", `document.querySelectorAll('#orders details[open] .timeline li .s-name').length > 0`)
	b.do("scrolling the sagas to the top", chromedp.Evaluate[chromedp.Void](`document.querySelector('#sagas').scrollTop = 0`))
	b.shot(shots, "console-sagas.png")
	b.wait("checkout traces listed", `document.querySelectorAll('#checkout-traces .trace').length > 0`)
	b.do("replaying a checkout", chromedp.Evaluate[chromedp.Void](`document.querySelector('#checkout-traces .trace').click()`))
	b.wait("the replay stepping", `!document.querySelector('#replay').hidden && (m => m !== null && Number(m[1]) >= 3)(document.querySelector('#replay-step').textContent.match(/^step (\d+) \/ \d+$/))`)
	b.shot(shots, "console-replay.png")
	b.do("closing the replay", chromedp.Click(chromedp.ID("replay-close")))
	b.do("stopping traffic", chromedp.Click(chromedp.ID("traffic-stop")))
	b.wait("traffic stopped", `document.querySelector('#traffic-state').textContent === 'idle'`)

	// 4. Chaos: inventory down from its panel; the gateway's breaker opens on
	// the calls that cross the broken edge; back up, it recovers.
	b.do("clicking inventory", chromedp.Click(chromedp.ID("node-inventory")))
	b.wait("inventory's panel with its switches", `document.querySelector('#panel-title')?.textContent === 'inventory' && !document.querySelector('#fault-down').disabled`)
	b.do("taking inventory down", chromedp.Click(chromedp.ID("fault-down")))
	b.wait("inventory drawn down", `document.querySelector('#node-inventory').classList.contains('down')`)
	b.wait("what to expect of it", `document.querySelector('#expect-down').textContent.startsWith('down')`)
	// Reads that cross the broken edge; the gateway opens its breaker after
	// five failures. (The console's own polling has edges of its own: it
	// never trips the breakers that guard clients' calls.)
	reads, answered := 0, 0
	read := func() {
		r, err := c.try("GET", "/api/v1/inventory/"+mug, "", nil)
		reads++
		if err == nil && r.Status == 200 {
			answered++
		}
	}
	for range 6 {
		read()
	}
	b.waitWhile("the gateway's breaker to inventory drawn open", `document.querySelector('#edge-gateway-inventory').classList.contains('breaker-open')`, read)
	t.Logf("console: inventory down, reads through the gateway=%d answered=%d before the edge showed its breaker open", reads, answered)
	if answered != 0 {
		t.Errorf("with inventory down, %d of %d stock reads were answered 200, want none", answered, reads)
	}
	b.shot(shots, "console-chaos.png")
	b.do("bringing inventory back", chromedp.Click(chromedp.ID("fault-up")))
	b.wait("inventory drawn up again", `document.querySelector('#node-inventory').classList.contains('up')`)
	b.waitWhile("the breaker closed again", `(e => !e.classList.contains('breaker-open') && !e.classList.contains('breaker-half-open'))(document.querySelector('#edge-gateway-inventory'))`, func() {
		_, _ = c.try("GET", "/api/v1/inventory/"+mug, "", nil)
	})

	// 5. Nothing went wrong in the page.
	b.checkConsole()
}

// browser is a headless chromium on one page, with every error the page
// reported.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

// newBrowser starts chromium with a fresh profile, a 1400x900 window and
// nothing that talks to the network on its own, and records every error
// the page reports: console.error calls, uncaught exceptions, and the
// browser's own error log (failed loads, refused by the security policy).
func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Headless,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx}
	// The first Run starts the browser; the viewport is the window's whole
	// 1400x900, so the screenshots are too.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1400, 900)); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, strings.Trim(string(a.Value), `"`)+a.Description)
				}
				b.report("console.error: " + strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil {
				text += " " + d.Exception.Description
			}
			b.report(fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, text))
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				b.report(fmt.Sprintf("browser log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatalf("listening to the page: %v", err)
	}
	return b
}

func (b *browser) report(problem string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, problem)
}

// checkConsole fails the test for every error the page reported.
func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.t.Logf("console: browser errors=%d", len(b.problems))
	for _, p := range b.problems {
		b.t.Errorf("the page reported an error: %s", p)
	}
}

// do runs the steps, each batch bounded; a failure stops the test, with
// what the page reported so far.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.checkConsole()
		b.t.Fatalf("%s: %v", what, err)
	}
}

// is evaluates a boolean expression in the page.
func (b *browser) is(expr string) bool {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return ok
}

// number evaluates a numeric expression in the page.
func (b *browser) number(expr string) float64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[float64](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// wait waits until expr holds in the page.
func (b *browser) wait(what, expr string) {
	b.t.Helper()
	b.waitWhile(what, expr, nil)
}

// waitWhile waits until expr holds in the page, calling nudge (when not
// nil) between looks: the requests that make it come true.
func (b *browser) waitWhile(what, expr string, nudge func()) {
	b.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !b.is(expr) {
		if time.Now().After(deadline) {
			b.checkConsole()
			b.t.Fatalf("timed out after 45s waiting for %s (%s)", what, expr)
		}
		if nudge != nil {
			nudge()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shot saves a screenshot of the window as dir/name.
func (b *browser) shot(dir, name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	// Let the frame settle: flows are mid-flight, and that is the point.
	time.Sleep(300 * time.Millisecond)
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatalf("saving screenshot %s: %v", name, err)
	}
}

// screenshotDir is where the screenshots go: $MICROSHOP_SCREENSHOTS, taken
// from the module's root when relative (make docs uses docs/img), or else a
// directory the test removes.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MICROSHOP_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if !filepath.IsAbs(dir) {
		root, err := moduleRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// moduleRoot is the directory of go.mod, above the test's working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
}
