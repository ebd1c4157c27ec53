package orders

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/microshop/microshop/internal/event"
)

// Step is one step of the checkout saga.
type Step string

// The forward steps run in this order; each that changes another service
// has a compensation that undoes it. Done is the end of every saga.
const (
	StepCharge  Step = "charge"
	StepReserve Step = "reserve"
	StepShip    Step = "ship"
	StepCommit  Step = "commit"
	StepRefund  Step = "refund"
	StepRelease Step = "release"
	StepUnship  Step = "unship"
	StepDone    Step = "done"
)

var forward = []Step{StepCharge, StepReserve, StepShip, StepCommit}

var compensationOf = map[Step]Step{StepCharge: StepRefund, StepReserve: StepRelease, StepShip: StepUnship}

// Saga is the persisted state of one order's checkout. An orchestrated saga
// has a step to run, whether it is undoing what was done, whether it awaits
// a participant's reply, and when to act next. An event-driven saga
// (choreography or parallel) only records what it has seen.
type Saga struct {
	OrderID      string
	Mode         string
	Step         Step
	Compensating bool
	Reason       string // why the saga is compensating; becomes the cancel reason
	Attempts     int    // commands sent for the current step without a reply
	Awaiting     bool   // a command was sent and its reply is due by NextAt
	NextAt       time.Time
	CardToken    string   // the payments service's token for the card; dropped after the charge
	Progress     Progress // what an event-driven saga has seen
	Done         bool
	// TraceParent is the W3C trace context of the request that placed the
	// order: the orchestrator runs each step in a span of that trace, so a
	// checkout is one trace in every saga style.
	TraceParent string
}

// NewSaga returns the saga of a new order, due at once.
func NewSaga(o Order, cardToken string, now time.Time) Saga {
	return Saga{OrderID: o.ID, Mode: o.Saga, Step: StepCharge, NextAt: now, CardToken: cardToken}
}

// Outcome is what happened when a step ran.
type Outcome int

// A step succeeds, is refused for a business reason (a declined card, short
// stock), or fails in a way that may pass (a service unavailable).
const (
	Succeeded Outcome = iota
	Refused
	Failed
)

// Retry policy. Forward steps give up after MaxForwardAttempts and
// compensate; compensations never give up, because an order must end.
const (
	MaxForwardAttempts = 10
	baseBackoff        = 200 * time.Millisecond
	maxBackoff         = 10 * time.Second
)

// Transition is a saga's next state and, when it has ended, the order's
// final status.
type Transition struct {
	Saga  Saga
	Final Status // empty while the saga goes on
}

// Next returns the state after the current step ended with outcome; detail
// says why when it did not succeed.
func (s Saga) Next(outcome Outcome, detail string, now time.Time) Transition {
	switch outcome {
	case Failed:
		// Past the commit there is nothing to gain by undoing the order, and
		// compensations must finish: those steps retry until they succeed.
		givesUp := !s.Compensating && s.Step != StepCommit
		if givesUp && s.Attempts+1 >= MaxForwardAttempts {
			return s.compensate("step "+string(s.Step)+" kept failing: "+detail, now)
		}
		s.Attempts++
		s.NextAt = now.Add(Backoff(s.Attempts))
		return Transition{Saga: s}
	case Refused:
		if !s.Compensating {
			return s.compensate(detail, now)
		}
		// A refused compensation means there was nothing left to undo
		// (or the state is already past undoing, which the audit shows):
		// go on with the rest.
	}
	if s.Step == StepCharge {
		s.CardToken = ""
	}
	s.Attempts = 0
	s.Awaiting = false
	s.NextAt = now
	if s.Compensating {
		s.Step = s.previousCompensation()
		if s.Step == StepDone {
			return Transition{Saga: s, Final: Cancelled}
		}
		return Transition{Saga: s}
	}
	for i, st := range forward {
		if st == s.Step {
			if i+1 == len(forward) {
				s.Step = StepDone
				return Transition{Saga: s, Final: Completed}
			}
			s.Step = forward[i+1]
			break
		}
	}
	return Transition{Saga: s}
}

// compensate turns the saga around at its current step: the current step is
// undone first (it may have taken effect before failing; every compensation
// is harmless when there is nothing to undo), then the earlier ones.
func (s Saga) compensate(reason string, now time.Time) Transition {
	s.Compensating = true
	s.Reason = reason
	s.Attempts = 0
	s.Awaiting = false
	s.NextAt = now
	s.CardToken = ""
	if c, ok := compensationOf[s.Step]; ok {
		s.Step = c
		return Transition{Saga: s}
	}
	s.Step = s.previousCompensation()
	if s.Step == StepDone {
		return Transition{Saga: s, Final: Cancelled}
	}
	return Transition{Saga: s}
}

// previousCompensation is the compensation of the latest forward step before
// the one the current step undoes, or StepDone.
func (s Saga) previousCompensation() Step {
	at := len(forward) // a forward step with no compensation (commit) undoes from the end
	for i, st := range forward {
		if st == s.Step || compensationOf[st] == s.Step {
			at = i
			break
		}
	}
	for i := at - 1; i >= 0; i-- {
		if c, ok := compensationOf[forward[i]]; ok {
			return c
		}
	}
	return StepDone
}

// Backoff is the capped, jittered exponential delay before attempt n+1.
func Backoff(n int) time.Duration {
	d := baseBackoff << min(n, 10)
	d = min(d, maxBackoff)
	return d/2 + rand.N(d/2+1)
}

// StepRecord is one entry of a saga's history, for people to read.
type StepRecord struct {
	OrderID string    `json:"-"`
	Step    Step      `json:"step"`
	Result  string    `json:"result"` // sent, ok, refused, failed, seen
	Detail  string    `json:"detail,omitempty"`
	At      time.Time `json:"at"`
}

// Guard says when a saga may be changed: by the runner holding its lease
// (Owner), or, for a reply, only if it is still in the state the reply was
// matched against (Expect).
type Guard struct {
	Owner  string
	Expect *Saga
}

// SagaStore keeps saga state. A saga's commands are sent by one runner at a
// time, the one holding its lease; leases expire, so a crashed runner's
// sagas are taken over.
type SagaStore interface {
	// ClaimSagas leases up to limit unfinished orchestrated sagas that are
	// due and not leased by another owner.
	ClaimSagas(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Saga, error)
	// Saga reads the saga of an order; fail.NotFound if none.
	Saga(ctx context.Context, orderID string) (Saga, error)
	// Advance stores a saga's transition, its history records and the
	// events to publish, and ends the order when the transition is final,
	// in one transaction; it releases any lease. fail.Conflict if the guard
	// no longer holds.
	Advance(ctx context.Context, g Guard, t Transition, recs []StepRecord, events []event.Event) error
	// History lists a saga's steps in order.
	History(ctx context.Context, orderID string) ([]StepRecord, error)
}
