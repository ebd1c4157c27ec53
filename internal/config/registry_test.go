package config

import (
	"strings"
	"testing"
)

func TestRegistryURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		problem string // a part of the error; empty: accepted
	}{
		{"http://127.0.0.1:8090", ""},
		{"https://registry.example:443", ""},
		{"etcd://127.0.0.1:2379", ""},
		{"etcd://etcd-0.etcd:2379,etcd-1.etcd:2379,etcd-2.etcd:2379", ""},
		{"etcd://127.0.0.1:2379?prefix=/shop-a", ""},
		{"kubernetes://microshop", ""},
		{"kubernetes://microshop?domain=cluster.local", ""},
		{"kubernetes://shop-2?domain=corp.example", ""},

		{"127.0.0.1:8090", "want http://host:port"},
		{"http://", "want http://host:port"},
		{"consul://127.0.0.1:8500", "want http://host:port (the built-in registry), etcd://"},
		{"etcd://127.0.0.1", `etcd endpoint "127.0.0.1" is not host:port`},
		{"etcd://127.0.0.1:2379,", "etcd://host:port[,host:port]"},
		{"etcd://", `etcd endpoint "" is not host:port`},
		{"etcd://127.0.0.1:2379?prefix=microshop", "prefix=/name"},
		{"etcd://127.0.0.1:2379?prefix=/microshop/", "prefix=/name"},
		{"etcd://127.0.0.1:2379?prefix=/a&ttl=3", "prefix=/name"},
		{"etcd://user:pw@127.0.0.1:2379", "no user, path or fragment"},
		{"etcd://127.0.0.1:2379/microshop", "no user, path or fragment"},
		{"kubernetes://", "namespace must be a DNS label"},
		{"kubernetes://Shop", "namespace must be a DNS label"},
		{"kubernetes://shop.svc", "namespace must be a DNS label"},
		{"kubernetes://-shop", "namespace must be a DNS label"},
		{"kubernetes://shop?domain=cluster..local", "domain=<DNS name>"},
		{"kubernetes://shop?namespace=x", "domain=<DNS name>"},
	} {
		_, err := Load(env(map[string]string{"MICROSHOP_REGISTRY_URL": tc.url}), nil)
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("%q refused: %v", tc.url, err)
		case tc.problem != "" && err == nil:
			t.Errorf("%q accepted, want refused (%s)", tc.url, tc.problem)
		case tc.problem != "" && (!strings.Contains(err.Error(), "MICROSHOP_REGISTRY_URL") || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("%q refused with %q, want it to name MICROSHOP_REGISTRY_URL and say %q", tc.url, err, tc.problem)
		}
	}
}

func TestAdvertiseHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"orders", true},
		{"orders.microshop.svc.cluster.local", true},
		{"10.1.2.3", true},
		{"fd00::1", true},
		{"orders:8080", false},
		{"http://orders", false},
		{"or ders", false},
	} {
		c, err := Load(env(map[string]string{"MICROSHOP_ADVERTISE_HOST": tc.host}), nil)
		switch {
		case tc.ok && (err != nil || c.AdvertiseHost != tc.host):
			t.Errorf("%q: AdvertiseHost = %q, %v; want it accepted", tc.host, c.AdvertiseHost, err)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), "MICROSHOP_ADVERTISE_HOST")):
			t.Errorf("%q: %v, want refused naming MICROSHOP_ADVERTISE_HOST", tc.host, err)
		}
	}
}
