package gateway

import (
	_ "embed"
	"net/http"
)

//go:embed home.html
var homePage []byte

// serveHome serves the shop's front page: what is running and where to go
// next. It is a static page that asks the gateway's own APIs for the rest.
func serveHome(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'")
	w.Header().Set("X-Frame-Options", "DENY")
	_, _ = w.Write(homePage)
}
