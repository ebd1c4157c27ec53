// Package fault injects faults into a running service on an admin's
// request: latency and errors on every request, or the whole instance down
// as if its process had died, so that the shop's breakers, retries and
// sagas can be watched and tested against real failures.
package fault

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/internal/fail"
)

// MaxLatency bounds the latency that can be added: the services' servers
// give up writing an answer after 30 s, so a longer delay would not be
// latency but an answer cut off, which Down already simulates.
const MaxLatency = 30 * time.Second

// Settings are the faults injected into one instance. The zero value
// injects none, so a PUT of {} clears every fault.
type Settings struct {
	// LatencyMS is added to every request before it is served.
	LatencyMS int `json:"latency_ms"`
	// LatencyJitterMS adds up to this much more, uniformly at random.
	LatencyJitterMS int `json:"latency_jitter_ms"`
	// ErrorRate is the fraction of requests answered 503 at once, 0 to 1.
	ErrorRate float64 `json:"error_rate"`
	// Down stops the instance as if its process had died: connections are
	// reset unanswered, heartbeats and consumers stop.
	Down bool `json:"down"`
}

// Validate reports settings out of range as fail.Invalid, naming each.
func (s Settings) Validate() error {
	var problems []string
	if s.LatencyMS < 0 {
		problems = append(problems, "latency_ms must not be negative")
	}
	if s.LatencyJitterMS < 0 {
		problems = append(problems, "latency_jitter_ms must not be negative")
	}
	if limit := int(MaxLatency.Milliseconds()); s.LatencyMS > limit || s.LatencyJitterMS > limit-max(s.LatencyMS, 0) {
		problems = append(problems, fmt.Sprintf("latency_ms + latency_jitter_ms must be at most %d", limit))
	}
	if !(s.ErrorRate >= 0 && s.ErrorRate <= 1) { // also refuses NaN
		problems = append(problems, "error_rate must be between 0 and 1")
	}
	if len(problems) > 0 {
		return fail.New(fail.Invalid, "%s", strings.Join(problems, "; "))
	}
	return nil
}

// delay is the latency to add to one request.
func (s Settings) delay() time.Duration {
	ms := s.LatencyMS
	if s.LatencyJitterMS > 0 {
		ms += rand.IntN(s.LatencyJitterMS + 1)
	}
	return time.Duration(ms) * time.Millisecond
}

// Expect says, in one line per fault, what a client of the instance will
// notice; the console shows it beside each switch.
type Expect struct {
	Latency   string `json:"latency"`
	ErrorRate string `json:"error_rate"`
	Down      string `json:"down"`
}

// Expect describes the effect of s.
func (s Settings) Expect() Expect {
	var e Expect
	switch {
	case s.LatencyMS == 0 && s.LatencyJitterMS == 0:
		e.Latency = "no latency added"
	case s.LatencyJitterMS == 0:
		e.Latency = fmt.Sprintf("every request waits %d ms before it is served", s.LatencyMS)
	default:
		e.Latency = fmt.Sprintf("every request waits %d to %d ms before it is served", s.LatencyMS, s.LatencyMS+s.LatencyJitterMS)
	}
	switch {
	case s.ErrorRate == 0:
		e.ErrorRate = "no errors injected"
	case s.ErrorRate == 1:
		e.ErrorRate = "every request is answered 503 at once"
	default:
		e.ErrorRate = fmt.Sprintf("about %.4g%% of requests are answered 503 at once", s.ErrorRate*100)
	}
	if s.Down {
		e.Down = "down: connections are reset unanswered, requests in flight are cut, consumers stop taking events " +
			"(the broker keeps them) and heartbeats stop, so the registry drops the instance once its TTL passes"
	} else {
		e.Down = "up: serving, consuming and heartbeating"
	}
	return e
}

// State is an instance's faults as the admin API answers them.
type State struct {
	Service string `json:"service"`
	Settings
	Expect Expect `json:"expect"`
}

