package userhttp

import (
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/users"
	"github.com/microshop/microshop/internal/web"
)

type handlers struct {
	svc  *users.Service
	keys KeyRing
}

// userV1 is the v1 view of a user: no email.
type userV1 struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// userV2 adds the email.
type userV2 struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// Vendor media types for Accept-header versioning.
const (
	mediaV1 = "application/vnd.microshop.users.v1+json"
	mediaV2 = "application/vnd.microshop.users.v2+json"
)

func (h *handlers) register(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Email    string `json:"email"`
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	u, err := h.svc.Register(r.Context(), in.Email, in.Name, in.Password)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/users/"+u.ID)
	web.JSON(w, http.StatusCreated, userV1{ID: u.ID, Name: u.Name})
}

func (h *handlers) login(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	tok, err := h.svc.Login(r.Context(), in.Email, in.Password)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, map[string]any{
		"access_token": tok.AccessToken,
		"token_type":   "Bearer",
		"expires_in":   int(tok.ExpiresIn.Seconds()),
	})
}

func (h *handlers) me(w http.ResponseWriter, r *http.Request) {
	p, err := auth.User(r.Context())
	if err != nil {
		web.Error(w, r, err)
		return
	}
	u, err := h.svc.Get(r.Context(), p.Subject)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, userV1{ID: u.ID, Name: u.Name})
}

// owned loads the user in the path if the caller is that user or an admin.
// Authorization comes before the lookup, so a stranger cannot tell which ids exist.
func (h *handlers) owned(r *http.Request) (users.User, error) {
	p, err := auth.User(r.Context())
	if err != nil {
		return users.User{}, err
	}
	id := r.PathValue("id")
	if !p.CanAccess(id) {
		return users.User{}, fail.New(fail.Forbidden, "not your account")
	}
	return h.svc.Get(r.Context(), id)
}

func (h *handlers) getV1(w http.ResponseWriter, r *http.Request) {
	u, err := h.owned(r)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, userV1{ID: u.ID, Name: u.Name})
}

func (h *handlers) getV2(w http.ResponseWriter, r *http.Request) {
	u, err := h.owned(r)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, userV2{ID: u.ID, Name: u.Name, Email: u.Email})
}

// rename answers PATCH /api/v1/users/{id} with the account as renamed. The
// caller's right to the account is checked before the body is read.
func (h *handlers) rename(w http.ResponseWriter, r *http.Request) {
	u, err := h.owned(r)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	var in struct {
		Name string `json:"name"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	u, err = h.svc.Rename(r.Context(), u.ID, in.Name)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.JSON(w, http.StatusOK, userV1{ID: u.ID, Name: u.Name})
}

// importer is the one service that may import the legacy monolith's data:
// the gateway, whose strangler-fig facade copies it before it moves a route.
const importer = "gateway"

// importProfiles answers POST /internal/v1/import/profiles: the monolith's
// names of its customers, taken over. The host lets only service tokens
// reach an internal path; of the services, only the gateway may import.
func (h *handlers) importProfiles(w http.ResponseWriter, r *http.Request) {
	p, err := auth.Service(r.Context())
	if err != nil {
		web.Error(w, r, err)
		return
	}
	if p.Subject != importer {
		web.Error(w, r, fail.New(fail.Forbidden, "only the %s imports profiles", importer))
		return
	}
	var in struct {
		Profiles []struct {
			ID    string `json:"id"`
			Name  string `json:"name"`
			Email string `json:"email"`
		} `json:"profiles"`
	}
	if err := web.Decode(w, r, &in); err != nil {
		web.Error(w, r, err)
		return
	}
	profiles := make([]users.Profile, len(in.Profiles))
	for i, p := range in.Profiles {
		profiles[i] = users.Profile{ID: p.ID, Name: p.Name, Email: p.Email}
	}
	res, err := h.svc.ImportProfiles(r.Context(), profiles)
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.LoggerFrom(r.Context()).InfoContext(r.Context(), "legacy profiles imported",
		slog.Int("imported", res.Imported), slog.Int("missing", len(res.Missing)))
	web.JSON(w, http.StatusOK, map[string]any{"imported": res.Imported, "missing": res.Missing})
}

// getNegotiated picks the version from the Accept header: the v2 vendor type
// gets v2, anything else v1.
func (h *handlers) getNegotiated(w http.ResponseWriter, r *http.Request) {
	u, err := h.owned(r)
	w.Header().Add("Vary", "Accept")
	if err != nil {
		web.Error(w, r, err)
		return
	}
	if acceptsV2(r.Header.Get("Accept")) {
		w.Header().Set("Content-Type", mediaV2)
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(userV2{ID: u.ID, Name: u.Name, Email: u.Email})
		return
	}
	w.Header().Set("Content-Type", mediaV1)
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(userV1{ID: u.ID, Name: u.Name})
}

func acceptsV2(accept string) bool {
	for part := range strings.SplitSeq(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && mt == mediaV2 {
			return true
		}
	}
	return false
}

// jwks publishes the public keys of the ring: current, next and previous.
// Caches may keep the set a short while only: a rotation publishes a new
// next key that verifiers must see before it signs.
func (h *handlers) jwks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=10")
	web.JSON(w, http.StatusOK, h.keys.JWKS())
}

// rotate moves the key ring one step (admin): the next key signs from now
// on, the current one keeps verifying the tokens it signed until they
// expire, and a new next key is published. 409 while the next key is too
// new for every verifier to know it.
func (h *handlers) rotate(w http.ResponseWriter, r *http.Request) {
	p, err := auth.Admin(r.Context())
	if err != nil {
		web.Error(w, r, err)
		return
	}
	st, err := h.keys.Rotate(r.Context())
	if err != nil {
		web.Error(w, r, err)
		return
	}
	web.LoggerFrom(r.Context()).InfoContext(r.Context(), "signing keys rotated",
		slog.String("by", p.Subject), slog.String("current", st.Current), slog.String("next", st.Next))
	web.JSON(w, http.StatusOK, st)
}
