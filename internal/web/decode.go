package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/microshop/microshop/internal/fail"
)

// MaxBodyBytes bounds every JSON request body.
const MaxBodyBytes = 1 << 20

// Decode reads r's body as one JSON value into dst. It refuses a body that is
// not JSON (415), larger than MaxBodyBytes (413), malformed, carrying unknown
// fields (exactly: a field named in another case is unknown), a field twice
// in one object, or trailing data (400), each with a message that says
// which. What it accepts, any other JSON parser reads the same way.
func Decode(w http.ResponseWriter, r *http.Request, dst any) error {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return fail.New(fail.Unsupported, "content type must be application/json")
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return decodeError(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fail.New(fail.Malformed, "body must hold a single JSON value")
	}
	return checkKeys(data, reflect.TypeOf(dst))
}

func decodeError(err error) error {
	var (
		syntax   *json.SyntaxError
		typeErr  *json.UnmarshalTypeError
		tooLarge *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooLarge):
		return fail.New(fail.TooLarge, "body larger than %d bytes", tooLarge.Limit)
	case errors.Is(err, io.EOF):
		return fail.New(fail.Malformed, "body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fail.New(fail.Malformed, "body is truncated JSON")
	case errors.As(err, &syntax):
		return fail.New(fail.Malformed, "malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typeErr):
		if typeErr.Field != "" {
			return fail.New(fail.Malformed, "field %q must be a %s", typeErr.Field, typeErr.Type)
		}
		return fail.New(fail.Malformed, "body must be a JSON %s", typeErr.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fail.New(fail.Malformed, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return fail.New(fail.Malformed, "malformed JSON")
	}
}
