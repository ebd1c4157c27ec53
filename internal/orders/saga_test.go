package orders

import (
	"testing"
	"time"
)

// TestSagaPaths walks the saga through every path a checkout can take and
// checks the steps it runs and how it ends.
func TestSagaPaths(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type event struct {
		outcome Outcome
		detail  string
	}
	ok := event{Succeeded, ""}
	tests := []struct {
		name      string
		events    []event
		wantSteps []Step
		wantFinal Status
		wantWhy   string
	}{
		{"happy path", []event{ok, ok, ok, ok},
			[]Step{StepCharge, StepReserve, StepShip, StepCommit}, Completed, ""},
		{"card declined: refund is a no-op, then cancel", []event{{Refused, "payment declined"}, ok},
			[]Step{StepCharge, StepRefund}, Cancelled, "payment declined"},
		{"short stock: release then refund", []event{ok, {Refused, "insufficient stock"}, ok, ok},
			[]Step{StepCharge, StepReserve, StepRelease, StepRefund}, Cancelled, "insufficient stock"},
		{"shipping refused: unship, release, refund", []event{ok, ok, {Refused, "bad address"}, ok, ok, ok},
			[]Step{StepCharge, StepReserve, StepShip, StepUnship, StepRelease, StepRefund}, Cancelled, "bad address"},
		{"commit refused: undo everything", []event{ok, ok, ok, {Refused, "released"}, ok, ok, ok},
			[]Step{StepCharge, StepReserve, StepShip, StepCommit, StepUnship, StepRelease, StepRefund}, Cancelled, "released"},
		{"transient failures are retried in place", []event{{Failed, "503"}, {Failed, "503"}, ok, ok, ok, ok},
			[]Step{StepCharge, StepCharge, StepCharge, StepReserve, StepShip, StepCommit}, Completed, ""},
		{"a refused compensation moves on", []event{ok, {Refused, "short"}, {Refused, "nothing held"}, ok},
			[]Step{StepCharge, StepReserve, StepRelease, StepRefund}, Cancelled, "short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSaga(Order{ID: "o1"}, "4242424242424242", now)
			var steps []Step
			var final Status
			for i, e := range tt.events {
				if final != "" {
					t.Fatalf("saga ended before event %d", i)
				}
				steps = append(steps, s.Step)
				tr := s.Next(e.outcome, e.detail, now)
				s, final = tr.Saga, tr.Final
			}
			if !equal(steps, tt.wantSteps) {
				t.Errorf("steps = %v, want %v", steps, tt.wantSteps)
			}
			if final != tt.wantFinal {
				t.Errorf("final = %q, want %q", final, tt.wantFinal)
			}
			if final == Cancelled && s.Reason != tt.wantWhy {
				t.Errorf("reason = %q, want %q", s.Reason, tt.wantWhy)
			}
			if s.CardToken != "" {
				t.Errorf("card token still held after the saga: %q", s.CardToken)
			}
		})
	}
}

func TestForwardStepGivesUpAfterMaxAttempts(t *testing.T) {
	now := time.Now()
	s := NewSaga(Order{ID: "o1"}, "4242424242424242", now)
	s = s.Next(Succeeded, "", now).Saga // at reserve
	for i := 1; i < MaxForwardAttempts; i++ {
		tr := s.Next(Failed, "inventory unavailable", now)
		if tr.Saga.Step != StepReserve || tr.Saga.Attempts != i {
			t.Fatalf("after %d failures: step %s attempts %d, want reserve %d", i, tr.Saga.Step, tr.Saga.Attempts, i)
		}
		if !tr.Saga.NextAt.After(now) {
			t.Fatalf("retry %d is not delayed", i)
		}
		s = tr.Saga
	}
	tr := s.Next(Failed, "inventory unavailable", now)
	if !tr.Saga.Compensating || tr.Saga.Step != StepRelease {
		t.Fatalf("after %d failures: step %s compensating %v, want release while compensating", MaxForwardAttempts, tr.Saga.Step, tr.Saga.Compensating)
	}
}

func TestCommitAndCompensationsNeverGiveUp(t *testing.T) {
	now := time.Now()
	for _, s := range []Saga{
		{OrderID: "o1", Step: StepCommit},
		{OrderID: "o1", Step: StepRefund, Compensating: true},
	} {
		for i := range 3 * MaxForwardAttempts {
			tr := s.Next(Failed, "unavailable", now)
			if tr.Saga.Step != s.Step || tr.Final != "" {
				t.Fatalf("%s gave up after %d failures: now at %s", s.Step, i+1, tr.Saga.Step)
			}
			s = tr.Saga
		}
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	seen := map[time.Duration]bool{}
	for n := range 40 {
		d := Backoff(n)
		if d <= 0 || d > maxBackoff {
			t.Fatalf("Backoff(%d) = %v, want within (0, %v]", n, d, maxBackoff)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("backoff shows %d distinct delays in 40 draws; want jitter", len(seen))
	}
}

func equal(a, b []Step) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
