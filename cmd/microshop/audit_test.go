package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/microshop/microshop/internal/audit"
)

// auditRun is one run of `microshop audit`: its exit code and output.
type auditRun struct {
	code           int
	stdout, stderr string
}

// runAudit runs the built binary's audit with args, and the admin's email
// and password in its environment, as an operator would set them (none
// when empty: the machine's own settings never leak in).
func runAudit(t *testing.T, email, password string, args ...string) auditRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"audit"}, args...)...)
	cmd.Env = append(os.Environ(), "MICROSHOP_ADMIN_EMAIL="+email, "MICROSHOP_ADMIN_PASSWORD="+password)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	run := auditRun{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		run.code = exit.ExitCode()
	default:
		t.Fatalf("microshop audit %v: %v\nstderr:\n%s", args, err, run.stderr)
	}
	return run
}

// auditJSON is what the test reads of the last line of `microshop audit --json`.
type auditJSON struct {
	OK     bool `json:"ok"`
	Counts struct {
		Orders, Completed, Cancelled, Pending int
		Lost                                  *int `json:"lost"`
		Duplicated                            *int `json:"duplicated"`
		UnexpectedOrders                      *int `json:"unexpected_orders"`
		DoubleCharged                         *int `json:"double_charged"`
		StockMismatch                         *int `json:"stock_mismatch"`
	} `json:"counts"`
	StockMismatches []struct {
		ProductID string `json:"product_id"`
		Detail    string `json:"detail"`
	} `json:"stock_mismatches"`
}

func (r auditRun) report(t *testing.T) auditJSON {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var rep auditJSON
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		t.Fatalf("the last line of stdout is not the audit's JSON: %v\n%s", err, r.stdout)
	}
	c := rep.Counts
	if c.Lost == nil || c.Duplicated == nil || c.UnexpectedOrders == nil || c.DoubleCharged == nil || c.StockMismatch == nil || rep.StockMismatches == nil {
		t.Fatalf("the audit's JSON lacks a named figure: %s", lines[len(lines)-1])
	}
	return rep
}

