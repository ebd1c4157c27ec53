package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKeySettings(t *testing.T) {
	c, err := Load(env(map[string]string{"MICROSHOP_DATA_DIR": "/srv/shop"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join("/srv/shop", "keys", "service-ed25519.pem"); c.ServiceKeyFile != want {
		t.Errorf("default ServiceKeyFile = %q, want %q (under the data directory, beside the JWT key)", c.ServiceKeyFile, want)
	}
	if c.KeyRefresh != 30*time.Second {
		t.Errorf("default KeyRefresh = %v, want 30s", c.KeyRefresh)
	}
	c, err = Load(env(map[string]string{"MICROSHOP_SERVICE_KEY_FILE": "/run/secrets/service.pem", "MICROSHOP_JWKS_REFRESH": "250ms"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ServiceKeyFile != "/run/secrets/service.pem" || c.KeyRefresh != 250*time.Millisecond {
		t.Errorf("ServiceKeyFile %q, KeyRefresh %v; want the environment's", c.ServiceKeyFile, c.KeyRefresh)
	}
	for _, bad := range []string{"often", "0", "50ms", "11m"} {
		_, err := Load(env(map[string]string{"MICROSHOP_JWKS_REFRESH": bad}), nil)
		if err == nil || !strings.Contains(err.Error(), "MICROSHOP_JWKS_REFRESH") {
			t.Errorf("MICROSHOP_JWKS_REFRESH=%q: err = %v, want the setting named", bad, err)
		}
	}
}
