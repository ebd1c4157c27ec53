package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsoleShowsTheMigrationFromTheMonolith drives the console's three
// views in a real browser against a real shop whose old monolith sits
// behind the gateway's strangler-fig facade, as a person would: the
// Microservices view is today's shop, the Monolith view shows the old app
// alone with the figures of its one database, the Migration view shows both
// of its routes on the monolith; a click moves /profile to users, the row
// says so, the facade's admin API agrees, and the Monolith view shows the
// route gone from it. The hash names the view, also on a reload. The
// browser's console must stay free of errors throughout. With
// MICROSHOP_SCREENSHOTS set, the Migration view's screenshot the README can
// show is written there.
func TestConsoleShowsTheMigrationFromTheMonolith(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is needed at %s for the console's browser test: %v", chromiumPath, err)
		}
		t.Skipf("chromium is not installed at %s (apt-get install chromium): the console's browser test needs it", chromiumPath)
	}
	// A short open timeout: should the breaker to the monolith open while
	// it starts, it closes again within the test's patience.
	shop := start(t, t.TempDir(), []string{"MICROSHOP_BREAKER_OPEN_TIMEOUT=3s"}, "up")
	base := shop.addrs["gateway"]
	c := newClient(t, base).unchecked() // the console's routes and the monolith's old ones are checked elsewhere
	admin := c.login(adminEmail, adminPassword)
	mug := seeded(t, c)["MUG-001"].ID

	// Two customers of the old shop: the monolith enrols each on their first
	// visit to /profile, and one of them orders through the old API.
	_, ada := c.signup("ada.facade@example.com")
	_, bob := c.signup("bob.facade@example.com")
	customers := []string{ada, bob}
	// The console asks the monolith on edges of its own, which guard no
	// customer's call: it says when the monolith is there to be called.
	waitFor(t, 30*time.Second, "the console reaching the monolith", func() bool {
		r, err := c.try("GET", "/api/v1/console/legacy", admin, nil)
		return err == nil && r.Status == 200
	})
	waitFor(t, 30*time.Second, "the monolith serving /profile through the facade", func() bool {
		r, err := c.try("GET", "/profile", ada, nil)
		return err == nil && r.Status == 200
	})
	c.must(200, "GET", "/profile", bob, nil)
	c.must(201, "POST", "/orders", ada, map[string]any{
		"lines":       []map[string]any{{"product_id": mug, "qty": 1}},
		"card_number": "4242424242424242",
		"deliver_to":  map[string]string{"name": "Ada", "line1": "1 Old Street", "city": "London", "postal_code": "EC1V 9HL", "country": "GB"},
	})
	var figures struct {
		Customers int `json:"customers"`
		Orders    int `json:"orders"`
	}
	c.must(200, "GET", "/api/v1/console/legacy", admin, nil).json(t, &figures)
	if figures.Customers < 2 || figures.Orders < 1 {
		t.Fatalf("the monolith counts customers=%d orders=%d, want at least the 2 and 1 made here", figures.Customers, figures.Orders)
	}

	// Customers keep using the old routes while the console watches: the
	// split of their requests is what the Migration view draws.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { oldRouteTraffic(c, customers, stop) })
	defer wg.Wait()
	defer close(stop)

	b := newBrowser(t)
	shots := screenshotDir(t)

	// 1. Signed in, the console opens on today's shop, and says so in the hash.
	b.do("opening the console", chromedp.Navigate(base+"/"))
	b.do("signing in",
		chromedp.WaitVisible(chromedp.ID("signin-password")),
		chromedp.SetValue(chromedp.ID("signin-email"), adminEmail),
		chromedp.SendKeys(chromedp.ID("signin-password"), adminPassword),
		chromedp.Click(chromedp.ID("signin-submit")),
	)
	b.wait("the Microservices view, with the monolith among the services",
		`document.querySelector('#view-microservices').classList.contains('active') && location.hash === '#microservices'
		 && document.querySelector('#node-gateway') !== null && document.querySelector('#node-legacy') !== null
		 && !document.querySelector('#node-legacy').classList.contains('monolith')`)

	// 2. The Monolith: the old app alone, its one database and its figures,
	// every route still served by it.
	openView(b, "monolith")
	b.wait("the Monolith view", `document.querySelector('#view-monolith').classList.contains('active') && location.hash === '#monolith'
		&& !document.querySelector('#view-microservices').classList.contains('active')`)
	b.wait("the monolith drawn alone", `document.querySelector('#node-legacy.monolith') !== null && document.querySelector('#node-gateway') === null`)
	customersShown := fmt.Sprintf(`document.querySelector('#legacy-customers').textContent === '%d'`, figures.Customers)
	ordersShown := fmt.Sprintf(`document.querySelector('#legacy-orders').textContent === '%d'`, figures.Orders)
	b.wait("the monolith's figures", customersShown+" && "+ordersShown)
	b.wait("both routes served by the monolith", `[...document.querySelectorAll('#node-legacy .module')].every(m => m.classList.contains('served'))
		&& document.querySelectorAll('#node-legacy .module').length === 2`)
	b.wait("the explanation", `!document.querySelector('#monolith-notes').hidden && document.querySelector('#monolith-notes').textContent.includes('One deployable')`)

	// 3. The Migration: both routes on the monolith, each with its button.
	openView(b, "migration")
	b.wait("the Migration view", `document.querySelector('#view-migration').classList.contains('active') && location.hash === '#migration'
		&& !document.querySelector('#facade-view').hidden && document.querySelector('#diagram').hasAttribute('hidden')`)
	for _, rt := range []struct{ route, service string }{{"/profile", "users"}, {"/orders", "orders"}} {
		row := fmt.Sprintf(`document.querySelector('tr[data-route="%s"]')`, rt.route)
		b.wait(rt.route+" on the monolith", fmt.Sprintf(`(r => r !== null && r.dataset.target === 'legacy'
			&& r.querySelector('.dest-legacy').classList.contains('current')
			&& r.querySelector('button.move')?.textContent === 'Move to %s')(%s)`, rt.service, row))
	}
	b.wait("the split of the old routes' traffic measured", `/^legacy 100% · users 0% · /.test(document.querySelector('tr[data-route="/profile"] .split-label').textContent)`)

	// 4. Move /profile to users: the row shows the move under way, then its
	// outcome, and no button: a move is one way.
	profile := `document.querySelector('tr[data-route="/profile"]')`
	b.do("the button in view", chromedp.WaitVisible(chromedp.CSS(`tr[data-route="/profile"] button.move`)))
	// The click and a look at the button in one turn of the page: the move
	// shows it is under way at once, before the facade has answered.
	clicked := pageString(b, `(b => { b.click(); return b.textContent + (b.disabled ? ' (disabled)' : ''); })(document.querySelector('tr[data-route="/profile"] button.move'))`)
	if clicked != "moving… (disabled)" {
		t.Errorf("the button just clicked says %q, want %q", clicked, "moving… (disabled)")
	}
	b.wait("/profile moved to users", fmt.Sprintf(`(r => r.dataset.target === 'users'
		&& r.querySelector('.moved-to').textContent === 'moved to users'
		&& r.querySelector('.dest-service').classList.contains('current')
		&& r.querySelector('button.move') === null)(%s)`, profile))
	b.wait("/orders still on the monolith", `document.querySelector('tr[data-route="/orders"]').dataset.target === 'legacy'`)

	// The facade's own account agrees with the page.
	var table struct {
		Routes []struct {
			Route, Target string
			Copied        int
		}
	}
	c.must(200, "GET", "/api/v1/admin/facade", admin, nil).json(t, &table)
	targets := map[string]string{}
	for _, r := range table.Routes {
		targets[r.Route] = r.Target
		if r.Route == "/profile" {
			shown := b.number(`Number(` + profile + `.querySelector('.f-copied').textContent.replace(/,/g, ''))`)
			t.Logf("console: /profile moved, copied=%d shown=%v customers=%d", r.Copied, shown, figures.Customers)
			if int(shown) != r.Copied {
				t.Errorf("the row shows %v records copied, the facade says %d", shown, r.Copied)
			}
		}
	}
	if targets["/profile"] != "users" || targets["/orders"] != "legacy" {
		t.Errorf("the facade routes %v, want /profile to users and /orders to legacy", targets)
	}

	// Customers' requests for /profile now reach users: the split shows them.
	b.wait("the split showing users serving /profile", `parseFloat(`+profile+`.querySelector('.split-service').style.width) > 0`)
	// The picture: most of /profile's traffic on users by now, and the
	// move's toast gone.
	b.wait("users serving most of /profile", `parseFloat(`+profile+`.querySelector('.split-service').style.width) >= 60
		&& document.querySelectorAll('#toasts .toast').length === 0`)
	b.shot(shots, "console-migration.png")

	// 5. The Monolith again: /profile is gone from it; /orders it still serves.
	openView(b, "monolith")
	b.wait("/profile moved out of the monolith", `document.querySelector('#node-legacy .module[data-route="/profile"]').classList.contains('moved')
		&& document.querySelector('#node-legacy .module[data-route="/orders"]').classList.contains('served')
		&& document.querySelector('#legacy-customers-note').textContent.startsWith('handed over to users')`)

	// 6. The hash chooses the view: a reload stays where it was, and Back
	// returns to the view before.
	b.do("reloading the page", chromedp.Reload())
	b.wait("the Monolith view after the reload", `document.querySelector('#view-monolith')?.classList.contains('active')
		&& document.querySelector('#node-legacy.monolith') !== null`)
	b.do("going back", chromedp.Evaluate[chromedp.Void](`history.back()`))
	b.wait("the Migration view, from the history", `document.querySelector('#view-migration').classList.contains('active') && !document.querySelector('#facade-view').hidden`)
	openView(b, "microservices")
	b.wait("today's shop again", `location.hash === '#microservices' && document.querySelector('#node-orders') !== null
		&& document.querySelector('#node-legacy') !== null && document.querySelector('#node-legacy.monolith') === null`)

	b.checkConsole()
}

// oldRouteTraffic sends the customers' requests for the old routes, a few a
// second, until stop closes: wherever the facade sends them, each must be
// answered.
func oldRouteTraffic(c *client, tokens []string, stop <-chan struct{}) {
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		path := "/profile"
		if i%3 == 2 {
			path = "/orders"
		}
		r, err := c.try("GET", path, tokens[i%len(tokens)], nil)
		if err != nil {
			c.t.Errorf("GET %s: %v", path, err)
			continue
		}
		if r.Status != 200 {
			c.t.Errorf("GET %s = %d %s during the migration, want 200", path, r.Status, strings.TrimSpace(string(r.Body)))
		}
	}
}

// pageString evaluates a string expression in the page.
func pageString(b *browser, expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// openView clicks a view's tab until its view shows. A click the page loses
// (dispatched at the tab's position while the strip beside it is laid out
// again) is sent again, rather than waited on for the whole timeout.
func openView(b *browser, view string) {
	b.t.Helper()
	b.wait("the "+view+" view's tab", fmt.Sprintf(`(t => { if (!t.classList.contains('active')) t.click(); return t.classList.contains('active'); })(document.querySelector('#view-%s'))`, view))
}