// Injector holds the faults of one service instance and applies them: its
// Gate and Middleware wrap the instance's handler, its Listener wraps the
// instance's listener, its Subscriber pauses the instance's consumers, and
// the host that runs the instance learns through OnSwitch when to stop and
// start its other background work.
type Injector struct {
	service  string
	settings atomic.Pointer[Settings] // read on every request

	mu       sync.Mutex // serializes changes, and the switch with them
	onSwitch func(down bool)
	up       chan struct{} // closed while the instance is up
	down     chan struct{} // closed while the instance is down

	conns conns

	delayed prometheus.Counter
	errors  prometheus.Counter
	resets  prometheus.Counter
	downG   prometheus.GaugeFunc
}

// New returns an injector for an instance of service, with no faults.
func New(service string) *Injector {
	in := &Injector{service: service, up: make(chan struct{}), down: make(chan struct{})}
	close(in.up)
	in.settings.Store(&Settings{})
	labels := prometheus.Labels{"service": service}
	in.delayed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "microshop_fault_delayed_requests_total", Help: "Requests delayed by injected latency.", ConstLabels: labels,
	})
	in.errors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "microshop_fault_injected_errors_total", Help: "Requests answered 503 by the injected error rate.", ConstLabels: labels,
	})
	in.resets = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "microshop_fault_reset_connections_total", Help: "Connections reset because the instance was down.", ConstLabels: labels,
	})
	in.downG = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "microshop_fault_down", Help: "1 while the instance is taken down by fault injection.", ConstLabels: labels,
	}, func() float64 {
		if in.Down() {
			return 1
		}
		return 0
	})
	return in
}

// Service is the name of the service the injector belongs to.
func (in *Injector) Service() string { return in.service }

// Collectors returns the injector's metrics, for the service's registry.
func (in *Injector) Collectors() []prometheus.Collector {
	return []prometheus.Collector{in.delayed, in.errors, in.resets, in.downG}
}

// Settings returns the faults in force.
func (in *Injector) Settings() Settings { return *in.settings.Load() }

// State returns the faults in force with what to expect of them.
func (in *Injector) State() State { return in.state(in.Settings()) }

func (in *Injector) state(s Settings) State {
	return State{Service: in.service, Settings: s, Expect: s.Expect()}
}

// Down reports whether the instance is taken down.
func (in *Injector) Down() bool { return in.settings.Load().Down }

// Up returns a channel that is closed while the instance is up: a host
// waits on it to resume what stops while the instance is down.
func (in *Injector) Up() <-chan struct{} {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.up
}

// wentDown returns a channel that is closed while the instance is down.
func (in *Injector) wentDown() <-chan struct{} {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.down
}

// OnSwitch sets f to be called when the instance goes down (true) or comes
// back up (false); nil removes it. f runs before Set returns, so that when
// an admin is told the instance is down its work has stopped. It runs after
// the instance's connections are cut when it goes down, and before they are
// served again when it comes up, the order in which a process dies and
// starts.
func (in *Injector) OnSwitch(f func(down bool)) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.onSwitch = f
}

// Set puts s in force, replacing every fault, and returns the new state.
// Settings out of range are fail.Invalid and change nothing.
func (in *Injector) Set(s Settings) (State, error) { return in.set(s, "") }

// set is Set, sparing the connection from spare (a remote address) when the
// instance goes down: the one carrying the admin's request, which must get
// its answer.
func (in *Injector) set(s Settings, spare string) (State, error) {
	if err := s.Validate(); err != nil {
		return State{}, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	was := in.settings.Load().Down
	switch {
	case s.Down && !was:
		// From this store on, the gate resets every new request; then the
		// connections already open are cut, and the host stops its work.
		in.settings.Store(&s)
		in.up = make(chan struct{})
		close(in.down)
		in.resets.Add(float64(in.conns.cut(spare)))
		if in.onSwitch != nil {
			in.onSwitch(true)
		}
	case !s.Down && was:
		// The work starts again before requests are served, as when the
		// process starts.
		if in.onSwitch != nil {
			in.onSwitch(false)
		}
		in.settings.Store(&s)
		in.down = make(chan struct{})
		close(in.up)
	default:
		in.settings.Store(&s)
	}
	return in.state(s), nil
}
