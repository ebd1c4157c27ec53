package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/audit"
)

// auditUsage explains `microshop audit`; its flags follow it.
const auditUsage = `Usage: microshop audit [--target URL] [--admin-email E] [--admin-password P] [--json]

Asks a running shop for its audit, as the admin (GET /api/v1/admin/audit on
its gateway), which checks the invariants across the services through their
APIs, and reports each invariant by name with its count, which must be 0:

  lost orders        orders the shop lost track of: one still pending past the
                     saga's grace (it will never end by itself), or a payment,
                     reservation or shipment that names an order the orders
                     service does not have
  duplicated orders  one order fulfilled twice: more than one shipment
                     scheduled for it, or more than one reservation committed
  unexpected orders  an order whose end contradicts its effects: completed
                     without exactly one capture of its total, its stock
                     committed and one shipment; cancelled with a net charge,
                     stock still held or a shipment scheduled; imported from the
                     monolith and acted on here
  double charges     orders captured more than once
  stock mismatches   each product whose stock does not add up (available +
                     reserved + sold != supplied, a negative figure, or reserved
                     and sold not matching the reservations), and what is off

The report goes to stdout, and with --json ends with the shop's audit as one
JSON object on its last line. Exit status: 0 when every invariant holds, 1 when
any fails, 2 for a usage error or when the shop cannot be asked (unreachable,
the login refused, an error answer).

The admin's password is better given in MICROSHOP_ADMIN_PASSWORD than as a
flag, which other users can see.
`

// errNotAsked is a failure to get the shop's audit at all. It exits 2, as a
// usage error does: no verdict was reached, which a script must not take for
// a broken invariant (1).
var errNotAsked = errors.New("cannot audit the shop")

// maxAuditBytes bounds how much of an answer is read: an audit's report is
// a few checks, and one line per product whose stock is off.
const maxAuditBytes = 16 << 20

