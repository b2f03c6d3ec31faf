package keyspace

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// # The lifecycle
//
//	(new) --create --trial--> trial
//	(new) --create----------> active
//	trial      --activate--> active
//	trial      --suspend, or the trial ends (expire)--> suspended
//	active     --suspend--> suspended
//	suspended  --activate--> active
//	trial, active, suspended --cancel--> cancelled
//	cancelled  --restore, before the retention ends--> suspended
//	cancelled  --the retention ends (purge)--> (purged)
//
// locked is the operator's emergency stop, outside the lifecycle: `tenant
// set --state` moves a tenant between active, suspended and locked as
// before. The rules live here, beside the record, so that the state
// machine, the server's early checks and the tests share one table.

// ErrTransition is the error of a lifecycle action that the tenant's
// current state does not allow (or whose deadline has not come). Nothing
// changed; the message names the actions the state allows.
var ErrTransition = errors.New("tenantkv: tenant state transition not allowed")

// Action is a lifecycle transition. Operators ask for the first four; the
// leader proposes the last two when a deadline passes.
type Action uint8

const (
	ActionActivate Action = 1
	ActionSuspend  Action = 2
	ActionCancel   Action = 3
	ActionRestore  Action = 4
	// ActionExpire suspends a trial tenant whose trial has ended.
	ActionExpire Action = 5
	// ActionPurge purges a cancelled tenant whose retention has ended.
	ActionPurge Action = 6
)

var actionNames = map[Action]string{
	ActionActivate: "activate", ActionSuspend: "suspend", ActionCancel: "cancel",
	ActionRestore: "restore", ActionExpire: "expire", ActionPurge: "purge",
}

func (a Action) String() string {
	if n, ok := actionNames[a]; ok {
		return n
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Valid reports whether a is a known action.
func (a Action) Valid() bool { _, ok := actionNames[a]; return ok }

// ParseAction parses an operator's action: activate, suspend, cancel or
// restore (expire and purge are the clock's).
func ParseAction(s string) (Action, error) {
	for _, a := range []Action{ActionActivate, ActionSuspend, ActionCancel, ActionRestore} {
		if a.String() == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown lifecycle action %q (want activate, suspend, cancel or restore)", ErrTransition, s)
}

// transitions maps each state to the actions it allows and where they
// lead. Purge leads out of the tenant map: its target is 0.
var transitions = map[State][]struct {
	a  Action
	to State
}{
	StateTrial:     {{ActionActivate, StateActive}, {ActionSuspend, StateSuspended}, {ActionCancel, StateCancelled}, {ActionExpire, StateSuspended}},
	StateActive:    {{ActionSuspend, StateSuspended}, {ActionCancel, StateCancelled}},
	StateSuspended: {{ActionActivate, StateActive}, {ActionCancel, StateCancelled}},
	StateCancelled: {{ActionRestore, StateSuspended}, {ActionPurge, 0}},
	StateLocked:    nil,
}

// allowed names the operator actions state s allows, for messages.
func allowed(s State) string {
	var names []string
	for _, t := range transitions[s] {
		if t.a != ActionExpire && t.a != ActionPurge {
			names = append(names, t.a.String())
		}
	}
	if len(names) == 0 {
		if s == StateLocked {
			return "none (a locked tenant leaves the lock with `tenant set --state active` or `--state suspended`)"
		}
		return "none"
	}
	return strings.Join(names, ", ")
}

// Transition decides action a for tenant t at time at (the time carried in
// the command, never a clock) and returns the state it leads to: 0 for a
// purge. An action the state does not allow, an expiry before the trial's
// end, a purge before the retention's end and a restore after it are
// refused with ErrTransition, naming the allowed actions.
func Transition(t *Tenant, a Action, at time.Time) (State, error) {
	for _, tr := range transitions[t.State] {
		if tr.a != a {
			continue
		}
		switch a {
		case ActionExpire:
			if t.TrialEnds.IsZero() || at.Before(t.TrialEnds) {
				return 0, fmt.Errorf("%w: the trial of tenant %q ends at %s", ErrTransition, t.Name, t.TrialEnds.UTC().Format(time.RFC3339))
			}
		case ActionPurge:
			if t.PurgeAt.IsZero() || at.Before(t.PurgeAt) {
				return 0, fmt.Errorf("%w: the retention of tenant %q ends at %s", ErrTransition, t.Name, t.PurgeAt.UTC().Format(time.RFC3339))
			}
		case ActionRestore:
			if !t.PurgeAt.IsZero() && !at.Before(t.PurgeAt) {
				return 0, fmt.Errorf("%w: the retention of tenant %q ended at %s; it is being purged", ErrTransition, t.Name, t.PurgeAt.UTC().Format(time.RFC3339))
			}
		}
		return tr.to, nil
	}
	return 0, fmt.Errorf("%w: tenant %q is %s: cannot %s; allowed: %s", ErrTransition, t.Name, t.State, a, allowed(t.State))
}

// CheckSetState decides a state change by `tenant set --state` (an
// UpdateTenant), which moves a tenant between active, suspended and
// locked, as before the lifecycle: trial and cancelled are reached and
// left only by lifecycle actions, so the deadlines stay consistent.
func CheckSetState(t *Tenant, to State) error {
	if to == t.State {
		return nil
	}
	switch {
	case to == StateTrial:
		return fmt.Errorf("%w: a tenant enters trial only when created (`tenant create NAME --trial D`)", ErrTransition)
	case to == StateCancelled:
		return fmt.Errorf("%w: cancel a tenant with `tenant cancel NAME`", ErrTransition)
	case t.State == StateCancelled:
		return fmt.Errorf("%w: tenant %q is cancelled: allowed: %s", ErrTransition, t.Name, allowed(StateCancelled))
	}
	return nil
}

// Deadline returns the time-driven action pending for t and when it is
// due: ActionExpire at TrialEnds for a trial, ActionPurge at PurgeAt for a
// cancelled tenant, and ok false otherwise.
func (t *Tenant) Deadline() (a Action, at time.Time, ok bool) {
	switch {
	case t.State == StateTrial && !t.TrialEnds.IsZero():
		return ActionExpire, t.TrialEnds, true
	case t.State == StateCancelled && !t.PurgeAt.IsZero():
		return ActionPurge, t.PurgeAt, true
	}
	return 0, time.Time{}, false
}

// States returns every state, in the order messages name them.
func States() []State { return append([]State(nil), stateOrder...) }
