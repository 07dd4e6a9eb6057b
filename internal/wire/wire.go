// Package wire holds the wire names of the socket protocol (README.md, "The
// socket: GET /ws"; docs/asyncapi.yaml) in one place: the server (wsapi,
// events, config), the public Go client (which re-exports them) and the
// benchmark all spell them from here. It imports nothing, so any package may
// use it.
package wire

import "strings"

// HTTP paths and the session cookie.
const (
	LoginPath     = "/api/auth/login"
	SocketPath    = "/ws"
	SessionCookie = "shopstream_session"
)

// BatchSubprotocol lets the server put several messages, separated by "\n",
// in one text frame.
const BatchSubprotocol = "shopstream.batch"

// ChannelSuffix turns an entity into its channel: "order" → "order_changes".
const ChannelSuffix = "_changes"

// Channel returns the channel of an entity, e.g. Channel("order") is
// "order_changes".
func Channel(entity string) string { return entity + ChannelSuffix }

// Entity returns the entity of a channel, e.g. Entity("order_changes") is
// "order"; a name without the suffix is returned as it is.
func Entity(channel string) string { return strings.TrimSuffix(channel, ChannelSuffix) }

// TimestampFormat is how messages carry time: UTC, milliseconds, ISO-8601.
const TimestampFormat = "2006-01-02T15:04:05.000Z"

// Types of the messages a client sends.
const (
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	TypePing        = "ping"
)

// Types of the messages the server sends.
const (
	TypeConnected      = "connected"
	TypeSubscribed     = "subscribed"
	TypeUnsubscribed   = "unsubscribed"
	TypeEvent          = "event"
	TypeResyncRequired = "resync_required"
	TypePong           = "pong"
	TypeError          = "error"
)

// Actions of an event ("order:updated" is entity "order", action "updated").
const (
	ActionCreated   = "created"
	ActionUpdated   = "updated"
	ActionDeleted   = "deleted"
	ActionTruncated = "truncated"
)

// Codes of the "error" message.
const (
	CodeInvalidRequest    = "invalid_request"
	CodeUnknownChannel    = "unknown_channel"
	CodeForbidden         = "forbidden"
	CodeSubscriptionLimit = "subscription_limit"
	CodeRateLimited       = "rate_limited"
	CodeInternal          = "internal_error"
)

// Close codes of the socket (RFC 6455 §7.4.1) and what a client does about
// them. They are untyped, so they serve as a websocket.StatusCode or an int.
const (
	// CloseNormal (1000): the client is done.
	CloseNormal = 1000
	// CloseLoginRequired (1008): no valid session, the session ended, or
	// message rate abuse: log in again.
	CloseLoginRequired = 1008
	// CloseGoingAway (1001): the server is shutting down: reconnect and resume.
	CloseGoingAway = 1001
	// CloseInvalidUTF8 (1007): a text frame that is not UTF-8: a client bug.
	CloseInvalidUTF8 = 1007
	// CloseMessageTooBig (1009): a client frame was too big: a client bug.
	CloseMessageTooBig = 1009
	// CloseInternalError (1011): the server failed: reconnect with backoff.
	CloseInternalError = 1011
	// CloseTryAgainLater (1013): the client read too slowly or a socket cap is
	// full: reconnect with backoff and resume.
	CloseTryAgainLater = 1013
)
