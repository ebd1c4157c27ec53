package orders

import (
	"context"

	"github.com/microshop/microshop/internal/event"
	"github.com/microshop/microshop/internal/fail"
)

// Observe applies a participant's event to the order's saga. For an
// orchestrated saga it is the reply to the command in flight, or a stale or
// repeated reply, which changes nothing. For an event-driven saga it adds
// to what the saga has seen and ends the order once that decides it. The
// caller runs Observe in the transaction that records the event as
// consumed, so an event is applied at most once.
func (s *Service) Observe(ctx context.Context, obs Observation) error {
	sg, err := s.store.Saga(ctx, obs.OrderID)
	if fail.Is(err, fail.NotFound) {
		return nil // about an order this service never had: nothing to do
	}
	if err != nil || sg.Done {
		return err
	}
	now := s.now()
	rec := StepRecord{OrderID: sg.OrderID, At: now.UTC(), Detail: obs.Reason}
	var t Transition
	if sg.Mode == ModeOrchestration {
		reply, ok := replyTo[obs.Kind]
		if !ok || !sg.Awaiting || reply.step != sg.Step {
			return nil // not the reply the saga waits for: a repeat or a late one
		}
		t = sg.Next(reply.outcome, obs.Reason, now)
		rec.Step, rec.Result = sg.Step, [...]string{"ok", "refused", "failed"}[reply.outcome]
	} else {
		if sg.Progress.Has(obs.Kind) {
			return nil
		}
		next := sg
		next.Progress = sg.Progress.With(obs.Kind)
		if next.Reason == "" && (obs.Kind == PaymentFailed || obs.Kind == ReservationFailed || obs.Kind == CommitFailed) {
			next.Reason = obs.Reason
		}
		t = Transition{Saga: next, Final: next.Progress.Decide()}
		rec.Step, rec.Result = Step(obs.Kind), "seen"
	}
	var (
		events []event.Event
		o      Order
	)
	if t.Final != "" {
		o, err = s.store.Order(ctx, sg.OrderID)
		if err != nil {
			return err
		}
		reason := ""
		if t.Final == Cancelled {
			reason = t.Saga.Reason
		}
		ended, err := orderEnded(o, t.Final, reason, now)
		if err != nil {
			return err
		}
		events = append(events, ended)
	}
	if err := s.store.Advance(ctx, Guard{Expect: &sg}, t, []StepRecord{rec}, events); err != nil {
		return err
	}
	if t.Final != "" {
		s.meter.Ended(ctx, o.Saga, t.Final, now.Sub(o.CreatedAt))
	}
	if sg.Mode == ModeOrchestration && t.Final == "" {
		s.wake()
	}
	return nil
}
