package registry

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPrometheusFindsEveryLiveInstance(t *testing.T) {
	now := time.Unix(1000, 0)
	reg := New()
	reg.now = func() time.Time { return now }
	srv := httptest.NewServer(Routes(reg, func(*http.Request) error { return errors.New("no admin here") }))
	defer srv.Close()
	targets := func() (string, []TargetGroup) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/prometheus/targets") // no token: Prometheus has none
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("GET /prometheus/targets = %d %s, want 200 JSON", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var raw json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
			t.Fatal(err)
		}
		var groups []TargetGroup
		if err := json.Unmarshal(raw, &groups); err != nil {
			t.Fatal(err)
		}
		return string(raw), groups
	}
	if raw, _ := targets(); strings.TrimSpace(raw) != "[]" {
		t.Errorf("with no instance: %s, want [] (Prometheus refuses null)", raw)
	}

	reg.Heartbeat(Instance{ID: "orders-127.0.0.1:9002", Service: "orders", Address: "127.0.0.1:9002", Healthy: true}, 5*time.Second)
	reg.Heartbeat(Instance{ID: "orders-127.0.0.1:9001", Service: "orders", Address: "127.0.0.1:9001", Healthy: false}, 5*time.Second)
	reg.Heartbeat(Instance{ID: "catalog-127.0.0.1:9003", Service: "catalog", Address: "127.0.0.1:9003", Healthy: true}, time.Second)
	_, got := targets()
	want := []TargetGroup{
		{Targets: []string{"127.0.0.1:9003"}, Labels: map[string]string{"service": "catalog", "instance_id": "catalog-127.0.0.1:9003"}},
		{Targets: []string{"127.0.0.1:9001"}, Labels: map[string]string{"service": "orders", "instance_id": "orders-127.0.0.1:9001"}},
		{Targets: []string{"127.0.0.1:9002"}, Labels: map[string]string{"service": "orders", "instance_id": "orders-127.0.0.1:9002"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("targets = %+v\nwant      %+v (every live instance, not-ready ones too)", got, want)
	}

	now = now.Add(2 * time.Second) // catalog's TTL has passed
	if _, got := targets(); len(got) != 2 || got[0].Labels["service"] != "orders" {
		t.Errorf("after catalog's TTL: %+v, want only the two orders instances", got)
	}
}
