package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
)

// FuzzVerify feeds any token to Verify, starting from a real one: it never
// panics and refuses with fail.Unauthenticated (401), and whatever it
// accepts carries exactly the identity the signer issued. A mutation of the
// signed token that passed with another subject or role would be a forgery.
func FuzzVerify(f *testing.F) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	signer := auth.NewSigner(key, time.Hour)
	valid, _, err := signer.Sign("fuzz-user", auth.RoleCustomer)
	if err != nil {
		f.Fatal(err)
	}
	head, rest, _ := strings.Cut(valid, ".")
	f.Add(valid)
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + rest[:strings.IndexByte(rest, '.')] + ".") // alg none
	f.Add(head + "." + rest + "x")
	f.Add(strings.Repeat(".", 1<<10))
	f.Add("")
	f.Add("a.b.c")
	f.Add("Bearer " + valid)
	verifier := auth.NewVerifier(signer)
	f.Fuzz(func(t *testing.T, token string) {
		p, err := verifier.Verify(context.Background(), token)
		if err != nil {
			if !fail.Is(err, fail.Unauthenticated) {
				t.Fatalf("Verify(%q) = %v (kind %v), want fail.Unauthenticated", token, err, fail.KindOf(err))
			}
			return
		}
		if p.Subject != "fuzz-user" || p.Role != auth.RoleCustomer {
			t.Fatalf("Verify(%q) accepted a forged identity %+v", token, p)
		}
	})
}
