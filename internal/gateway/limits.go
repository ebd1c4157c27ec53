package gateway

import (
	"bytes"
	"container/list"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/microshop/microshop/internal/auth"
	"github.com/microshop/microshop/internal/fail"
	"github.com/microshop/microshop/internal/web"
)

// LimitOptions configure the limits every request meets at the gateway
// before it reaches a service.
type LimitOptions struct {
	// RPS and Burst size each client's token bucket: Burst requests at once,
	// refilled at RPS a second.
	RPS   float64
	Burst int
	// MaxBody is the largest request body forwarded, in bytes; 0 means
	// web.MaxBodyBytes, the most any service decodes anyway.
	MaxBody int64
	// MaxClients bounds how many clients' buckets are kept; 0 means 10 000.
	// Past it the least recently seen client's bucket is dropped.
	MaxClients int
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time
}

// Limits holds the gateway's per-client token buckets and applies its
// request limits.
type Limits struct {
	rps        rate.Limit
	burst      int
	maxBody    int64
	maxClients int
	now        func() time.Time
	// idle is how long a bucket must go unused to be full again; a full
	// bucket is the same as a new one, so dropping it loses nothing.
	idle time.Duration

	mu      sync.Mutex
	clients map[string]*list.Element // of *bucket
	lru     list.List                // most recently seen at the front
}

type bucket struct {
	client string
	lim    *rate.Limiter
	seen   time.Time
}

// NewLimits returns the limits opt describe. RPS and Burst must be positive
// (configuration validates them).
func NewLimits(opt LimitOptions) *Limits {
	l := &Limits{
		rps:        rate.Limit(opt.RPS),
		burst:      max(opt.Burst, 1),
		maxBody:    opt.MaxBody,
		maxClients: opt.MaxClients,
		now:        opt.Now,
		clients:    map[string]*list.Element{},
	}
	if l.maxBody <= 0 {
		l.maxBody = web.MaxBodyBytes
	}
	if l.maxClients <= 0 {
		l.maxClients = 10_000
	}
	if l.now == nil {
		l.now = time.Now
	}
	if opt.RPS > 0 {
		l.idle = time.Duration(float64(l.burst) / opt.RPS * float64(time.Second))
	}
	return l
}

// Limit puts routes behind the gateway's limits. It returns a new mux, so
// that the host can add its ops endpoints (health, readiness, metrics) beside
// the limited routes: a probe is never refused for a client's excess. The
// request reaches routes unchanged (the same *http.Request), so the inner
// mux's route pattern is the one metrics see.
func Limit(routes *http.ServeMux, l *Limits) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/", l.Middleware(routes))
	return mux
}

// Middleware refuses, in this order: a client over its rate (429 with
// Retry-After), a body that is not JSON on a write (415), and a body larger
// than the limit (413), read no further than the limit and never forwarded.
// It must run after authentication, since an authenticated client is counted
// by its token's subject, wherever it connects from.
func (l *Limits) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wait, ok := l.Allow(clientOf(r)); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			web.Error(w, r, fail.New(fail.TooMany, "too many requests; retry after %s", wait.Round(time.Second)))
			return
		}
		if err := l.checkBody(r); err != nil {
			if fail.Is(err, fail.TooLarge) {
				// The rest of the body is never read: the connection
				// cannot be reused.
				w.Header().Set("Connection", "close")
			}
			web.Error(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// clientOf names who a request is counted against: the token's subject when
// the request is authenticated, else the address it came from. A client's
// own X-Forwarded-For is not believed: anyone could name a fresh address
// with each request.
func clientOf(r *http.Request) string {
	if p, ok := auth.PrincipalFrom(r.Context()); ok && p.Subject != "" {
		return "sub:" + p.Subject
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "ip:" + host
}

// Allow takes one token from client's bucket. When there is none it reports
// false and how long until there will be, at least a second (Retry-After
// counts whole seconds).
func (l *Limits) Allow(client string) (wait time.Duration, ok bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(client, now)
	if b.lim.AllowN(now, 1) {
		return 0, true
	}
	missing := 1 - b.lim.TokensAt(now)
	wait = time.Duration(missing / float64(l.rps) * float64(time.Second))
	return max(wait, time.Second), false
}

// bucket returns client's bucket, made on first sight, and drops buckets
// that have been idle long enough to be full, then the least recently seen
// while there are more than maxClients. l.mu is held.
func (l *Limits) bucket(client string, now time.Time) *bucket {
	if e, ok := l.clients[client]; ok {
		b := e.Value.(*bucket)
		b.seen = now
		l.lru.MoveToFront(e)
		return b
	}
	for e := l.lru.Back(); e != nil; e = l.lru.Back() {
		old := e.Value.(*bucket)
		if l.lru.Len() < l.maxClients && now.Sub(old.seen) < l.idle {
			break
		}
		l.lru.Remove(e)
		delete(l.clients, old.client)
	}
	b := &bucket{client: client, lim: rate.NewLimiter(l.rps, l.burst), seen: now}
	l.clients[client] = l.lru.PushFront(b)
	return b
}

// Clients is how many clients' buckets are kept now.
func (l *Limits) Clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// checkBody refuses a write whose body is not JSON, or is larger than
// maxBody. A body of unknown length (chunked) is read into memory up to the
// limit and no further, so that it is refused before any of it is forwarded.
func (l *Limits) checkBody(r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return fail.New(fail.Unsupported, "content type must be application/json")
		}
	}
	if r.ContentLength > l.maxBody {
		return fail.New(fail.TooLarge, "body larger than %d bytes", l.maxBody)
	}
	if r.ContentLength > 0 {
		// The server never reads past a declared length.
		return nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, l.maxBody+1))
	if err != nil {
		return fail.Wrap(fail.Malformed, err, "reading the body")
	}
	if int64(len(buf)) > l.maxBody {
		return fail.New(fail.TooLarge, "body larger than %d bytes", l.maxBody)
	}
	// Forwarded with its length now known.
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.ContentLength = int64(len(buf))
	r.TransferEncoding = nil
	if len(buf) == 0 {
		r.Body = http.NoBody
	}
	return nil
}
