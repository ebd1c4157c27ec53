package web

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/microshop/microshop/internal/fail"
)

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// ProblemContentType is the media type of problem details.
const ProblemContentType = "application/problem+json"

// StatusOf maps a failure kind to its HTTP status. It is the one place where
// that mapping lives; KindOfStatus is its inverse for clients.
func StatusOf(k fail.Kind) int {
	switch k {
	case fail.Invalid:
		return http.StatusUnprocessableEntity
	case fail.Malformed:
		return http.StatusBadRequest
	case fail.NotFound:
		return http.StatusNotFound
	case fail.Conflict:
		return http.StatusConflict
	case fail.Unauthenticated:
		return http.StatusUnauthorized
	case fail.Forbidden:
		return http.StatusForbidden
	case fail.Unavailable:
		return http.StatusServiceUnavailable
	case fail.TooLarge:
		return http.StatusRequestEntityTooLarge
	case fail.Unsupported:
		return http.StatusUnsupportedMediaType
	case fail.TooMany:
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}

// KindOfStatus maps an HTTP status from another service back to a failure kind.
func KindOfStatus(status int) fail.Kind {
	switch status {
	case http.StatusUnprocessableEntity:
		return fail.Invalid
	case http.StatusBadRequest:
		return fail.Malformed
	case http.StatusNotFound:
		return fail.NotFound
	case http.StatusConflict:
		return fail.Conflict
	case http.StatusUnauthorized:
		return fail.Unauthenticated
	case http.StatusForbidden:
		return fail.Forbidden
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return fail.Unavailable
	case http.StatusRequestEntityTooLarge:
		return fail.TooLarge
	case http.StatusUnsupportedMediaType:
		return fail.Unsupported
	case http.StatusTooManyRequests:
		return fail.TooMany
	default:
		return fail.Internal
	}
}

// Error answers err as problem details with the status its kind maps to.
// Internal errors are logged with their cause and answered with a generic
// message, so no detail of the implementation reaches the client.
func Error(w http.ResponseWriter, r *http.Request, err error) {
	kind := fail.KindOf(err)
	status := StatusOf(kind)
	if status >= 500 {
		LoggerFrom(r.Context()).ErrorContext(r.Context(), "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
	}
	WriteProblem(w, r, status, fail.MessageOf(err))
}

// WriteProblem answers with a problem of the given status and detail.
func WriteProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	p := Problem{
		Type:      "about:blank",
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		Instance:  r.URL.Path,
		RequestID: w.Header().Get(RequestIDHeader),
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", strconv.Itoa(1))
		}
	}
	w.Header().Set("Content-Type", ProblemContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// JSON answers v as JSON with the given status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
