package client

import "github.com/coder/websocket"

// The wire names of the protocol (README.md, "The socket: GET /ws"). They are
// exported so that the server and other programs can share one spelling.

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

// Close codes of the socket and what a client does about them.
const (
	// CloseLoginRequired (1008): no valid session, the session ended, or
	// message rate abuse: log in again.
	CloseLoginRequired = websocket.StatusPolicyViolation
	// CloseGoingAway (1001): the server is shutting down: reconnect and resume.
	CloseGoingAway = websocket.StatusGoingAway
	// CloseInvalidUTF8 (1007): a text frame that is not UTF-8: a client bug.
	CloseInvalidUTF8 = websocket.StatusInvalidFramePayloadData
	// CloseMessageTooBig (1009): a client frame was too big: a client bug.
	CloseMessageTooBig = websocket.StatusMessageTooBig
	// CloseInternalError (1011): the server failed: reconnect with backoff.
	CloseInternalError = websocket.StatusInternalError
	// CloseTryAgainLater (1013): the client read too slowly or a socket cap is
	// full: reconnect with backoff and resume.
	CloseTryAgainLater = websocket.StatusTryAgainLater
)
