// Package upstream is how one microshop service calls another over HTTP: the
// callee is found by name through the registry, the call carries the
// caller's request id and a deadline, and an error answer comes back as the
// same kind of error it was on the other side.
package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/web"
)

// Resolver finds the address of a healthy instance of a service.
type Resolver interface {
	Resolve(ctx context.Context, service string) (string, error)
	Forget(service string)
}

// DefaultTimeout bounds a call whose context has no deadline of its own.
const DefaultTimeout = 5 * time.Second

// maxResponseBytes bounds what is read from another service's answer.
const maxResponseBytes = 4 << 20

// Client calls other services.
type Client struct {
	resolver Resolver
	hc       *http.Client
	caller   string
}

// New returns a client for the service named caller.
func New(caller string, resolver Resolver) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	tr.IdleConnTimeout = 30 * time.Second
	return &Client{resolver: resolver, hc: &http.Client{Transport: tr}, caller: caller}
}

// Call is one request to another service.
type Call struct {
	Service string // the callee, by registry name
	Method  string
	Path    string // with query
	Body    any    // sent as JSON when not nil
	Out     any    // a 2xx answer is decoded into it when not nil
	Token   string // bearer token to send, if any
	Header  http.Header
}

// Do performs c. A 4xx or 5xx answer becomes an error of the kind its status
// maps to, with the callee's problem detail as the message; an unreachable
// callee is fail.Unavailable.
func (cl *Client) Do(ctx context.Context, c Call) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	addr, err := cl.resolver.Resolve(ctx, c.Service)
	if err != nil {
		return err
	}
	var body io.Reader
	if c.Body != nil {
		b, err := json.Marshal(c.Body)
		if err != nil {
			return fmt.Errorf("encoding request to %s: %w", c.Service, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, "http://"+addr+c.Path, body)
	if err != nil {
		return fmt.Errorf("building request to %s: %w", c.Service, err)
	}
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	if c.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "microshop-"+cl.caller)
	if id := web.RequestIDFrom(ctx); id != "" {
		req.Header.Set(web.RequestIDHeader, id)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := cl.hc.Do(req)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			cl.resolver.Forget(c.Service)
		}
		return fail.Wrap(fail.Unavailable, err, "%s unavailable", c.Service)
	}
	defer resp.Body.Close()
	lr := io.LimitReader(resp.Body, maxResponseBytes)
	if resp.StatusCode >= 400 {
		var p web.Problem
		_ = json.NewDecoder(lr).Decode(&p)
		kind := web.KindOfStatus(resp.StatusCode)
		if p.Detail == "" {
			p.Detail = fmt.Sprintf("%s answered %s", c.Service, resp.Status)
		}
		return &fail.Error{Kind: kind, Message: p.Detail, Err: &StatusError{Service: c.Service, Status: resp.StatusCode}}
	}
	if c.Out != nil {
		if err := json.NewDecoder(lr).Decode(c.Out); err != nil {
			return fmt.Errorf("decoding answer of %s: %w", c.Service, err)
		}
	}
	_, _ = io.Copy(io.Discard, lr)
	return nil
}

// StatusError records the status another service answered with.
type StatusError struct {
	Service string
	Status  int
}

func (e *StatusError) Error() string { return fmt.Sprintf("%s answered %d", e.Service, e.Status) }
