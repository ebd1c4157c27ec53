package users_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/users"
)

// FuzzNormalizeEmail feeds any string to NormalizeEmail: it never panics,
// refuses with fail.Invalid (422), and what it accepts is one bounded,
// trimmed, lower-case address with a dotted domain, already normal.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"ada@example.com", "  Ada@Example.COM ", "a+tag@b.co", "no-at.example.com", "a@b", "",
		"\"quoted name\"@example.com", "Ada <ada@example.com>", "a@b.c\x00", "' OR 1=1 --@x.com", "a@[127.0.0.1]", "ü@ü.de"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, email string) {
		got, err := users.NormalizeEmail(email)
		if err != nil {
			if !fail.Is(err, fail.Invalid) {
				t.Fatalf("NormalizeEmail(%q) = %v, want fail.Invalid", email, err)
			}
			return
		}
		at := strings.IndexByte(got, '@')
		if got == "" || len(got) > 254 || got != strings.ToLower(strings.TrimSpace(email)) || at < 1 || !strings.Contains(got[at:], ".") {
			t.Fatalf("NormalizeEmail(%q) accepted %q", email, got)
		}
		if again, err := users.NormalizeEmail(got); err != nil || again != got {
			t.Fatalf("NormalizeEmail is not idempotent: %q -> %q, %v", got, again, err)
		}
	})
}

// memStore is a users.Store in memory, so that fuzzing Register costs no
// database round trips; it keeps the one rule a store must: one account per
// email.
type memStore struct {
	mu    sync.Mutex
	users map[string]users.User // by email
}

func (m *memStore) Create(_ context.Context, u users.User, _ ...event.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[u.Email]; ok {
		return fail.New(fail.Conflict, "email taken")
	}
	m.users[u.Email] = u
	return nil
}

func (m *memStore) ByEmail(_ context.Context, email string) (users.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u, ok := m.users[email]; ok {
		return u, nil
	}
	return users.User{}, fail.New(fail.NotFound, "no such user")
}

func (m *memStore) ByID(_ context.Context, id string) (users.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.users {
		if u.ID == id {
			return u, nil
		}
	}
	return users.User{}, fail.New(fail.NotFound, "no such user")
}

func (m *memStore) Rename(_ context.Context, renamings ...users.Renaming) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var missing []string
next:
	for _, r := range renamings {
		for email, u := range m.users {
			if u.ID == r.UserID {
				u.Name = r.Name
				m.users[email] = u
				continue next
			}
		}
		missing = append(missing, r.UserID)
	}
	return missing, nil
}

var _ users.Store = (*memStore)(nil)

// FuzzRegister feeds any email, name and password to Register: it never
// panics and refuses only with fail.Invalid (422) or fail.Conflict (409);
// an account it makes is a customer's, with a normal email and a trimmed,
// printable, bounded name, and a password that logs in.
func FuzzRegister(f *testing.F) {
	f.Add("ada@example.com", "Ada", "correct horse")
	f.Add("ada@example.com", "Ada", "short")
	f.Add("Robert@Example.com", "Robert'); DROP TABLE users;--", "password123")
	f.Add("x@y.z", "\x00\x1b[31m", "password123")
	f.Add("x@y.z", strings.Repeat("é", 101), "password123")
	f.Add("x@y.z", "Eve", strings.Repeat("p", 73))
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	svc := users.NewService(&memStore{users: map[string]users.User{}}, auth.NewSigner(key, time.Hour))
	f.Fuzz(func(t *testing.T, email, name, password string) {
		u, err := svc.Register(context.Background(), email, name, password)
		if err != nil {
			if k := fail.KindOf(err); k != fail.Invalid && k != fail.Conflict {
				t.Fatalf("Register(%q, %q, %q) = %v (kind %v), want invalid or conflict", email, name, password, err, k)
			}
			return
		}
		norm, err := users.NormalizeEmail(email)
		if err != nil || u.Email != norm || u.Role != users.RoleCustomer || u.ID == "" {
			t.Fatalf("Register(%q) made %+v", email, u)
		}
		if u.Name == "" || u.Name != strings.TrimSpace(u.Name) || utf8.RuneCountInString(u.Name) > 100 || strings.ContainsFunc(u.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("Register accepted the name %q", u.Name)
		}
		if _, err := svc.Login(context.Background(), email, password); err != nil {
			t.Fatalf("the account just made does not log in: %v", err)
		}
	})
}
