package console

import (
	"embed"
	"io/fs"
	"net/http"
)

// assets are the console's page, script and styles, built into the binary:
// the console works with no network at all.
//
//go:embed assets/index.html assets/console.js assets/console.css
var assets embed.FS

// contentSecurity lets the page load nothing but the gateway's own assets
// and talk to nothing but the gateway.
const contentSecurity = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

func secure(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurity)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

// servePage serves the console's page.
func servePage(w http.ResponseWriter, _ *http.Request) {
	page, err := assets.ReadFile("assets/index.html")
	if err != nil { // cannot happen: the page is embedded
		http.Error(w, "the console page is missing from this build", http.StatusInternalServerError)
		return
	}
	secure(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(page)
}

// serveAssets serves /console/console.js and /console/console.css.
func serveAssets() http.Handler {
	sub, _ := fs.Sub(assets, "assets")
	files := http.StripPrefix("/console/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secure(w.Header())
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
