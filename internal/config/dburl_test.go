package config

import (
	"strings"
	"testing"
)

func TestDatabaseURLs(t *testing.T) {
	for _, tc := range []struct {
		service, url string
		problem      string // a part of the error; empty: accepted
	}{
		{"orders", "", ""},
		{"orders", "sqlite:///var/lib/microshop/orders.db", ""},
		{"users", "postgres://users:s3cret@127.0.0.1:5432/users?sslmode=disable", ""},
		{"users", "postgresql://users@db.internal/users", ""},
		{"orders", "mysql://root@127.0.0.1:3306/orders", ""},
		{"payments", "mysql://pay:s3cret@mysql:3306/payments?tls=true", ""},
		{"catalog", "mongodb://catalog:s3cret@127.0.0.1:27017/catalog", ""},
		{"catalog", "sqlite:///tmp/catalog.db", ""},

		{"orders", "mongodb://127.0.0.1:27017/orders", `unsupported scheme "mongodb"`},
		{"catalog", "postgres://127.0.0.1/catalog", "want sqlite:///path or mongodb://"},
		{"users", "redis://127.0.0.1:6379/0", `unsupported scheme "redis"`},
		{"users", "/var/lib/users.db", `unsupported scheme ""`},
		{"users", "sqlite://users.db", "three slashes"},
		{"users", "postgres:///users", "no host"},
		{"users", "postgres://127.0.0.1:5432", "one database name"},
		{"orders", "mysql://root@127.0.0.1:3306/", "one database name"},
		{"orders", "mysql://root@127.0.0.1:3306/a/b", "one database name"},
		{"orders", "mysql://root@127.0.0.1:99999/orders", `port "99999"`},
		{"inventory", "postgres://u:pw@127.0.0.1:5432/inv%zz", "not a URL"},
	} {
		key := "MICROSHOP_" + strings.ToUpper(tc.service) + "_DB_URL"
		_, err := Load(env(map[string]string{key: tc.url}), nil)
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("%s=%q: %v, want it accepted", key, tc.url, err)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("%s=%q: %v, want an error about %q", key, tc.url, err, tc.problem)
		case err != nil && !strings.Contains(err.Error(), key):
			t.Errorf("%s=%q: error %q does not name the variable", key, tc.url, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error %q shows the password", key, err)
		}
	}
}
