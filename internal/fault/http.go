package fault

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/web"
)

// Gate is the outermost middleware of an instance: while the instance is
// down it resets the connection of every request but the admin's fault
// route, unanswered, as a peer sees a process die. The fault route stays
// served so that an admin can bring the instance back up on the same
// address; nothing else, not even /healthz, answers.
func (in *Injector) Gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if in.Down() && !IsControl(r) {
			in.resets.Inc()
			resetRequest(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Middleware adds the injected latency to every request, then answers the
// injected fraction of them 503 at once. The fault route itself is spared,
// so that an admin can always undo a fault. It belongs after the metrics
// and access logs, which then count what clients see.
func (in *Injector) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsControl(r) {
			next.ServeHTTP(w, r)
			return
		}
		s := in.Settings()
		if d := s.delay(); d > 0 {
			in.delayed.Inc()
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done(): // the client gave up: nobody to answer
				t.Stop()
				return
			}
		}
		if s.ErrorRate > 0 && rand.Float64() < s.ErrorRate {
			in.errors.Inc()
			web.WriteProblem(w, r, http.StatusServiceUnavailable,
				fmt.Sprintf("%s failed on purpose: an admin injected an error rate of %g", in.service, s.ErrorRate))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// IsControl reports whether r is for the admin fault route, which every
// fault spares.
func IsControl(r *http.Request) bool { return r.URL.Path == Path }

// resetRequest drops the request's connection with a TCP reset, so the
// client gets no answer at all.
func resetRequest(w http.ResponseWriter) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// No connection of our own to reset (HTTP/2, a recorder): abort
		// the answer, which the server turns into a dropped stream.
		panic(http.ErrAbortHandler)
	}
	reset(c)
}

// reset closes c with an RST rather than a FIN, so that the peer sees the
// connection die instead of end.
func reset(c net.Conn) {
	raw := c
	if tc, ok := c.(*conn); ok {
		raw = tc.Conn
	}
	if l, ok := raw.(interface{ SetLinger(sec int) error }); ok {
		_ = l.SetLinger(0)
	}
	_ = c.Close()
}

// Listener wraps ln so that the injector knows the instance's open
// connections and can cut them all when the instance goes down.
func (in *Injector) Listener(ln net.Listener) net.Listener {
	return &listener{Listener: ln, conns: &in.conns}
}

type listener struct {
	net.Listener
	conns *conns
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.conns.add(c), nil
}

// conns is the set of an instance's open connections.
type conns struct {
	mu   sync.Mutex
	open map[*conn]struct{}
}

// conn is a connection that leaves its set when closed.
type conn struct {
	net.Conn
	set  *conns
	once sync.Once
}

func (c *conn) Close() error {
	c.once.Do(func() { c.set.remove(c) })
	return c.Conn.Close()
}

func (cs *conns) add(c net.Conn) *conn {
	tc := &conn{Conn: c, set: cs}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.open == nil {
		cs.open = map[*conn]struct{}{}
	}
	cs.open[tc] = struct{}{}
	return tc
}

func (cs *conns) remove(c *conn) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.open, c)
}

// cut resets every open connection except the one from the remote address
// spare, and says how many it reset. Requests in flight on them are cut:
// their handlers see their context end, and their clients no answer.
func (cs *conns) cut(spare string) int {
	cs.mu.Lock()
	var victims []*conn
	for c := range cs.open {
		if spare == "" || c.RemoteAddr().String() != spare {
			victims = append(victims, c)
		}
	}
	cs.mu.Unlock()
	for _, c := range victims {
		reset(c)
	}
	return len(victims)
}
