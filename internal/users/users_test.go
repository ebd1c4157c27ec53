package users_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/sqldb/sqldbtest"
	"github.com/microshop/microshop/internal/users"
	"github.com/microshop/microshop/internal/users/userdb"
)

// shop is a users service on a real SQLite store, with the signer that
// issues its tokens and a verifier for them.
type shop struct {
	svc      *users.Service
	store    *userdb.Store
	verifier *auth.Verifier
}

func newShop(t *testing.T) shop {
	t.Helper()
	db := sqldbtest.OpenMessaging(t, "users", userdb.Migrations) // UserCreated is written with every new user
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(key, time.Hour)
	store := userdb.New(db)
	return shop{svc: users.NewService(store, signer), store: store, verifier: auth.NewVerifier(signer)}
}

// TestRegisterValidates runs every case against one store, each with its own
// address, so a refused case that wrote anything would be found there.
func TestRegisterValidates(t *testing.T) {
	const (
		name     = "Ada"
		password = "correct horse"
	)
	// An address of exactly 254 bytes: 64 + "@" + 189.
	longest := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com"
	tests := []struct {
		name                    string
		email, userName, passwd string
		wantErr                 bool
		wantEmail, wantName     string // when it succeeds
	}{
		{name: "valid", email: "ada@example.com", userName: name, passwd: password, wantEmail: "ada@example.com", wantName: name},
		{name: "email trimmed and lower-cased", email: "  Bob@Example.COM ", userName: name, passwd: password, wantEmail: "bob@example.com", wantName: name},
		{name: "email with plus tag", email: "ada+shop@example.com", userName: name, passwd: password, wantEmail: "ada+shop@example.com", wantName: name},
		{name: "email of 254 bytes", email: longest, userName: name, passwd: password, wantEmail: longest, wantName: name},
		{name: "email of 255 bytes", email: "a" + longest, userName: name, passwd: password, wantErr: true},
		{name: "empty email", email: "", userName: name, passwd: password, wantErr: true},
		{name: "blank email", email: "   ", userName: name, passwd: password, wantErr: true},
		{name: "email without at", email: "e1.example.com", userName: name, passwd: password, wantErr: true},
		{name: "email without dot in domain", email: "e2@localhost", userName: name, passwd: password, wantErr: true},
		{name: "email with display name", email: "Ada <e3@example.com>", userName: name, passwd: password, wantErr: true},
		{name: "email with a space", email: "e4 lovelace@example.com", userName: name, passwd: password, wantErr: true},
		{name: "two addresses", email: "e5@example.com, e6@example.com", userName: name, passwd: password, wantErr: true},
		{name: "email with a newline", email: "e7@example.com\nBcc: eve@example.com", userName: name, passwd: password, wantErr: true},
		{name: "email with a NUL", email: "e8@exa\x00mple.com", userName: name, passwd: password, wantErr: true},
		{name: "email with a comment", email: "e9(x)@example.com", userName: name, passwd: password, wantErr: true},
		{name: "name trimmed", email: "n1@example.com", userName: "  Ada Lovelace \t", passwd: password, wantEmail: "n1@example.com", wantName: "Ada Lovelace"},
		{name: "name of 100 runes", email: "n2@example.com", userName: strings.Repeat("é", 100), passwd: password, wantEmail: "n2@example.com", wantName: strings.Repeat("é", 100)},
		{name: "name of 101 runes", email: "n3@example.com", userName: strings.Repeat("é", 101), passwd: password, wantErr: true},
		{name: "empty name", email: "n4@example.com", userName: "", passwd: password, wantErr: true},
		{name: "blank name", email: "n5@example.com", userName: " \t ", passwd: password, wantErr: true},
		{name: "name with NUL", email: "n6@example.com", userName: "Ada\x00", passwd: password, wantErr: true},
		{name: "name with newline", email: "n7@example.com", userName: "Ada\nLovelace", passwd: password, wantErr: true},
		{name: "name with escape", email: "n8@example.com", userName: "Ada\x1b[31m", passwd: password, wantErr: true},
		{name: "name with DEL", email: "n9@example.com", userName: "Ada\x7f", passwd: password, wantErr: true},
		{name: "name not UTF-8", email: "n10@example.com", userName: "Ada\xff", passwd: password, wantErr: true},
		{name: "password of 7 bytes", email: "p1@example.com", userName: name, passwd: "1234567", wantErr: true},
		{name: "password of 8 bytes", email: "p2@example.com", userName: name, passwd: "12345678", wantEmail: "p2@example.com", wantName: name},
		{name: "password of 72 bytes", email: "p3@example.com", userName: name, passwd: strings.Repeat("p", 72), wantEmail: "p3@example.com", wantName: name},
		{name: "password of 73 bytes", email: "p4@example.com", userName: name, passwd: strings.Repeat("p", 73), wantErr: true},
		// 24 three-byte runes are 72 bytes: the limit is bcrypt's, in bytes.
		{name: "password of 72 bytes in 24 runes", email: "p5@example.com", userName: name, passwd: strings.Repeat("€", 24), wantEmail: "p5@example.com", wantName: name},
		{name: "password of 75 bytes in 25 runes", email: "p6@example.com", userName: name, passwd: strings.Repeat("€", 25), wantErr: true},
		{name: "empty password", email: "p7@example.com", userName: name, passwd: "", wantErr: true},
	}
	s := newShop(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // bcrypt is slow; the cases touch different accounts
			ctx := context.Background()
			u, err := s.svc.Register(ctx, tc.email, tc.userName, tc.passwd)
			if tc.wantErr {
				if !fail.Is(err, fail.Invalid) {
					t.Fatalf("Register(%q, %q, %d-byte password) error = %v, want invalid", tc.email, tc.userName, len(tc.passwd), err)
				}
				if _, err := s.store.ByEmail(ctx, strings.ToLower(strings.TrimSpace(tc.email))); !fail.Is(err, fail.NotFound) {
					t.Errorf("after a refused registration ByEmail error = %v, want not found: bad input must change nothing", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Register(%q, %q, %d-byte password) error = %v, want none", tc.email, tc.userName, len(tc.passwd), err)
			}
			if u.Email != tc.wantEmail || u.Name != tc.wantName || u.Role != users.RoleCustomer {
				t.Errorf("got user %q %q %q, want %q %q %q", u.Email, u.Name, u.Role, tc.wantEmail, tc.wantName, users.RoleCustomer)
			}
			if string(u.PasswordHash) == tc.passwd || len(u.PasswordHash) == 0 {
				t.Errorf("password hash %q is not a hash", u.PasswordHash)
			}
			stored, err := s.store.ByID(ctx, u.ID)
			if err != nil {
				t.Fatalf("ByID(%s): %v", u.ID, err)
			}
			if stored.Email != tc.wantEmail || stored.Name != tc.wantName {
				t.Errorf("stored %q %q, want %q %q", stored.Email, stored.Name, tc.wantEmail, tc.wantName)
			}
			if _, err := s.svc.Login(ctx, tc.wantEmail, tc.passwd); err != nil {
				t.Errorf("Login with the registered password: %v", err)
			}
		})
	}
}

