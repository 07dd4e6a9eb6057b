package events

// NotifyKind says which doorbell rang.
type NotifyKind int

// Doorbells the listener hears.
const (
	NotifyEvents       NotifyKind = iota + 1 // the log has new positions
	NotifySessionEnded                       // a session row was deleted; payload: sha256 hex of its token, or user:ID when all sessions of a user ended
)

// Notification is one NOTIFY the listener received.
type Notification struct {
	Kind    NotifyKind
	Payload string
}
