package users_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
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

func wantUserRenamed(t *testing.T, e event.Event, id, name string) {
	t.Helper()
	if e.Type != users.TypeUserRenamed || e.Topic != users.TopicUserRenamed || e.Source != users.Source || e.Key != id || e.Version != 1 {
		t.Errorf("event = %s on %s from %s about %s v%d; want UserRenamed on %s from users about %s v1",
			e.Type, e.Topic, e.Source, e.Key, e.Version, users.TopicUserRenamed, id)
	}
	var payload map[string]any
	if err := json.Unmarshal(e.Payload, &payload); err != nil {
		t.Fatal(err)
	}
	if len(payload) != 2 || payload["user_id"] != id || payload["name"] != name {
		t.Errorf("payload = %v, want exactly user_id %s and name %q", payload, id, name)
	}
}

func TestRenamePublishesUserRenamedOnlyWhenTheNameChanges(t *testing.T) {
	ctx := context.Background()
	p := newPublishing(t)
	u, err := p.svc.Register(ctx, "ada@example.com", "Ada", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	renamed, err := p.svc.Rename(ctx, u.ID, "  Ada Lovelace ")
	if err != nil {
		t.Fatalf("Rename: %v", err)
	}
	if renamed.ID != u.ID || renamed.Name != "Ada Lovelace" || renamed.Email != u.Email {
		t.Errorf("Rename = %+v, want %s renamed to the trimmed %q", renamed, u.ID, "Ada Lovelace")
	}
	events := p.published(t)
	if len(events) != 2 {
		t.Fatalf("published %d events, want UserCreated and UserRenamed", len(events))
	}
	wantUserRenamed(t, events[1], u.ID, "Ada Lovelace")

	// The same name again, trimmed or not: nothing changes, nothing is announced.
	for _, same := range []string{"Ada Lovelace", " Ada Lovelace\t"} {
		if got, err := p.svc.Rename(ctx, u.ID, same); err != nil || got.Name != "Ada Lovelace" {
			t.Errorf("Rename to the same name %q = %+v, %v; want the user unchanged", same, got, err)
		}
	}
	// Refusals change and announce nothing.
	for _, bad := range []string{"", "   ", "Ada\nLovelace", strings.Repeat("é", 101)} {
		if _, err := p.svc.Rename(ctx, u.ID, bad); !fail.Is(err, fail.Invalid) {
			t.Errorf("Rename to %q = %v, want fail.Invalid", bad, err)
		}
	}
	if _, err := p.svc.Rename(ctx, "no-such-user", "Bob"); !fail.Is(err, fail.NotFound) {
		t.Errorf("Rename of an unknown user = %v, want fail.NotFound", err)
	}
	if got := len(p.published(t)); got != 2 {
		t.Errorf("published %d events after a no-op and refusals, want still 2", got)
	}
	if got, _ := p.svc.Get(ctx, u.ID); got.Name != "Ada Lovelace" {
		t.Errorf("name = %q after refusals, want %q", got.Name, "Ada Lovelace")
	}
}

func TestImportProfilesTakesOverTheMonolithsNames(t *testing.T) {
	ctx := context.Background()
	p := newPublishing(t)
	ada, err := p.svc.Register(ctx, "ada@example.com", "Ada", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := p.svc.Register(ctx, "bob@example.com", "Bob", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	profiles := []users.Profile{
		{ID: ada.ID, Name: " Ada King ", Email: "ada@example.com"}, // renamed in the monolith
		{ID: bob.ID, Name: "Bob", Email: "bob@example.com"},        // as here: nothing to announce
		{ID: "gone-1", Name: "Ghost"},
	}
	res, err := p.svc.ImportProfiles(ctx, profiles)
	if err != nil {
		t.Fatalf("ImportProfiles: %v", err)
	}
	if res.Imported != 2 || !slices.Equal(res.Missing, []string{"gone-1"}) {
		t.Errorf("import = %+v, want 2 imported and gone-1 missing", res)
	}
	events := p.published(t)
	if len(events) != 3 {
		t.Fatalf("published %d events, want 2 UserCreated and 1 UserRenamed", len(events))
	}
	wantUserRenamed(t, events[2], ada.ID, "Ada King")
	if got, _ := p.svc.Get(ctx, ada.ID); got.Name != "Ada King" {
		t.Errorf("ada's name = %q, want the monolith's %q", got.Name, "Ada King")
	}

	// Again: the same answer, and nothing new.
	again, err := p.svc.ImportProfiles(ctx, profiles)
	if err != nil || again.Imported != res.Imported || !slices.Equal(again.Missing, res.Missing) {
		t.Errorf("second import = %+v, %v; want %+v", again, err, res)
	}
	if got := len(p.published(t)); got != 3 {
		t.Errorf("published %d events after the same import twice, want still 3", got)
	}
	if empty, err := p.svc.ImportProfiles(ctx, nil); err != nil || empty.Imported != 0 || empty.Missing == nil || len(empty.Missing) != 0 {
		t.Errorf("empty import = %+v, %v; want 0 imported and an empty missing list", empty, err)
	}
}

// TestImportProfilesRefusedWholeChangesNothing: one bad profile refuses the
// import, and the good profiles before it are not applied either.
func TestImportProfilesRefusedWholeChangesNothing(t *testing.T) {
	ctx := context.Background()
	p := newPublishing(t)
	ada, err := p.svc.Register(ctx, "ada@example.com", "Ada", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	tooMany := make([]users.Profile, users.MaxProfileImport+1)
	for i := range tooMany {
		tooMany[i] = users.Profile{ID: fmt.Sprintf("u%d", i), Name: "Ada"}
	}
	tooMany[0].ID = ada.ID
	tests := []struct {
		name     string
		profiles []users.Profile
		want     string
	}{
		{"bad name after a good one", []users.Profile{{ID: ada.ID, Name: "Ada King"}, {ID: "x", Name: "Eve\x00"}}, "profiles[1].name must not contain control characters"},
		{"blank name", []users.Profile{{ID: ada.ID, Name: "  "}}, "profiles[0].name must be 1 to 100 characters"},
		{"empty id", []users.Profile{{ID: ada.ID, Name: "Ada King"}, {Name: "Eve"}}, "profiles[1].id"},
		{"id too long", []users.Profile{{ID: strings.Repeat("x", 65), Name: "Eve"}}, "profiles[0].id"},
		{"repeated id", []users.Profile{{ID: ada.ID, Name: "Ada King"}, {ID: ada.ID, Name: "Ada Byron"}}, "more than once"},
		{"more than the maximum", tooMany, "at most 1000 profiles"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.svc.ImportProfiles(ctx, tc.profiles)
			if !fail.Is(err, fail.Invalid) || !strings.Contains(fail.MessageOf(err), tc.want) {
				t.Fatalf("ImportProfiles = %v, want fail.Invalid saying %q", err, tc.want)
			}
		})
	}
	if got, _ := p.svc.Get(ctx, ada.ID); got.Name != "Ada" {
		t.Errorf("ada's name = %q after refused imports, want %q", got.Name, "Ada")
	}
	if got := len(p.published(t)); got != 1 {
		t.Errorf("published %d events after refused imports, want only UserCreated", got)
	}
	// Exactly the maximum is accepted.
	atMax := tooMany[:users.MaxProfileImport]
	res, err := p.svc.ImportProfiles(ctx, atMax)
	if err != nil || res.Imported != 1 || len(res.Missing) != users.MaxProfileImport-1 {
		t.Errorf("import of %d profiles = %d imported, %d missing, %v; want 1 and %d", len(atMax), res.Imported, len(res.Missing), err, users.MaxProfileImport-1)
	}
}