func TestRegisterRefusesATakenEmailInAnyCase(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	first, err := s.svc.Register(ctx, "ada@example.com", "Ada", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.svc.Register(ctx, " ADA@example.com", "Impostor", "battery staple")
	if !fail.Is(err, fail.Conflict) {
		t.Fatalf("second Register error = %v, want conflict", err)
	}
	got, err := s.store.ByEmail(ctx, "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != first.ID || got.Name != "Ada" {
		t.Errorf("account is now %s %q, want the first one %s %q", got.ID, got.Name, first.ID, "Ada")
	}
	if _, err := s.svc.Login(ctx, "ada@example.com", "battery staple"); err == nil {
		t.Error("the impostor's password logs in")
	}
}

func TestLoginIssuesAVerifiableToken(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	u, err := s.svc.Register(ctx, "ada@example.com", "Ada", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.svc.Login(ctx, " Ada@Example.com", "correct horse")
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if tok.ExpiresIn != time.Hour {
		t.Errorf("ExpiresIn = %v, want 1h", tok.ExpiresIn)
	}
	p, err := s.verifier.Verify(ctx, tok.AccessToken)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p.Subject != u.ID || p.Role != auth.RoleCustomer {
		t.Errorf("principal = %+v, want subject %s role %s", p, u.ID, auth.RoleCustomer)
	}
}

// TestLoginFailuresAreIndistinguishable checks that an unknown email, a wrong
// password and an overlong one get the very same answer, so a caller cannot
// learn which emails have accounts.
func TestLoginFailuresAreIndistinguishable(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	long := strings.Repeat("p", 72)
	if _, err := s.svc.Register(ctx, "ada@example.com", "Ada", long); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, email, password string }{
		{"unknown email", "nobody@example.com", long},
		{"wrong password", "ada@example.com", "wrong password"},
		{"empty password", "ada@example.com", ""},
		// bcrypt would ignore the extra byte; the service must not.
		{"right password plus one byte", "ada@example.com", long + "x"},
		{"malformed email", "not an email", long},
	}
	var first error
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := s.svc.Login(ctx, tc.email, tc.password)
			if !fail.Is(err, fail.Unauthenticated) {
				t.Fatalf("Login = %+v, %v; want unauthenticated", tok, err)
			}
			if tok.AccessToken != "" {
				t.Errorf("a failed login returned a token")
			}
			if first == nil {
				first = err
				return
			}
			if err.Error() != first.Error() || fail.MessageOf(err) != fail.MessageOf(first) {
				t.Errorf("error %q, want the same as for %q: %q", err, tests[0].name, first)
			}
		})
	}
}

