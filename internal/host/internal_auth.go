package host

import (
	"net/http"
	"path"
	"strings"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/web"
)

// internalPrefixes are the paths only services may call: the saga's
// endpoints under /internal/, and the registry's own API under /v1/, which
// services register and resolve through. Public paths start with /api/, and
// the gateway routes none of these.
var internalPrefixes = []string{"/internal/", "/v1/"}

// InternalPath reports whether p is a path only services may call. A caller
// uses it to know when to present its service token, the guard to know
// when to ask for one.
func InternalPath(p string) bool {
	clean := path.Clean("/" + p)
	for _, prefix := range internalPrefixes {
		if strings.HasPrefix(clean+"/", prefix) {
			return true
		}
	}
	return false
}

// ServiceOnly refuses with 401 every request to an internal path that does
// not carry a service token v accepts: no token, a user's access token and a
// forged one alike. A request that passes goes on with the calling service
// as its principal and without its Authorization header, so that the user
// token check after it has nothing to refuse. Other paths pass untouched:
// there a service token is refused by the user token check, as it is no
// user's. With a nil v, internal paths are not guarded (tests of one
// service's routes); the shop always sets one.
func ServiceOnly(v *auth.ServiceVerifier) web.Middleware {
	return ServiceOnlyOn(v, InternalPath)
}

// ServiceOnlyOn is ServiceOnly on the paths guarded says are internal: the
// gateway routes no internal path to a service, and takes service tokens on
// its own one alone (where services send the console their spans).
func ServiceOnlyOn(v *auth.ServiceVerifier, guarded func(path string) bool) web.Middleware {
	return func(next http.Handler) http.Handler {
		if v == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !guarded(path.Clean("/" + r.URL.Path)) {
				next.ServeHTTP(w, r)
				return
			}
			token, present, err := auth.BearerToken(r)
			if err == nil && !present {
				err = fail.New(fail.Unauthenticated, "internal endpoints answer services only: a service token is required")
			}
			var p auth.Principal
			if err == nil {
				p, err = v.Verify(r.Context(), token)
			}
			if err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="microshop-internal"`)
				web.Error(w, r, err)
				return
			}
			r = r.WithContext(auth.WithPrincipal(r.Context(), p))
			r.Header = r.Header.Clone()
			r.Header.Del("Authorization")
			next.ServeHTTP(w, r)
		})
	}
}
