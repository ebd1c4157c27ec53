package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// maxAnswerBytes bounds how much of an answer is read: the shop's largest
// answer a shopper asks for (the catalog) is far smaller.
const maxAnswerBytes = 4 << 20

// userAgent tells the shop's logs and traces which traffic is synthetic.
const userAgent = "microshop-load/1"

// errBadAnswer is a 2xx answer whose body is not what the API promises.
var errBadAnswer = errors.New("answer not as documented")

// statusError is an answer other than the 2xx a request expected.
type statusError struct {
	method, path string
	status       int
	body         string // the start of the answer, for a person to read
}

// Error implements error.
func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, e.body)
}

// request is one call to the shop.
type request struct {
	op     string // the latency series it counts in, e.g. "place_order"
	method string
	path   string
	token  string
	body   any
	header http.Header
}

// answer is what came back from a call that was answered.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// do sends r, counts it and times it under r.op, and decodes a 2xx answer's
// JSON into out (when not nil). Any other answer is a *statusError; a
// request that got no answer returns the client's error.
func (g *Generator) do(ctx context.Context, r request, out any) (answer, error) {
	a, err := g.send(ctx, r)
	if err != nil {
		g.stats.answered(0, err)
		return a, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	if a.status < 200 || a.status > 299 {
		g.stats.answered(a.status, nil)
		return a, &statusError{method: r.method, path: r.path, status: a.status, body: string(a.body[:min(len(a.body), 200)])}
	}
	if out != nil {
		if err := json.Unmarshal(a.body, out); err != nil {
			err = fmt.Errorf("%s %s: %w: %v", r.method, r.path, errBadAnswer, err)
			g.stats.answered(a.status, err)
			return a, err
		}
	}
	g.stats.answered(a.status, nil)
	return a, nil
}

// send makes the HTTP exchange and times it; the latency counts answered
// requests only, whatever their status, since an unanswered one has none.
func (g *Generator) send(ctx context.Context, r request) (answer, error) {
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return answer{}, fmt.Errorf("encoding the body: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, g.target+r.path, body)
	if err != nil {
		return answer{}, err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	began := time.Now()
	resp, err := g.hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return answer{}, fmt.Errorf("reading the answer: %w", err)
	}
	g.latency.record(r.op, time.Since(began))
	return answer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}