// TestAuditCommand runs `microshop audit` against a real shop, as the
// binary: clean after good and declined checkouts, then the shop is
// stopped, two products' stock is tampered with in inventory's own
// database, and the audit of the restarted shop names both and exits 1.
func TestAuditCommand(t *testing.T) {
	dir := t.TempDir()
	first := start(t, dir, nil, "up")
	c := newClient(t, first.addrs["gateway"])
	catalog := seeded(t, c)
	_, token := c.signup("ivy@example.com")
	for _, o := range []struct {
		sku, card, want string
		qty             int
	}{
		{"MUG-001", goodCard, "COMPLETED", 2},
		{"TEE-002", declinedCard, "CANCELLED", 1},
		{"STICK-005", goodCard, "COMPLETED", 1},
	} {
		if got := placeAndWait(t, c, token, orderBody(catalog[o.sku].ID, o.qty, o.card)); got["status"] != o.want {
			t.Fatalf("order of %s with card %s ended %v, want %s", o.sku, o.card, got["status"], o.want)
		}
	}

	// The admin's email and password from the environment, as an operator
	// would give them.
	run := runAudit(t, adminEmail, adminPassword, "--target", first.addrs["gateway"], "--json")
	if run.code != 0 {
		t.Fatalf("audit of a clean shop exited %d, want 0\nstdout:\n%s\nstderr:\n%s", run.code, run.stdout, run.stderr)
	}
	rep := run.report(t)
	cnt := rep.Counts
	t.Logf("clean: ok=%v orders=%d lost=%d duplicated=%d unexpected_orders=%d double_charged=%d stock_mismatch=%d",
		rep.OK, cnt.Orders, *cnt.Lost, *cnt.Duplicated, *cnt.UnexpectedOrders, *cnt.DoubleCharged, *cnt.StockMismatch)
	if !rep.OK || *cnt.Lost != 0 || *cnt.Duplicated != 0 || *cnt.UnexpectedOrders != 0 || *cnt.DoubleCharged != 0 || *cnt.StockMismatch != 0 || len(rep.StockMismatches) != 0 {
		t.Errorf("audit of a clean shop: %+v, want ok and every figure 0", rep)
	}
	if cnt.Orders != 3 || cnt.Completed != 2 || cnt.Cancelled != 1 || cnt.Pending != 0 {
		t.Errorf("audit counts %d orders (%d completed, %d cancelled, %d pending), want 3 (2, 1, 0)", cnt.Orders, cnt.Completed, cnt.Cancelled, cnt.Pending)
	}
	for _, line := range []string{"lost orders", "duplicated orders", "unexpected orders", "double charges", "stock mismatches"} {
		if !strings.Contains(run.stdout, line) {
			t.Errorf("the report does not name %q:\n%s", line, run.stdout)
		}
	}
	if strings.Contains(run.stdout, "FAILED") || !strings.Contains(run.stdout, "OK: every invariant holds") {
		t.Errorf("the report of a clean shop:\n%s", run.stdout)
	}
	first.stop()

	// Tamper with inventory's own file while the shop is down: 2 units of
	// the mug move from available to reserved (the row still adds up, but
	// no reservation holds them), and 5 units of the plant appear from
	// nowhere, which the table's checks forbid unless told not to look.
	mug, plant := catalog["MUG-001"].ID, catalog["PLANT-010"].ID
	tamper(t, filepath.Join(dir, "inventory.db"),
		`UPDATE stock SET available = available - 2, reserved = reserved + 2 WHERE product_id = ?`, mug,
		`UPDATE stock SET available = available + 5 WHERE product_id = ?`, plant)

	second := start(t, dir, nil, "up")
	run = runAudit(t, "", adminPassword, "--target", second.addrs["gateway"], "--admin-email", adminEmail, "--json")
	if run.code != 1 {
		t.Fatalf("audit of a tampered shop exited %d, want 1\nstdout:\n%s\nstderr:\n%s", run.code, run.stdout, run.stderr)
	}
	rep = run.report(t)
	t.Logf("tampered: exit %d\nstdout:\n%sstderr:\n%s", run.code, run.stdout, run.stderr)
	off := map[string]string{}
	for _, m := range rep.StockMismatches {
		off[m.ProductID] = m.Detail
	}
	if rep.OK || *rep.Counts.StockMismatch != 2 || len(off) != 2 || !strings.Contains(off[mug], "reserved 2") || !strings.Contains(off[plant], "!= supplied") {
		t.Errorf("stock mismatches %d %v, want the mug (reserved 2, held by no reservation) and the plant (not adding up to supplied)", *rep.Counts.StockMismatch, rep.StockMismatches)
	}
	if *rep.Counts.Lost != 0 || *rep.Counts.Duplicated != 0 || *rep.Counts.UnexpectedOrders != 0 || *rep.Counts.DoubleCharged != 0 {
		t.Errorf("only the stock was tampered with, yet %+v", rep.Counts)
	}
	for _, want := range []string{`lost orders +0 +OK`, `stock mismatches +2 +FAILED`, `product ` + mug + `: reserved 2`, `product ` + plant + `: available`, `FAILED: 1 of 5 invariants`} {
		if !regexp.MustCompile(want).MatchString(run.stdout) {
			t.Errorf("the report does not say %q:\n%s", want, run.stdout)
		}
	}
	if !strings.Contains(run.stderr, "1 of 5 invariants failed: stock mismatches") {
		t.Errorf("stderr does not say which invariant failed:\n%s", run.stderr)
	}
	if lines := strings.Split(strings.TrimSpace(run.stdout), "\n"); !strings.HasPrefix(lines[len(lines)-1], "{") {
		t.Errorf("with --json the last line is not the JSON:\n%s", run.stdout)
	}

	// Without --json, the report alone.
	plain := runAudit(t, "", adminPassword, "--target", second.addrs["gateway"], "--admin-email", adminEmail)
	if plain.code != 1 || strings.Contains(plain.stdout, "{") || !strings.Contains(plain.stdout, "product "+plant) {
		t.Errorf("audit without --json exited %d:\n%s", plain.code, plain.stdout)
	}
}

// tamper runs pairs of statement and product id on a service's SQLite file,
// on one connection with the table's CHECK constraints off, as a bug or a
// hand in the database could.
func tamper(t *testing.T, path string, statementsAndIDs ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), `PRAGMA ignore_check_constraints = ON`); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(statementsAndIDs); i += 2 {
		res, err := conn.ExecContext(t.Context(), statementsAndIDs[i], statementsAndIDs[i+1])
		if err != nil {
			t.Fatalf("%s: %v", statementsAndIDs[i], err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("%s changed %d rows, want 1", statementsAndIDs[i], n)
		}
	}
}

