package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The Prometheus files the shop ships, relative to this package.
var (
	prometheusConfig = filepath.Join("..", "..", "deploy", "prometheus", "prometheus.yml")
	prometheusAlerts = filepath.Join("..", "..", "deploy", "prometheus", "alerts.yml")
	grafanaDashboard = filepath.Join("..", "..", "deploy", "grafana", "dashboards", "microshop.json")
)

// needBinary skips a test when a program it needs is not installed, naming
// it and the package that has it; in CI it must be there, so the test fails
// instead.
func needBinary(t *testing.T, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (apt-get install %s)", path, pkg)
	}
	t.Skipf("%s is not installed (apt-get install %s)", path, pkg)
}

// checkout signs a new customer up, places one order that completes, and
// waits for it to end. It returns the answer to the placing and the order
// as it ended.
func checkout(t *testing.T, c *client, email string) (placed response, order map[string]any) {
	t.Helper()
	catalog := seeded(t, c)
	_, token := c.signup(email)
	placed = c.must(202, "POST", "/api/v1/orders", token, orderBody(catalog["MUG-001"].ID, 1, goodCard))
	order = waitEnded(t, c, token, placed.obj(t)["id"].(string))
	if order["status"] != "COMPLETED" {
		t.Fatalf("the checkout ended %v (%v), want COMPLETED", order["status"], order["cancel_reason"])
	}
	return placed, order
}

// services are the banner's services: every listener but the broker.
func (p *proc) services() map[string]string {
	out := map[string]string{}
	for name, addr := range p.addrs {
		if name != "broker" {
			out[name] = addr
		}
	}
	return out
}

