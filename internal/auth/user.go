package auth

import (
	"errors"
	"time"
)

// ErrNotFound is returned when a looked-up user or role does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a user with that email exists already.
var ErrConflict = errors.New("already exists")

// User is an admin user of the dashboard.
type User struct {
	ID           int64
	Email        string
	Name         string
	Role         string
	PasswordHash string
	Disabled     bool
	SessionEpoch int32 // sessions from an older epoch are void
	CreatedAt    time.Time
}

// Public is the user as the REST API shows it.
type Public struct {
	ID    int64  `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
	Role  string `json:"role"`
}

// Public returns the fields the API may show.
func (u User) Public() Public { return Public{ID: u.ID, Email: u.Email, Name: u.Name, Role: u.Role} }
