package config

import (
	"strings"
	"testing"
)

func TestRateLimitSettings(t *testing.T) {
	c, err := Load(env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RateLimitRPS != 100 || c.RateLimitBurst != 200 {
		t.Errorf("default rate limit = %v/s burst %d, want 100/s burst 200", c.RateLimitRPS, c.RateLimitBurst)
	}
	c, err = Load(env(map[string]string{"MICROSHOP_RATE_LIMIT_RPS": "0.5", "MICROSHOP_RATE_LIMIT_BURST": "3"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RateLimitRPS != 0.5 || c.RateLimitBurst != 3 {
		t.Errorf("rate limit = %v/s burst %d, want 0.5/s burst 3", c.RateLimitRPS, c.RateLimitBurst)
	}
	for _, bad := range []struct{ rps, burst string }{
		{"0", "1"}, {"-1", "1"}, {"fast", "1"}, {"NaN", "1"}, {"+Inf", "1"},
		{"1", "0"}, {"1", "-3"}, {"1", "1.5"}, {"1", "many"},
	} {
		_, err := Load(env(map[string]string{"MICROSHOP_RATE_LIMIT_RPS": bad.rps, "MICROSHOP_RATE_LIMIT_BURST": bad.burst}), nil)
		if err == nil || !strings.Contains(err.Error(), "MICROSHOP_RATE_LIMIT_") {
			t.Errorf("rps %q burst %q: err = %v, want the setting named", bad.rps, bad.burst, err)
		}
	}
}