// TestAuditCommandCannotAsk: when the shop cannot be asked (the login
// refused, the shop not an admin's to audit, a service failing, nothing
// listening), the command says why and exits 2, never 0 or 1.
func TestAuditCommandCannotAsk(t *testing.T) {
	shop := start(t, t.TempDir(), nil, "up")
	gw := shop.addrs["gateway"]
	c := newClient(t, gw).unchecked() // the injected 503s are not in the documents
	seeded(t, c)
	c.signup("jay@example.com")

	checkCannotAsk := func(what string, run auditRun, says ...string) {
		t.Helper()
		if run.code != 2 {
			t.Errorf("%s: exit %d, want 2\nstdout:\n%s\nstderr:\n%s", what, run.code, run.stdout, run.stderr)
		}
		for _, s := range append([]string{"cannot audit the shop"}, says...) {
			if !strings.Contains(run.stderr, s) {
				t.Errorf("%s: stderr does not say %q:\n%s", what, s, run.stderr)
			}
		}
		t.Logf("%s: exit %d: %s", what, run.code, strings.TrimSpace(run.stderr))
		if strings.Contains(run.stdout, "OK") {
			t.Errorf("%s: a verdict was printed:\n%s", what, run.stdout)
		}
	}
	checkCannotAsk("wrong password", runAudit(t, "", "not-the-password", "--target", gw, "--admin-email", adminEmail),
		"logging in as "+adminEmail, "401")
	checkCannotAsk("a customer, not an admin", runAudit(t, "", "password-jay@example.com", "--target", gw, "--admin-email", "jay@example.com"),
		"asking for the audit", "403")

	admin := c.login(adminEmail, adminPassword)
	c.must(200, "PUT", "/api/v1/admin/faults/shipping", admin, map[string]any{"error_rate": 1.0})
	checkCannotAsk("shipping failing", runAudit(t, "", adminPassword, "--target", gw, "--admin-email", adminEmail, "--json"),
		"asking for the audit", "503")
	c.must(200, "PUT", "/api/v1/admin/faults/shipping", admin, map[string]any{})
	waitFor(t, 20*time.Second, "the audit to answer again once shipping does", func() bool {
		return runAudit(t, "", adminPassword, "--target", gw, "--admin-email", adminEmail).code == 0
	})

	shop.stop()
	checkCannotAsk("nothing listening", runAudit(t, "", adminPassword, "--target", gw, "--admin-email", adminEmail),
		"cannot be reached")
}

// TestAuditCommandRefusesBadUsage: a bad flag, value or argument, or no
// admin password, prints the usage and exits 2, before any request.
func TestAuditCommandRefusesBadUsage(t *testing.T) {
	for _, tc := range []struct {
		password string
		args     []string
	}{
		{adminPassword, []string{"--target", "ftp://127.0.0.1:1"}},
		{adminPassword, []string{"--target", "127.0.0.1:8080"}},
		{adminPassword, []string{"--timeout", "0s"}},
		{adminPassword, []string{"--no-such-flag"}},
		{adminPassword, []string{"stray"}},
		{"", []string{"--target", "http://127.0.0.1:1"}},
	} {
		run := runAudit(t, "", tc.password, tc.args...)
		if run.code != 2 {
			t.Errorf("microshop audit %v: exit %d, want 2", tc.args, run.code)
		}
		if !strings.Contains(run.stderr, "Usage: microshop audit") {
			t.Errorf("microshop audit %v printed no usage:\n%s", tc.args, run.stderr)
		}
	}
	if run := runAudit(t, "", "", "--target", "http://127.0.0.1:1"); !strings.Contains(run.stderr, "MICROSHOP_ADMIN_PASSWORD") {
		t.Errorf("without a password, stderr does not say how to give one:\n%s", run.stderr)
	}
}

// TestAuditReportOfAnOlderShop: a shop whose audit predates a named figure
// gets "not reported" for it, never a 0 it did not count, and its verdict
// still follows its ok.
func TestAuditReportOfAnOlderShop(t *testing.T) {
	raw := `{"ok":false,"checks":[{"name":"orders_end","ok":false,"detail":"1 pending longer than 2m0s: o1"}],` +
		`"counts":{"orders":1,"pending":1,"stuck":1,"double_charged":0,"stock_mismatch":0}}`
	var rep audit.Report
	var reported struct{ Counts map[string]json.RawMessage }
	if err := json.Unmarshal([]byte(raw), &rep); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(raw), &reported); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	failed := writeAudit(&out, "http://shop", rep, reported.Counts)
	if len(failed) != 0 {
		t.Errorf("failed = %v, want none: no reported figure is above 0", failed)
	}
	for _, want := range []string{
		`lost orders +- +not reported by this shop`,
		`unexpected orders +- +not reported by this shop`,
		`double charges +0 +OK`,
		`check orders_end failed: 1 pending`,
		`FAILED: the shop's audit is not ok`,
	} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("the report does not say %q:\n%s", want, out.String())
		}
	}
}
