package config

import (
	"strings"
	"testing"
	"time"
)

func TestResilienceSettings(t *testing.T) {
	c, err := Load(env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Resilience{BreakerFailures: 5, BreakerOpenTimeout: 30 * time.Second, RetryMaxAttempts: 3, Bulkhead: 64}
	if c.Resilience != want {
		t.Errorf("defaults = %+v, want %+v", c.Resilience, want)
	}

	c, err = Load(env(map[string]string{
		"MICROSHOP_BREAKER_FAILURES":     "2",
		"MICROSHOP_BREAKER_OPEN_TIMEOUT": "100ms",
		"MICROSHOP_RETRY_MAX_ATTEMPTS":   "1",
		"MICROSHOP_BULKHEAD_SIZE":        "8",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	want = Resilience{BreakerFailures: 2, BreakerOpenTimeout: 100 * time.Millisecond, RetryMaxAttempts: 1, Bulkhead: 8}
	if c.Resilience != want {
		t.Errorf("set = %+v, want %+v", c.Resilience, want)
	}
}

func TestInvalidResilienceSettingsAreNamed(t *testing.T) {
	tests := []struct{ key, value string }{
		{"MICROSHOP_BREAKER_FAILURES", "0"},
		{"MICROSHOP_BREAKER_FAILURES", "many"},
		{"MICROSHOP_BREAKER_FAILURES", "1001"},
		{"MICROSHOP_BREAKER_OPEN_TIMEOUT", "1ms"},
		{"MICROSHOP_BREAKER_OPEN_TIMEOUT", "2h"},
		{"MICROSHOP_BREAKER_OPEN_TIMEOUT", "soon"},
		{"MICROSHOP_RETRY_MAX_ATTEMPTS", "0"},
		{"MICROSHOP_RETRY_MAX_ATTEMPTS", "11"},
		{"MICROSHOP_RETRY_MAX_ATTEMPTS", "2.5"},
		{"MICROSHOP_BULKHEAD_SIZE", "0"},
		{"MICROSHOP_BULKHEAD_SIZE", "-4"},
	}
	for _, tc := range tests {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			_, err := Load(env(map[string]string{tc.key: tc.value}), nil)
			if err == nil || !strings.Contains(err.Error(), tc.key) {
				t.Errorf("err = %v, want one naming %s", err, tc.key)
			}
		})
	}
}
