package users_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/sqldb"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
	"github.com/microshop/microshop/internal/users"
	"github.com/microshop/microshop/internal/users/userdb"
)

// publishing is a users service on a real database with the messaging
// tables, so that what it publishes can be read from its outbox.
type publishing struct {
	svc *users.Service
	db  *sqldb.DB
}

func newPublishing(t *testing.T) publishing {
	t.Helper()
	db := sqldbtest.OpenMessaging(t, "users", userdb.Migrations)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return publishing{svc: users.NewService(userdb.New(db), auth.NewSigner(key, time.Hour)), db: db}
}

// published returns the events in the outbox, oldest first.
func (p publishing) published(t *testing.T) []event.Event {
	t.Helper()
	return sqldbtest.Outbox(t, p.db)
}

func wantUserCreated(t *testing.T, e event.Event, u users.User) {
	t.Helper()
	if e.Type != users.TypeUserCreated || e.Topic != users.TopicUserCreated || e.Source != users.Source || e.Key != u.ID || e.Version != 1 {
		t.Errorf("event = %s on %s from %s about %s v%d; want UserCreated on %s from users about %s v1",
			e.Type, e.Topic, e.Source, e.Key, e.Version, users.TopicUserCreated, u.ID)
	}
	var payload map[string]any
	if err := json.Unmarshal(e.Payload, &payload); err != nil {
		t.Fatal(err)
	}
	// Exactly the fields the spec lists: never the email, role or hash.
	if len(payload) != 2 || payload["user_id"] != u.ID || payload["name"] != u.Name {
		t.Errorf("payload = %v, want exactly user_id %s and name %q", payload, u.ID, u.Name)
	}
}

func TestRegisterPublishesUserCreated(t *testing.T) {
	ctx := context.Background()
	p := newPublishing(t)
	u, err := p.svc.Register(ctx, "ada@example.com", "  Ada Lovelace ", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	events := p.published(t)
	if len(events) != 1 {
		t.Fatalf("published %d events, want 1", len(events))
	}
	wantUserCreated(t, events[0], u)

	// A refused account announces nothing.
	if _, err := p.svc.Register(ctx, "ADA@example.com", "Ada again", "correct horse"); !fail.Is(err, fail.Conflict) {
		t.Fatalf("Register of a taken email = %v, want fail.Conflict", err)
	}
	if _, err := p.svc.Register(ctx, "bob@example.com", "Bob", "short"); !fail.Is(err, fail.Invalid) {
		t.Fatalf("Register with a short password = %v, want fail.Invalid", err)
	}
	if got := len(p.published(t)); got != 1 {
		t.Errorf("published %d events after two refusals, want still 1", got)
	}
}

func TestEnsureAdminPublishesUserCreatedOnce(t *testing.T) {
	ctx := context.Background()
	p := newPublishing(t)
	for range 2 {
		if _, err := p.svc.EnsureAdmin(ctx, "admin@example.com", "admin-password"); err != nil {
			t.Fatal(err)
		}
	}
	events := p.published(t)
	if len(events) != 1 {
		t.Fatalf("published %d events for one admin ensured twice, want 1", len(events))
	}
	var payload users.UserCreated
	if err := events[0].Decode(&payload); err != nil {
		t.Fatal(err)
	}
	admin, err := p.svc.Get(ctx, payload.UserID)
	if err != nil || admin.Role != users.RoleAdmin {
		t.Fatalf("the announced user is %+v, %v; want the admin", admin, err)
	}
	wantUserCreated(t, events[0], admin)
}
