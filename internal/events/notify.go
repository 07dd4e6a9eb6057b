package events

// NotifyKind says which doorbell rang.
type NotifyKind int

// Doorbells the listener hears.
const (
	NotifyEvents       NotifyKind = iota + 1 // the log has new positions
	NotifySessionEnded                       // shopstream_sessions: a session row was deleted (sha256 hex of its token), user:ID (a user's sessions ended), roles (a role's channels or a user's role changed); anyone may send it
)

// Notification is one NOTIFY the listener received.
type Notification struct {
	Kind    NotifyKind
	Payload string
}