func TestEnsureAdmin(t *testing.T) {
	ctx := context.Background()

	t.Run("creates the admin once and never resets its password", func(t *testing.T) {
		s := newShop(t)
		generated, err := s.svc.EnsureAdmin(ctx, "Admin@Example.com", "first password")
		if err != nil {
			t.Fatalf("first EnsureAdmin: %v", err)
		}
		if generated != "" {
			t.Errorf("generated = %q, want none when a password is given", generated)
		}
		admin, err := s.store.ByEmail(ctx, "admin@example.com")
		if err != nil {
			t.Fatalf("admin not stored: %v", err)
		}
		if admin.Role != users.RoleAdmin {
			t.Errorf("role = %q, want %q", admin.Role, users.RoleAdmin)
		}

		generated, err = s.svc.EnsureAdmin(ctx, "admin@example.com", "second password")
		if err != nil || generated != "" {
			t.Fatalf("second EnsureAdmin = %q, %v; want nothing, no error", generated, err)
		}
		generated, err = s.svc.EnsureAdmin(ctx, "admin@example.com", "")
		if err != nil || generated != "" {
			t.Fatalf("EnsureAdmin with no password on an existing admin = %q, %v; want nothing, no error", generated, err)
		}
		again, err := s.store.ByEmail(ctx, "admin@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if again.ID != admin.ID {
			t.Errorf("admin id changed from %s to %s", admin.ID, again.ID)
		}
		if _, err := s.svc.Login(ctx, "admin@example.com", "second password"); err == nil {
			t.Error("the second password logs in: EnsureAdmin reset an existing admin's password")
		}
		tok, err := s.svc.Login(ctx, "admin@example.com", "first password")
		if err != nil {
			t.Fatalf("the first password no longer logs in: %v", err)
		}
		p, err := s.verifier.Verify(ctx, tok.AccessToken)
		if err != nil || !p.IsAdmin() || p.Subject != admin.ID {
			t.Errorf("admin token principal = %+v, %v; want admin %s", p, err, admin.ID)
		}
	})

	t.Run("generates a password when none is given", func(t *testing.T) {
		s := newShop(t)
		generated, err := s.svc.EnsureAdmin(ctx, "admin@example.com", "")
		if err != nil {
			t.Fatalf("EnsureAdmin: %v", err)
		}
		if len(generated) < 16 {
			t.Fatalf("generated password %q, want at least 16 characters", generated)
		}
		if _, err := s.svc.Login(ctx, "admin@example.com", generated); err != nil {
			t.Errorf("the generated password does not log in: %v", err)
		}
		other := newShop(t)
		second, err := other.svc.EnsureAdmin(ctx, "admin@example.com", "")
		if err != nil {
			t.Fatal(err)
		}
		if second == generated {
			t.Errorf("two shops generated the same admin password %q", generated)
		}
	})

	t.Run("refuses a bad email or password and creates nothing", func(t *testing.T) {
		s := newShop(t)
		if _, err := s.svc.EnsureAdmin(ctx, "not an email", "good password"); !fail.Is(err, fail.Invalid) {
			t.Errorf("bad email: error = %v, want invalid", err)
		}
		if _, err := s.svc.EnsureAdmin(ctx, "admin@example.com", "short"); !fail.Is(err, fail.Invalid) {
			t.Errorf("short password: error = %v, want invalid", err)
		}
		if _, err := s.store.ByEmail(ctx, "admin@example.com"); !fail.Is(err, fail.NotFound) {
			t.Errorf("ByEmail after refusals: %v, want not found", err)
		}
	})
}

func TestGetReturnsTheUserOrNotFound(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	u, err := s.svc.Register(ctx, "ada@example.com", "Ada", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.svc.Get(ctx, u.ID)
	if err != nil || got.ID != u.ID || got.Email != u.Email || got.Name != u.Name {
		t.Errorf("Get = %+v, %v; want %+v", got, err, u)
	}
	if _, err := s.svc.Get(ctx, "no-such-id"); !fail.Is(err, fail.NotFound) {
		t.Errorf("Get(unknown) error = %v, want not found", err)
	}
}