// auditShop is `microshop audit`: it asks a shop for its audit and reports
// the invariants by name.
func auditShop(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		target   = fs.String("target", "http://127.0.0.1:8080", "the gateway's base URL")
		email    = fs.String("admin-email", or(getenv("MICROSHOP_ADMIN_EMAIL"), "admin@microshop.local"), "the admin's email (default $MICROSHOP_ADMIN_EMAIL, else the shop's default)")
		password = fs.String("admin-password", "", "the admin's password (default $MICROSHOP_ADMIN_PASSWORD)")
		timeout  = fs.Duration("timeout", time.Minute, "how long to wait for the shop: its audit reads every order, so a big shop takes a while")
		asJSON   = fs.Bool("json", false, "end the report with the audit as one line of JSON")
	)
	fs.Usage = func() {
		fmt.Fprint(stderr, auditUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	usageError := func(format string, args ...any) error {
		fs.Usage()
		return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments %q", fs.Args())
	}
	base, err := gatewayBase(*target)
	if err != nil {
		return usageError("%v", err)
	}
	if *timeout <= 0 {
		return usageError("--timeout must be positive, not %v", *timeout)
	}
	pw := or(*password, getenv("MICROSHOP_ADMIN_PASSWORD"))
	if pw == "" {
		return usageError("no admin password: set MICROSHOP_ADMIN_PASSWORD, or pass --admin-password")
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	g := gatewayClient{base: base, hc: &http.Client{}}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if _, err := g.call(ctx, http.MethodPost, "/api/v1/auth/login", "", map[string]string{"email": *email, "password": pw}, &tok); err != nil {
		return fmt.Errorf("%w: logging in as %s: %w", errNotAsked, *email, err)
	}
	if tok.AccessToken == "" {
		return fmt.Errorf("%w: logging in as %s at %s: the answer holds no access token", errNotAsked, *email, base)
	}
	var rep audit.Report
	raw, err := g.call(ctx, http.MethodGet, "/api/v1/admin/audit", tok.AccessToken, nil, &rep)
	if err != nil {
		return fmt.Errorf("%w: asking for the audit as %s: %w", errNotAsked, *email, err)
	}
	// A shop older than this command may not report every figure: say so,
	// rather than print a 0 it never counted.
	var reported struct {
		Counts map[string]json.RawMessage `json:"counts"`
	}
	if err := json.Unmarshal(raw, &reported); err != nil {
		return fmt.Errorf("%w: reading the audit of %s: %v", errNotAsked, base, err)
	}

	failed := writeAudit(stdout, base, rep, reported.Counts)
	if *asJSON {
		var line bytes.Buffer
		if err := json.Compact(&line, raw); err != nil {
			return fmt.Errorf("%w: reading the audit of %s: %v", errNotAsked, base, err)
		}
		fmt.Fprintf(stdout, "%s\n", line.Bytes())
	}
	switch {
	case len(failed) > 0:
		return fmt.Errorf("audit of %s: %d of %d invariants failed: %s", base, len(failed), len(rep.Counts.Figures()), strings.Join(failed, ", "))
	case !rep.OK:
		return fmt.Errorf("audit of %s: the shop's audit is not ok", base)
	}
	return nil
}

// gatewayBase checks that target is an absolute http or https URL, and
// returns it without a trailing slash, ready for a path.
func gatewayBase(target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--target %q is not an http or https URL, e.g. http://127.0.0.1:8080", target)
	}
	return strings.TrimRight(target, "/"), nil
}

// writeAudit writes rep for a person to read: one line per invariant, the
// products whose stock is off, and the failing checks' details. It returns
// the labels of the invariants that failed.
func writeAudit(w io.Writer, base string, rep audit.Report, reported map[string]json.RawMessage) (failed []string) {
	c := rep.Counts
	fmt.Fprintf(w, "audit of %s: %d orders: %d completed, %d cancelled, %d pending, %d imported\n",
		base, c.Orders, c.Completed, c.Cancelled, c.Pending, c.Imported)
	for _, f := range c.Figures() {
		if _, ok := reported[f.Name]; !ok {
			fmt.Fprintf(w, "  %-18s %6s  not reported by this shop\n", f.Label, "-")
			continue
		}
		verdict := "OK"
		if f.Count != 0 {
			verdict = "FAILED"
			failed = append(failed, f.Label)
		}
		fmt.Fprintf(w, "  %-18s %6d  %s\n", f.Label, f.Count, verdict)
		if f.Name == "stock_mismatch" {
			for _, m := range rep.StockMismatches {
				fmt.Fprintf(w, "    product %s: %s\n", m.ProductID, m.Detail)
			}
		}
	}
	for _, ch := range rep.Checks {
		if !ch.OK {
			fmt.Fprintf(w, "  check %s failed: %s\n", ch.Name, ch.Detail)
		}
	}
	switch {
	case len(failed) > 0:
		fmt.Fprintf(w, "FAILED: %d of %d invariants\n", len(failed), len(c.Figures()))
	case !rep.OK:
		fmt.Fprintln(w, "FAILED: the shop's audit is not ok")
	default:
		fmt.Fprintln(w, "OK: every invariant holds")
	}
	return failed
}

// gatewayClient makes the command's calls to a shop's gateway.
type gatewayClient struct {
	base string
	hc   *http.Client
}

// call sends a request (body, when not nil, as JSON), and decodes a 200
// answer's JSON into out, returning the body as it came. Any other answer
// is an error that says what the shop answered, from its problem details.
func (g gatewayClient) call(ctx context.Context, method, path, token string, body, out any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "microshop-audit/1")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := g.hc.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s %s: no answer in time (see --timeout)", method, g.base+path)
		}
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // it repeats the method and URL said here
		}
		return nil, fmt.Errorf("%s %s: the shop cannot be reached: %w", method, g.base+path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAuditBytes))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, g.base+path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s%s", method, g.base+path, resp.Status, problemDetail(b))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("%s %s: the answer is not the JSON expected: %v", method, g.base+path, err)
	}
	return b, nil
}

// problemDetail is what a problem-details body says went wrong, for the
// error's message; nothing when the body is not one.
func problemDetail(body []byte) string {
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &p) != nil {
		return ""
	}
	switch {
	case p.Detail != "":
		return ": " + p.Detail
	case p.Title != "":
		return ": " + p.Title
	}
	return ""
}
