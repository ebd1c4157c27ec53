// Package users is the heart of the users service: accounts, their
// credentials and roles, the rules for signing up, logging in and renaming,
// and the UserCreated and UserRenamed events that tell the other services
// of an account and its name. It knows nothing of HTTP, SQL or the broker.
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
	// Rename applies renamings in one transaction: each user's name is
	// set, and its event stored, only if the name differs from the one
	// stored, so that renaming to the same name changes and announces
	// nothing. It returns the ids of renamings whose user does not exist,
	// for which nothing is stored.
	Rename(ctx context.Context, renamings ...Renaming) (missing []string, err error)
}

// Renaming is one user's new name, with the UserRenamed event that
// announces it if the name changes.
type Renaming struct {
	UserID string
	Name   string
	Event  event.Event
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

// Rename gives the user id a new name, trimmed and checked as at sign-up,
// and announces it with UserRenamed in the same transaction. Renaming to
// the name the user already has changes and announces nothing. It returns
// the user as renamed; fail.NotFound if there is none.
func (s *Service) Rename(ctx context.Context, id, name string) (User, error) {
	name = strings.TrimSpace(name)
	if err := validateName(name); err != nil {
		return User{}, err
	}
	renamed, err := userRenamed(id, name)
	if err != nil {
		return User{}, err
	}
	missing, err := s.store.Rename(ctx, Renaming{UserID: id, Name: name, Event: renamed})
	if err != nil {
		return User{}, err
	}
	if len(missing) > 0 {
		return User{}, fail.New(fail.NotFound, "user not found")
	}
	return s.store.ByID(ctx, id)
}

// Profile is a customer's profile as the legacy monolith kept it. Its id is
// the users service's user id: the monolith enrolled each customer from
// their account here.
type Profile struct {
	ID    string
	Name  string
	Email string
}

// ProfileImport is what an import of profiles did.
type ProfileImport struct {
	// Imported counts the profiles whose user exists: each now has the
	// profile's name, whether it changed or already was. So a repeated
	// import answers the same.
	Imported int
	// Missing lists the ids of profiles that are no users; nothing is
	// stored for them.
	Missing []string
}

// MaxProfileImport bounds one import, so that no call asks for unbounded
// work in one transaction.
const MaxProfileImport = 1000

// ImportProfiles takes over the names of profiles the legacy monolith kept
// until now. The monolith owned them, so its name wins: each user that
// exists gets the profile's name, by the rules of Rename, and a UserRenamed
// event when the name changes. The email is not applied: the monolith only
// ever copied it from this service, which owns it. The whole import is one
// transaction, and is refused whole, changing nothing, if a profile breaks
// a rule. Importing the same profiles again changes nothing.
func (s *Service) ImportProfiles(ctx context.Context, profiles []Profile) (ProfileImport, error) {
	if len(profiles) > MaxProfileImport {
		return ProfileImport{}, fail.New(fail.Invalid, "an import holds at most %d profiles", MaxProfileImport)
	}
	renamings := make([]Renaming, 0, len(profiles))
	seen := make(map[string]bool, len(profiles))
	for i, p := range profiles {
		if p.ID == "" || len(p.ID) > maxIDBytes {
			return ProfileImport{}, fail.New(fail.Invalid, "profiles[%d].id must be 1 to %d characters", i, maxIDBytes)
		}
		if seen[p.ID] {
			return ProfileImport{}, fail.New(fail.Invalid, "profiles[%d].id %q appears more than once", i, p.ID)
		}
		seen[p.ID] = true
		name := strings.TrimSpace(p.Name)
		if err := validateName(name); err != nil {
			return ProfileImport{}, fail.New(fail.Invalid, "profiles[%d].%s", i, fail.MessageOf(err))
		}
		renamed, err := userRenamed(p.ID, name)
		if err != nil {
			return ProfileImport{}, err
		}
		renamings = append(renamings, Renaming{UserID: p.ID, Name: name, Event: renamed})
	}
	if len(renamings) == 0 {
		return ProfileImport{Missing: []string{}}, nil
	}
	missing, err := s.store.Rename(ctx, renamings...)
	if err != nil {
		return ProfileImport{}, err
	}
	if missing == nil {
		missing = []string{}
	}
	return ProfileImport{Imported: len(renamings) - len(missing), Missing: missing}, nil
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
	maxIDBytes       = 64 // the users table's id column holds no more on MySQL
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
