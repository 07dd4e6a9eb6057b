package client

import (
	"github.com/coder/websocket"

	"github.com/shopstream/shopstream/internal/wire"
)

// The wire names of the protocol (README.md, "The socket: GET /ws"). They are
// the server's own (one home, shared by the server, this package and the
// benchmark), exported so that other programs can share one spelling.

// HTTP paths and the session cookie.
const (
	LoginPath     = wire.LoginPath
	SocketPath    = wire.SocketPath
	SessionCookie = wire.SessionCookie
)

// BatchSubprotocol lets the server put several messages, separated by "\n",
// in one text frame.
const BatchSubprotocol = wire.BatchSubprotocol

// ChannelSuffix turns an entity into its channel: "order" → "order_changes".
const ChannelSuffix = wire.ChannelSuffix

// TimestampFormat is how the server writes times (an event's "timestamp"):
// UTC, milliseconds, ISO-8601.
const TimestampFormat = wire.TimestampFormat

// Channel returns the channel of an entity, e.g. Channel("order") is
// "order_changes".
func Channel(entity string) string { return wire.Channel(entity) }

// Types of the messages a client sends.
const (
	TypeSubscribe   = wire.TypeSubscribe
	TypeUnsubscribe = wire.TypeUnsubscribe
	TypePing        = wire.TypePing
)

// Types of the messages the server sends.
const (
	TypeConnected      = wire.TypeConnected
	TypeSubscribed     = wire.TypeSubscribed
	TypeUnsubscribed   = wire.TypeUnsubscribed
	TypeEvent          = wire.TypeEvent
	TypeResyncRequired = wire.TypeResyncRequired
	TypePong           = wire.TypePong
	TypeError          = wire.TypeError
)

// Actions of an event ("order:updated" is entity "order", action "updated").
const (
	ActionCreated   = wire.ActionCreated
	ActionUpdated   = wire.ActionUpdated
	ActionDeleted   = wire.ActionDeleted
	ActionTruncated = wire.ActionTruncated
)

// Codes of the "error" message.
const (
	CodeInvalidRequest    = wire.CodeInvalidRequest
	CodeUnknownChannel    = wire.CodeUnknownChannel
	CodeForbidden         = wire.CodeForbidden
	CodeSubscriptionLimit = wire.CodeSubscriptionLimit
	CodeRateLimited       = wire.CodeRateLimited
	CodeInternal          = wire.CodeInternal
)

// Close codes of the socket and what a client does about them.
const (
	// CloseLoginRequired (1008): no valid session, the session ended, or
	// message rate abuse: log in again.
	CloseLoginRequired websocket.StatusCode = wire.CloseLoginRequired
	// CloseGoingAway (1001): the server is shutting down: reconnect and resume.
	CloseGoingAway websocket.StatusCode = wire.CloseGoingAway
	// CloseInvalidUTF8 (1007): a text frame that is not UTF-8: a client bug.
	CloseInvalidUTF8 websocket.StatusCode = wire.CloseInvalidUTF8
	// CloseMessageTooBig (1009): a client frame was too big: a client bug.
	CloseMessageTooBig websocket.StatusCode = wire.CloseMessageTooBig
	// CloseInternalError (1011): the server failed: reconnect with backoff.
	CloseInternalError websocket.StatusCode = wire.CloseInternalError
	// CloseTryAgainLater (1013): the client read too slowly or a socket cap is
	// full: reconnect with backoff and resume.
	CloseTryAgainLater websocket.StatusCode = wire.CloseTryAgainLater
)
