package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := Load(env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.DataDir != "./data" || c.SagaMode != SagaOrchestration || c.RegistryTTL != 6*time.Second {
		t.Errorf("defaults = %+v", c)
	}
	if got := c.DBURL("orders"); got != "sqlite://data/orders.db" {
		t.Errorf("DBURL(orders) = %q", got)
	}
	if c.RegistryURL != "http://127.0.0.1:8090" {
		t.Errorf("RegistryURL = %q", c.RegistryURL)
	}
}

func TestEnvironmentBeatsDotenv(t *testing.T) {
	dotenv := strings.NewReader("# comment\nMICROSHOP_ADDR=127.0.0.1:9000\nexport MICROSHOP_DATA_DIR=\"/tmp/shop\"\nMICROSHOP_ORDERS_DB_URL='sqlite:///x/o.db'\n")
	c, err := Load(env(map[string]string{"MICROSHOP_ADDR": "127.0.0.1:7000"}), dotenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:7000" {
		t.Errorf("Addr = %q, want the environment's", c.Addr)
	}
	if c.DataDir != "/tmp/shop" || c.DBURL("orders") != "sqlite:///x/o.db" {
		t.Errorf("DataDir = %q, orders DB = %q, want the .env values", c.DataDir, c.DBURL("orders"))
	}
}

func TestInvalidValuesAreAllReported(t *testing.T) {
	_, err := Load(env(map[string]string{
		"MICROSHOP_ADDR":           "nonsense",
		"MICROSHOP_SAGA_MODE":      "improv",
		"MICROSHOP_ADMIN_PASSWORD": "short",
		"MICROSHOP_TOKEN_TTL":      "forever",
		"LOG_LEVEL":                "loud",
	}), nil)
	if err == nil {
		t.Fatal("Load accepted invalid values")
	}
	for _, want := range []string{"gateway", "MICROSHOP_SAGA_MODE", "MICROSHOP_ADMIN_PASSWORD", "MICROSHOP_TOKEN_TTL", "LOG_LEVEL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	c, err := Load(env(map[string]string{"MICROSHOP_ADMIN_PASSWORD": "canary-secret-123"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range c.Attrs() {
		if strings.Contains(a.Value.String(), "canary-secret-123") {
			t.Errorf("attribute %s shows the secret", a.Key)
		}
	}
	if c.AdminPassword.Reveal() != "canary-secret-123" {
		t.Error("Reveal lost the value")
	}
}

func TestMalformedDotenv(t *testing.T) {
	if _, err := Load(env(nil), strings.NewReader("JUSTAKEY\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("err = %v, want it to name line 1", err)
	}
}

func TestBrokerSettings(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string // part of the error; empty means valid
	}{
		{map[string]string{}, ""},
		{map[string]string{"MICROSHOP_BROKER_URL": "nats://127.0.0.1:4222"}, ""},
		{map[string]string{"MICROSHOP_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/"}, ""},
		{map[string]string{"MICROSHOP_BROKER_URL": "kafka://127.0.0.1:9092"}, "MICROSHOP_BROKER_URL"},
		{map[string]string{"MICROSHOP_BROKER_ADDR": "127.0.0.1:4222"}, "4222"},
		{map[string]string{"MICROSHOP_BROKER_ADDR": "nowhere"}, "MICROSHOP_BROKER_ADDR"},
		{map[string]string{"MICROSHOP_BROKER_NAMESPACE": "e2e-1"}, ""},
		{map[string]string{"MICROSHOP_BROKER_NAMESPACE": "Has.Dots"}, "MICROSHOP_BROKER_NAMESPACE"},
	}
	for _, tt := range tests {
		_, err := Load(env(tt.env), nil)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v: %v, want valid", tt.env, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v: %v, want an error about %s", tt.env, err, tt.want)
		}
	}
}

func TestBrokerPasswordIsRedacted(t *testing.T) {
	c, err := Load(env(map[string]string{"MICROSHOP_BROKER_URL": "amqp://guest:hunter2@127.0.0.1:5672/"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range c.Attrs() {
		if strings.Contains(a.Value.String(), "hunter2") {
			t.Errorf("attribute %s shows the broker password", a.Key)
		}
	}
}

func TestSecretsFromFiles(t *testing.T) {
	path := t.TempDir() + "/admin-password"
	if err := os.WriteFile(path, []byte("from-a-mounted-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(env(map[string]string{"MICROSHOP_ADMIN_PASSWORD_FILE": path}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.AdminPassword.Reveal(); got != "from-a-mounted-secret" {
		t.Errorf("password = %q, want the file's content without its newline", got)
	}
	if _, err := Load(env(map[string]string{"MICROSHOP_ADMIN_PASSWORD_FILE": path, "MICROSHOP_ADMIN_PASSWORD": "also-set-here"}), nil); err == nil {
		t.Error("both the value and the file accepted")
	}
	if _, err := Load(env(map[string]string{"MICROSHOP_ADMIN_PASSWORD_FILE": path + ".missing"}), nil); err == nil || !strings.Contains(err.Error(), "MICROSHOP_ADMIN_PASSWORD_FILE") {
		t.Errorf("missing file: %v, want an error naming the setting", err)
	}
}

func TestFacadeRoutes(t *testing.T) {
	c, err := Load(env(map[string]string{"MICROSHOP_FACADE_ROUTES": " /profile=users , /orders=legacy,"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.FacadeRoutes) != 2 || c.FacadeRoutes["/profile"] != "users" || c.FacadeRoutes["/orders"] != "legacy" {
		t.Errorf("FacadeRoutes = %v", c.FacadeRoutes)
	}
	if c, err := Load(env(nil), nil); err != nil || len(c.FacadeRoutes) != 0 {
		t.Errorf("default FacadeRoutes = %v, %v; want none: every route on the monolith", c.FacadeRoutes, err)
	}
	for _, bad := range []string{"profile=users", "/profile", "/profile=", "/profile=users,/profile=legacy"} {
		_, err := Load(env(map[string]string{"MICROSHOP_FACADE_ROUTES": bad}), nil)
		if err == nil || !strings.Contains(err.Error(), "MICROSHOP_FACADE_ROUTES") {
			t.Errorf("MICROSHOP_FACADE_ROUTES=%q: %v, want an error naming it", bad, err)
		}
	}
}

// TestPprofOnLoopbackOnly: profiles are off by default, and served only on
// a loopback address.
func TestPprofOnLoopbackOnly(t *testing.T) {
	if c, err := Load(env(nil), nil); err != nil || c.PprofAddr != "" {
		t.Fatalf("default: %q, %v; want off", c.PprofAddr, err)
	}
	for _, ok := range []string{"127.0.0.1:6060", "127.0.0.2:0", "[::1]:6060", "localhost:6060"} {
		if _, err := Load(env(map[string]string{"MICROSHOP_PPROF_ADDR": ok}), nil); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"0.0.0.0:6060", ":6060", "10.0.0.1:6060", "example.com:6060", "127.0.0.1"} {
		if _, err := Load(env(map[string]string{"MICROSHOP_PPROF_ADDR": bad}), nil); err == nil || !strings.Contains(err.Error(), "MICROSHOP_PPROF_ADDR") {
			t.Errorf("%s: %v, want refused", bad, err)
		}
	}
}
