// Package client is a Go client of shopstream: it logs in over REST, opens
// the socket (GET /ws) and delivers the row changes of the channels it
// follows as typed events, reconnecting and resuming on its own.
//
//	c, err := client.New("https://shopstream.example.com")
//	err = c.Login(ctx, email, password)
//	s, err := c.Stream(ctx, client.Subscription{Channel: "order_changes"})
//	for m := range s.Messages() {
//		switch m := m.(type) {
//		case client.Event:  // m.ID, m.Entity, m.Action, m.Data, m.Changed, ...
//		case client.Notice: // resync, revocation, reconnect, ...
//		}
//	}
//	err = s.Err() // nil once ctx ended
//
// Login keeps the session cookie in the client's jar and returns a
// *LoginError for a refused login: errors.Is matches ErrInvalidCredentials
// (401), ErrThrottled (429) and ErrBusy (503), and RetryAfter has the
// server's Retry-After.
//
// A Stream asks for the subprotocol BatchSubprotocol and subscribes to each
// channel once the server says "connected". It keeps, per channel, the id of
// the last event it delivered (or the position of the subscription, when
// nothing came yet): after a lost socket it reconnects with full-jitter
// exponential backoff (FullJitter: up to 1 s, doubling, never above 30 s;
// back to the start once a socket is established) and subscribes with
// since = that id, so the server replays what was missed; an id at or below
// it is dropped (NoticeDuplicate). A resume the server refuses
// (invalid_request) goes on live after NoticeResumeRefused; resync_required
// is NoticeResync. Close codes 1001, 1011, 1013 and a lost connection
// (1006) reconnect; 1008 logs in again once with the credentials of the
// last Login (NoticeLoggingIn) and ends the stream with ErrSessionEnded
// when there are none or it comes again before a socket is established.
// A channel the user's role loses ends with NoticeRevoked; the others go on,
// and a stream with no channel left ends with ErrNoChannel. Other close
// codes, a failed login and a message that does not decode end the stream
// with an error. Cancelling the context ends it cleanly: Messages is closed
// and Err is nil.
//
// DecodeEvent decodes one event message read elsewhere (a line of
// `shopstream tail --json`, an Event's Raw); Fields lists the members of a
// JSON object such as Data in the server's (the table's column) order.
//
// The wire names of the protocol (message types, error codes, close codes,
// the subprotocol, the channel suffix, the timestamp format) are constants of
// this package.
package client
