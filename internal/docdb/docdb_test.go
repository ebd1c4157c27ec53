package docdb

import (
	"context"
	"strings"
	"testing"
)

func TestDatabaseName(t *testing.T) {
	tests := []struct {
		url, want string
		ok        bool
	}{
		{"mongodb://127.0.0.1:27017/catalog", "catalog", true},
		{"mongodb://user:secret@mongo:27017/shop?authSource=admin", "shop", true},
		{"mongodb://127.0.0.1:27017", "fallback", true},
		{"mongodb://127.0.0.1:27017/", "fallback", true},
		{"mongodb+srv://cluster.example.com/catalog", "catalog", true},
		{"mongodb://127.0.0.1:27017/a.b", "", false},
		{"postgres://127.0.0.1:5432/catalog", "", false},
		{"mongodb:///catalog", "", false},
	}
	for _, tt := range tests {
		got, err := databaseName(tt.url, "fallback")
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("databaseName(%q) = %q, %v; want %q, ok %v", tt.url, got, err, tt.want, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("databaseName(%q) error %q shows the password", tt.url, err)
		}
	}
}

func TestOpenRefusesAnotherSchemeWithoutShowingThePassword(t *testing.T) {
	_, err := Open(context.Background(), "postgres://u:hunter2@127.0.0.1:5432/catalog", "catalog")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Open of a postgres URL = %v, want an error without the password", err)
	}
}

func TestEmbedListensOnLoopbackOnly(t *testing.T) {
	if _, err := Embed(context.Background(), t.TempDir(), "0.0.0.0:0", nil); err == nil {
		t.Error("Embed on 0.0.0.0 succeeded, want it refused: the embedded server has no authentication")
	}
}

func TestEmbeddedDataOutlivesTheServer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for run := range 2 {
		srv, err := Embed(ctx, dir, "127.0.0.1:0", nil)
		if err != nil {
			t.Fatal(err)
		}
		db, err := srv.Open(ctx, "kept")
		if err != nil {
			t.Fatal(err)
		}
		if run == 0 {
			_, err = db.Collection("things").InsertOne(ctx, map[string]string{"_id": "a"})
		} else {
			err = db.Collection("things").FindOne(ctx, map[string]string{"_id": "a"}).Err()
		}
		if err != nil {
			t.Errorf("run %d: %v", run, err)
		}
		_ = db.Close()
		_ = srv.Close()
	}
}
