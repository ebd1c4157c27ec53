// Package users is the heart of the users service: accounts, their
// credentials and roles, the rules for signing up and logging in, and the
// UserCreated event that tells the other services of a new account. It
// knows nothing of HTTP, SQL or the broker.
package users

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
)

// User is an account.
type User struct {
	ID           string
	Email        string
	Name         string
	Role         string // "customer" or "admin"
	PasswordHash []byte
	CreatedAt    time.Time
}

// Roles.
const (
	RoleCustomer = "customer"
	RoleAdmin    = "admin"
)

// Store keeps accounts.
type Store interface {
	// Create stores u and the events that announce it, in one
	// transaction; fail.Conflict if its email is taken, and then stores
	// neither.
	Create(ctx context.Context, u User, events ...event.Event) error
	// ByEmail finds a user by normalised email; fail.NotFound if none.
	ByEmail(ctx context.Context, email string) (User, error)
	// ByID finds a user by id; fail.NotFound if none.
	ByID(ctx context.Context, id string) (User, error)
}

// TokenSigner issues access tokens.
type TokenSigner interface {
	Sign(subject, role string) (token string, ttl time.Duration, err error)
}

// Token is an issued access token.
type Token struct {
	AccessToken string
	ExpiresIn   time.Duration
}

// Service applies the users rules over a store.
type Service struct {
	store     Store
	signer    TokenSigner
	cost      int
	dummyHash []byte
}

// BcryptCost is the work factor for password hashes.
const BcryptCost = 10

// NewService returns the users service.
func NewService(store Store, signer TokenSigner) *Service {
	// A hash to compare against when the email is unknown, so that a login
	// for an unknown user costs the same time as a wrong password.
	dummy, _ := bcrypt.GenerateFromPassword([]byte("not a real password"), BcryptCost)
	return &Service{store: store, signer: signer, cost: BcryptCost, dummyHash: dummy}
}

// Register creates a customer account.
func (s *Service) Register(ctx context.Context, email, name, password string) (User, error) {
	return s.create(ctx, email, name, password, RoleCustomer)
}

func (s *Service) create(ctx context.Context, email, name, password, role string) (User, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return User{}, err
	}
	name = strings.TrimSpace(name)
	if err := validateName(name); err != nil {
		return User{}, err
	}
	if err := validatePassword(password); err != nil {
		return User{}, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return User{}, err
	}
	u := User{ID: uuid.Must(uuid.NewV7()).String(), Email: email, Name: name, Role: role, PasswordHash: hash, CreatedAt: time.Now().UTC()}
	created, err := userCreated(u)
	if err != nil {
		return User{}, err
	}
	if err := s.store.Create(ctx, u, created); err != nil {
		return User{}, err
	}
	return u, nil
}

// Login checks credentials and issues a token. An unknown email and a wrong
// password get the same answer, after the same work.
func (s *Service) Login(ctx context.Context, email, password string) (Token, error) {
	wrong := fail.New(fail.Unauthenticated, "wrong email or password")
	norm, err := NormalizeEmail(email)
	if err != nil || len(password) > maxPasswordBytes {
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password[:min(len(password), maxPasswordBytes)]))
		return Token{}, wrong
	}
	u, err := s.store.ByEmail(ctx, norm)
	if fail.Is(err, fail.NotFound) {
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
		return Token{}, wrong
	}
	if err != nil {
		return Token{}, err
	}
	if bcrypt.CompareHashAndPassword(u.PasswordHash, []byte(password)) != nil {
		return Token{}, wrong
	}
	tok, ttl, err := s.signer.Sign(u.ID, u.Role)
	if err != nil {
		return Token{}, err
	}
	return Token{AccessToken: tok, ExpiresIn: ttl}, nil
}

// Get returns the user with id.
func (s *Service) Get(ctx context.Context, id string) (User, error) {
	return s.store.ByID(ctx, id)
}

// EnsureAdmin creates the first admin account unless one with email exists.
// With an empty password it generates one and returns it, so the caller can
// show it once; otherwise generated is empty.
func (s *Service) EnsureAdmin(ctx context.Context, email, password string) (generated string, err error) {
	norm, err := NormalizeEmail(email)
	if err != nil {
		return "", err
	}
	if _, err := s.store.ByEmail(ctx, norm); err == nil {
		return "", nil
	} else if !fail.Is(err, fail.NotFound) {
		return "", err
	}
	if password == "" {
		b := make([]byte, 18)
		_, _ = rand.Read(b)
		password = base64.RawURLEncoding.EncodeToString(b)
		generated = password
	}
	if _, err := s.create(ctx, norm, "Administrator", password, RoleAdmin); err != nil {
		if fail.Is(err, fail.Conflict) { // created meanwhile by another instance
			return "", nil
		}
		return "", err
	}
	return generated, nil
}

const (
	maxEmailBytes    = 254
	maxNameRunes     = 100
	minPasswordBytes = 8
	maxPasswordBytes = 72 // bcrypt reads no further
)

// NormalizeEmail checks an address and returns it trimmed and lower-cased.
func NormalizeEmail(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" || len(email) > maxEmailBytes {
		return "", fail.New(fail.Invalid, "email must be an address of at most %d characters", maxEmailBytes)
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" || !strings.Contains(email[strings.IndexByte(email, '@'):], ".") {
		return "", fail.New(fail.Invalid, "email %q is not a valid address", email)
	}
	return email, nil
}

func validateName(name string) error {
	if name == "" || utf8.RuneCountInString(name) > maxNameRunes || !utf8.ValidString(name) {
		return fail.New(fail.Invalid, "name must be 1 to %d characters", maxNameRunes)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fail.New(fail.Invalid, "name must not contain control characters")
		}
	}
	return nil
}

func validatePassword(p string) error {
	if len(p) < minPasswordBytes || len(p) > maxPasswordBytes {
		return fail.New(fail.Invalid, "password must be %d to %d bytes", minPasswordBytes, maxPasswordBytes)
	}
	return nil
}