// TestPrometheusScrapesTheShopThroughTheRegistry runs Debian's Prometheus
// on the shipped configuration, pointed at a running shop's registry: it
// finds every service through the registry's service discovery, loads the
// shipped alert rules, and sees the checkout a customer makes.
func TestPrometheusScrapesTheShopThroughTheRegistry(t *testing.T) {
	needBinary(t, "/usr/bin/prometheus", "prometheus")
	needBinary(t, "/usr/bin/promtool", "prometheus")
	promtool(t, "check", "rules", prometheusAlerts)

	dir := t.TempDir()
	shop := start(t, t.TempDir(), nil, "up")
	config := readFile(t, prometheusConfig)
	for _, r := range []struct{ old, new string }{
		{"http://127.0.0.1:8090/prometheus/targets", shop.addrs["registry"] + "/prometheus/targets"},
		{"scrape_interval: 15s", "scrape_interval: 1s"},
		{"evaluation_interval: 15s", "evaluation_interval: 1s"},
		{"refresh_interval: 15s", "refresh_interval: 1s"},
	} {
		if n := strings.Count(config, r.old); n != 1 {
			t.Fatalf("%s has %q %d times, want once: has the file changed?", prometheusConfig, r.old, n)
		}
		config = strings.Replace(config, r.old, r.new, 1)
	}
	writeFile(t, filepath.Join(dir, "prometheus.yml"), config)
	writeFile(t, filepath.Join(dir, "alerts.yml"), readFile(t, prometheusAlerts))
	promtool(t, "check", "config", filepath.Join(dir, "prometheus.yml"))

	prom := startPrometheus(t, dir)
	want := shop.services()
	waitFor(t, 30*time.Second, "Prometheus to scrape every service it finds through the registry", func() bool {
		var targets struct {
			Data struct {
				ActiveTargets []struct {
					Labels map[string]string `json:"labels"`
					Health string            `json:"health"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		prom.get(t, "/api/v1/targets", &targets)
		up := map[string]bool{}
		for _, tg := range targets.Data.ActiveTargets {
			if tg.Health == "up" && tg.Labels["instance_id"] != "" {
				up[tg.Labels["service"]] = true
			}
		}
		return len(up) == len(want) && allIn(up, want)
	})

	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name   string `json:"name"`
					Health string `json:"health"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	prom.get(t, "/api/v1/rules", &rules)
	loaded := 0
	for _, g := range rules.Data.Groups {
		loaded += len(g.Rules)
	}
	if shipped := len(alertRules(t)); loaded != shipped {
		t.Errorf("Prometheus loaded %d rules, want the %d of %s", loaded, shipped, prometheusAlerts)
	}

	c := newClient(t, shop.addrs["gateway"])
	checkout(t, c, "prometheus@example.com")
	var completed float64
	waitFor(t, 60*time.Second, "Prometheus to count the completed checkout", func() bool {
		completed = prom.value(t, `sum(microshop_sagas_total{outcome="completed"})`)
		return completed >= 1
	})
	if completed != 1 {
		t.Errorf(`sum(microshop_sagas_total{outcome="completed"}) = %v, want 1: one checkout`, completed)
	}
	// The series keep the service the shop gave them, not an exported_service.
	if n := prom.value(t, `count(microshop_sagas_total{service="orders",exported_service=""})`); n != 6 {
		t.Errorf("saga series labelled service=orders = %v, want 6 (three styles, two outcomes)", n)
	}
	t.Logf("prometheus: targets=%d rules=%d sagas_completed=%v", len(want), loaded, completed)
}

// prometheus is a Prometheus server run by a test.
type prometheus struct{ base string }

// startPrometheus runs Prometheus on the configuration in dir, on a free
// loopback port, with its storage in dir, until the test ends.
func startPrometheus(t *testing.T, dir string) prometheus {
	t.Helper()
	addr := freeAddr(t)
	logs := &syncBuffer{}
	cmd := exec.Command("/usr/bin/prometheus",
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus logs:\n%s", tail(logs.String(), 40))
		}
	})
	p := prometheus{base: "http://" + addr}
	waitFor(t, 30*time.Second, "Prometheus to be ready", func() bool {
		resp, err := http.Get(p.base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// get decodes the JSON answer of one of Prometheus's API paths.
func (p prometheus) get(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(p.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
}

// value is the value of an instant query that gives one number, or -1
// when it gives none.
func (p prometheus) value(t *testing.T, query string) float64 {
	t.Helper()
	var res struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/query?query="+url.QueryEscape(query), &res)
	if len(res.Data.Result) == 0 {
		return -1
	}
	if len(res.Data.Result) > 1 {
		t.Fatalf("%s gave %d series, want one", query, len(res.Data.Result))
	}
	s, _ := res.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%s = %v: %v", query, res.Data.Result[0].Value, err)
	}
	return v
}

func promtool(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("/usr/bin/promtool", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// freeAddr returns a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func allIn[V any](set map[string]bool, want map[string]V) bool {
	for name := range want {
		if !set[name] {
			return false
		}
	}
	return true
}

// TestDashboardsAndAlertsNameRealMetrics scrapes every service of a shop
// that has served a checkout and checks that each metric the Grafana
// dashboard and the alert rules query is one the shop exposes: a renamed
// metric breaks this test, not a dashboard nobody looks at until an outage.
func TestDashboardsAndAlertsNameRealMetrics(t *testing.T) {
	shop := start(t, t.TempDir(), nil, "up")
	checkout(t, newClient(t, shop.addrs["gateway"]), "grafana@example.com")

	exposed := map[string]bool{
		// Prometheus makes these for every target itself.
		"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true,
	}
	for name, base := range shop.services() {
		n := scrapeNames(t, base+"/metrics", exposed)
		if n == 0 {
			t.Errorf("%s exposes no metric", name)
		}
	}

	var dashboard any
	if err := json.Unmarshal([]byte(readFile(t, grafanaDashboard)), &dashboard); err != nil {
		t.Fatalf("%s: %v", grafanaDashboard, err)
	}
	sources := map[string][]string{} // file -> the metric names it queries
	for _, q := range dashboardQueries(dashboard) {
		sources[grafanaDashboard] = append(sources[grafanaDashboard], metricNames(q)...)
	}
	for _, r := range alertRules(t) {
		sources[prometheusAlerts] = append(sources[prometheusAlerts], metricNames(r.Expr)...)
	}
	for file, names := range sources {
		slices.Sort(names)
		names = slices.Compact(names)
		if len(names) < 8 {
			t.Errorf("%s queries only %v: is the extraction finding the queries?", file, names)
		}
		for _, name := range names {
			if !exposed[name] {
				t.Errorf("%s queries %s, which no service exposes", file, name)
			}
		}
		t.Logf("%s queries %d metrics: %v", filepath.Base(file), len(names), names)
	}
}

// scrapeNames adds to names the name of every series a /metrics answer can
// hold: each family's, and a histogram's or summary's _bucket, _sum and
// _count. It returns how many families it read.
func scrapeNames(t *testing.T, url string, names map[string]bool) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", url, resp.StatusCode)
	}
	families := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		families++
		names[f[2]] = true
		switch f[3] {
		case "histogram":
			names[f[2]+"_bucket"] = true
			fallthrough
		case "summary":
			names[f[2]+"_sum"], names[f[2]+"_count"] = true, true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return families
}

// alertRule is one rule of the shipped alerts.
type alertRule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	var file struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, prometheusAlerts)), &file); err != nil {
		t.Fatalf("%s: %v", prometheusAlerts, err)
	}
	var out []alertRule
	for _, g := range file.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// labelValues is a Grafana template variable's query of a metric's label.
var labelValues = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,`)

// dashboardQueries walks a Grafana dashboard for its queries: every
// panel's target expr, and the metrics its template variables read, as
// expressions of their own.
func dashboardQueries(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
				if m := labelValues.FindStringSubmatch(s); m != nil {
					out = append(out, m[1])
				} else if k == "expr" {
					out = append(out, s)
				}
				continue
			}
			out = append(out, dashboardQueries(x)...)
		}
	case []any:
		for _, x := range v {
			out = append(out, dashboardQueries(x)...)
		}
	}
	return out
}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promoKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
)

// metricNames returns the metric names a PromQL expression selects: what
// is left of it without strings, label matchers, ranges and grouping
// labels, that is neither a function nor a keyword.
func metricNames(expr string) []string {
	expr = promStrings.ReplaceAllString(expr, `""`)
	expr = promMatchers.ReplaceAllString(expr, " ")
	expr = promRanges.ReplaceAllString(expr, " ")
	expr = promGrouping.ReplaceAllString(expr, " ")
	var out []string
	for _, at := range promIdent.FindAllStringIndex(expr, -1) {
		name := expr[at[0]:at[1]]
		if at[0] > 0 && strings.ContainsAny(expr[at[0]-1:at[0]], "0123456789.$") {
			continue // part of a number (1e3, 5m) or a variable
		}
		if call := strings.HasPrefix(strings.TrimSpace(expr[at[1]:]), "("); call || slices.Contains(promoKeywords, strings.ToLower(name)) {
			continue
		}
		out = append(out, name)
	}
	return out
}

func TestMetricNamesOfAnExpression(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`sum by (service) (rate(http_requests_total{code=~"5.."}[5m])) / sum by (service) (rate(http_requests_total[5m])) > 0.05`,
			[]string{"http_requests_total", "http_requests_total"}},
		{`histogram_quantile(0.99, sum by (saga, le) (rate(microshop_checkout_duration_seconds_bucket[$__rate_interval])))`,
			[]string{"microshop_checkout_duration_seconds_bucket"}},
		{`absent(up{job="microshop",service="orders"}) or absent(up{service="users"})`, []string{"up", "up"}},
		{`outbox_backlog > 0 and deriv(outbox_backlog[10m]) > 0`, []string{"outbox_backlog", "outbox_backlog"}},
		{`max by (service, upstream) (microshop_breaker_state{service=~"$service"}) == 2`, []string{"microshop_breaker_state"}},
		{`a unless on (x) group_left (y) b offset 5m`, []string{"a", "b"}},
	} {
		if got := metricNames(c.expr); !slices.Equal(got, c.want) {
			t.Errorf("metricNames(%s) = %v, want %v", c.expr, got, c.want)
		}
	}
	dash := map[string]any{"templating": map[string]any{"list": []any{map[string]any{"definition": "label_values(http_requests_total, service)"}}},
		"panels": []any{map[string]any{"targets": []any{map[string]any{"expr": "rate(dead_letters_total[1m])"}}}}}
	got := fmt.Sprint(dashboardQueries(dash))
	if !strings.Contains(got, "http_requests_total") || !strings.Contains(got, "rate(dead_letters_total[1m])") {
		t.Errorf("dashboardQueries = %s, want the variable's metric and the panel's expr", got)
	}
}
