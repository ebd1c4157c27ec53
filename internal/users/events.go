package users

import (
	"fmt"

	"github.com/microshop/microshop/internal/event"
)

// Source names the users service as the publisher of its events.
const Source = "users"

// The events the users service publishes: when an account is created, the
// first admin's included, and when its name changes.
const (
	TypeUserCreated  = "UserCreated"
	TopicUserCreated = "users.user.created"
	TypeUserRenamed  = "UserRenamed"
	TopicUserRenamed = "users.user.renamed"
)

// UserCreated is the payload (v1) of a new account: what other services may
// know of a user. The email and the role stay with the users service.
type UserCreated struct {
	UserID string `json:"user_id"`
	Name   string `json:"name"`
}

// userCreated is the event that announces u.
func userCreated(u User) (event.Event, error) {
	e, err := event.New(Source, TopicUserCreated, TypeUserCreated, 1, u.ID, UserCreated{UserID: u.ID, Name: u.Name})
	if err != nil {
		return event.Event{}, fmt.Errorf("building UserCreated of user %s: %w", u.ID, err)
	}
	return e, nil
}

// UserRenamed is the payload (v1) of an account's new name: the same fields
// as UserCreated, so a consumer that keeps names applies both alike.
type UserRenamed struct {
	UserID string `json:"user_id"`
	Name   string `json:"name"`
}

// userRenamed is the event that announces user id's new name.
func userRenamed(id, name string) (event.Event, error) {
	e, err := event.New(Source, TopicUserRenamed, TypeUserRenamed, 1, id, UserRenamed{UserID: id, Name: name})
	if err != nil {
		return event.Event{}, fmt.Errorf("building UserRenamed of user %s: %w", id, err)
	}
	return e, nil
}
