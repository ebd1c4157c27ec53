package main

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/inventory/inventorydb"
	"github.com/microshop/microshop/internal/payments/paymentdb"
	"github.com/microshop/microshop/internal/shipping/shipmentdb"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
)

// serviceDB is one service's database in TestShopOnTheMachinesDatabases: on
// which server, and which table proves the service's data landed there.
type serviceDB struct {
	service string
	dialect sqldb.Dialect
	table   string
	url     string
}

// speaksEveryDialect reports whether a store ships migrations for the
// servers as well as for SQLite.
func speaksEveryDialect(migrations fs.FS) bool {
	for _, d := range []sqldb.Dialect{sqldb.Postgres, sqldb.MySQL} {
		if entries, err := fs.ReadDir(migrations, "migrations/"+string(d)); err != nil || len(entries) == 0 {
			return false
		}
	}
	return true
}

// TestShopOnTheMachinesDatabases runs the whole shop with its services'
// data on the machine's servers, as in production: users on PostgreSQL and
// orders on MariaDB (inventory and shipping on PostgreSQL, payments on
// MariaDB), each in a database of its own made for the test, and the bus on
// RabbitMQ. Every saga style completes a good order and cancels a declined
// and a short-stock one; a restart keeps everything; the audit passes.
func TestShopOnTheMachinesDatabases(t *testing.T) {
	needServer(t, "RabbitMQ", "127.0.0.1:5672")
	dbs := []serviceDB{
		{service: "users", dialect: sqldb.Postgres, table: "users"},
		{service: "orders", dialect: sqldb.MySQL, table: "orders"},
	}
	for _, s := range []struct {
		migrations fs.FS
		db         serviceDB
	}{
		{inventorydb.Migrations, serviceDB{service: "inventory", dialect: sqldb.Postgres, table: "stock"}},
		{paymentdb.Migrations, serviceDB{service: "payments", dialect: sqldb.MySQL, table: "payments"}},
		{shipmentdb.Migrations, serviceDB{service: "shipping", dialect: sqldb.Postgres, table: "shipments"}},
	} {
		if speaksEveryDialect(s.migrations) {
			dbs = append(dbs, s.db)
		} else {
			t.Logf("%s has no PostgreSQL and MySQL migrations yet: it stays on SQLite", s.db.service)
		}
	}
	ns := newNamespace()
	t.Cleanup(func() { cleanRabbit(t, ns) })
	env := []string{"MICROSHOP_BROKER_URL=" + machineRabbit, "MICROSHOP_BROKER_NAMESPACE=" + ns}
	for i := range dbs {
		// A fresh database per service, dropped when the test ends (after
		// the shop has stopped: cleanups run last in, first out).
		dbs[i].url = sqldbtest.URL(t, dbs[i].dialect, dbs[i].service)
		env = append(env, "MICROSHOP_"+strings.ToUpper(dbs[i].service)+"_DB_URL="+dbs[i].url)
	}
	dir := t.TempDir()

	first := start(t, dir, env, "up")
	c := newClient(t, first.addrs["gateway"])
	catalog := seeded(t, c)
	admin := c.login(adminEmail, adminPassword)
	userID, token := c.signup("frank@example.com")
	for _, mode := range []string{"orchestration", "choreography", "parallel"} {
		c.must(200, "PUT", "/api/v1/admin/settings", admin, map[string]string{"saga_mode": mode})
		checkStyle(t, c, token, mode, catalog)
	}
	audit := func(when string) {
		t.Helper()
		if rep := c.must(200, "GET", "/api/v1/admin/audit", admin, nil); rep.obj(t)["ok"] != true {
			t.Errorf("audit %s: %s", when, rep.Body)
		}
	}
	audit("after the sagas")
	const placed = 9 // three orders in each of three styles
	if n := ordersOf(t, c, admin, userID); n != placed {
		t.Errorf("orders of the customer = %d, want %d", n, placed)
	}
	rows := map[string]int{}
	for _, d := range dbs {
		rows[d.service] = rowCount(t, d, d.table)
		if rows[d.service] == 0 {
			t.Errorf("%s's table %s on %s is empty: its data went elsewhere", d.service, d.table, d.dialect)
		}
	}
	if rows["orders"] != placed {
		t.Errorf("orders on MySQL = %d, want %d", rows["orders"], placed)
	}
	first.stop()

	second := start(t, dir, env, "up")
	c = newClient(t, second.addrs["gateway"])
	admin = c.login(adminEmail, adminPassword)
	token = c.login("frank@example.com", "password-frank@example.com")
	if n := ordersOf(t, c, admin, userID); n != placed {
		t.Errorf("after the restart, orders of the customer = %d, want %d", n, placed)
	}
	ended := map[string]int{}
	for _, o := range items(t, c.must(200, "GET", "/api/v1/orders?limit=100", token, nil)) {
		ended[o["status"].(string)]++
	}
	if ended["COMPLETED"] != 3 || ended["CANCELLED"] != 6 {
		t.Errorf("after the restart, the customer's orders are %v, want 3 COMPLETED and 6 CANCELLED", ended)
	}
	var list struct{ Items []product }
	c.must(200, "GET", "/api/v1/products?limit=1000", "", nil).json(t, &list)
	if len(list.Items) != len(catalog) {
		t.Errorf("products after the restart = %d, want %d (seeded once)", len(list.Items), len(catalog))
	}
	for _, d := range dbs {
		if n := rowCount(t, d, d.table); n != rows[d.service] {
			t.Errorf("after the restart, %s's %s rows = %d, want the %d there before", d.service, d.table, n, rows[d.service])
		}
	}
	audit("after the restart")
	// The shop still takes orders on the servers after the restart.
	c.must(200, "PUT", "/api/v1/admin/settings", admin, map[string]string{"saga_mode": "orchestration"})
	if o := placeAndWait(t, c, token, orderBody(catalog["MUG-001"].ID, 1, goodCard)); o["status"] != "COMPLETED" {
		t.Errorf("an order after the restart ended %v", o["status"])
	}
}

// rowCount reads how many rows a service's table holds on its server, from
// outside the shop.
func rowCount(t *testing.T, d serviceDB, table string) int {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, d.url)
	if err != nil {
		t.Fatalf("opening %s's database: %v", d.service, err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
		t.Fatalf("counting %s's %s: %v", d.service, table, err)
	}
	return n
}
