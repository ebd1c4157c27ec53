package auth

import (
	"context"
	"net/http"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/web"
)

type ctxKey struct{}

// Authenticate verifies the bearer token of a request that has one and puts
// its principal in the context. A request with no token goes on anonymous;
// one with a bad token is refused with 401 here.
func Authenticate(v *Verifier) web.Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, present, err := BearerToken(r)
			if err != nil {
				web.Error(w, r, err)
				return
			}
			if !present {
				next.ServeHTTP(w, r)
				return
			}
			p, err := v.Verify(r.Context(), token)
			if err != nil {
				if fail.Is(err, fail.Unauthenticated) {
					w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
				}
				web.Error(w, r, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
		})
	}
}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// PrincipalFrom returns the authenticated principal, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// User returns the authenticated user or fail.Unauthenticated. A service is
// not a user: its principal is refused here, so no user route serves it.
func User(ctx context.Context) (Principal, error) {
	p, ok := PrincipalFrom(ctx)
	if !ok || p.Role == RoleService {
		return Principal{}, fail.New(fail.Unauthenticated, "authentication required")
	}
	return p, nil
}

// Service returns the authenticated service or fail.Unauthenticated.
func Service(ctx context.Context) (Principal, error) {
	p, ok := PrincipalFrom(ctx)
	if !ok || p.Role != RoleService {
		return Principal{}, fail.New(fail.Unauthenticated, "a service token is required")
	}
	return p, nil
}

// Admin returns the authenticated principal if it is an admin:
// fail.Unauthenticated without one, fail.Forbidden for anyone else.
func Admin(ctx context.Context) (Principal, error) {
	p, err := User(ctx)
	if err != nil {
		return p, err
	}
	if !p.IsAdmin() {
		return Principal{}, fail.New(fail.Forbidden, "admin only")
	}
	return p, nil
}
