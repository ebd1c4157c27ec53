package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestProfilesOnlyWhereAsked: with MICROSHOP_PPROF_ADDR the shop serves Go's
// profiles there, a CPU profile included; the gateway never serves them.
func TestProfilesOnlyWhereAsked(t *testing.T) {
	if splitMode {
		t.Skip("split mode: the children of up --split serve no profiles (each would want the one address); this test profiles up")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	shop := start(t, t.TempDir(), []string{"MICROSHOP_PPROF_ADDR=" + addr}, "up")

	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get("http://" + addr + "/debug/pprof/"); status != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("the profiles index = %d %.200q, want 200 listing the profiles", status, body)
	}
	if status, body := get("http://" + addr + "/debug/pprof/profile?seconds=1"); status != 200 || len(body) == 0 {
		t.Errorf("a one-second CPU profile = %d, %d bytes; want 200 and a profile", status, len(body))
	}
	if status, _ := get(shop.addrs["gateway"] + "/debug/pprof/"); status != 404 {
		t.Errorf("the gateway's /debug/pprof/ = %d, want 404", status)
	}
}
