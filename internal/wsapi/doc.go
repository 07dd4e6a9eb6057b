// Package wsapi is the socket protocol of GET /ws: the handshake (Origin, login
// session), the read loop that answers client messages, and the writer workers
// that drain the sockets' bounded queues.
//
// # Who runs what
//
//   - The request's goroutine (net/http) runs ServeHTTP: inFlight.enter, the
//     login session, Origin, websocket.Accept, the caps, the role query. It
//     starts the socket's goroutine (inFlight.join) and returns, so that its
//     deep stack and the request are not kept for the socket's life.
//   - The socket's goroutine runs Handler.serve: it registers the client with
//     the hub and runs the socketReader's read loop until the connection
//     ends. Each message is handled on a short goroutine of its own
//     (handleAside) that the loop waits for.
//   - The writer workers (writers: Config.Writers, GOMAXPROCS by default)
//     take sockets from one FIFO ready queue. A socket is on it at most once
//     (client.running) and one worker at a time runs its turn: write what is
//     queued, put it back at the end when more came. A turn that stalls past
//     stallAfter keeps its worker, and a new worker takes its place. An idle
//     socket has no goroutine but its reader.
//   - Handler.Run, on the caller's goroutine and two of its own: the pings
//     (each socket in one of pingSlots, each ping a short goroutine that
//     waits for the pong), the write watchdog (expireWrites: a write running
//     longer than WriteTimeout closes its socket; writes carry no deadline of
//     their own) and the guard (passes over the session signals, one at a time).
//   - Keeper.Run touches the login sessions that have a socket and ends the
//     expired ones through the hub.
//   - After a turn that sends the close frame, the close handshake runs on a
//     goroutine of its own (it waits for the peer); closeSoon does the same,
//     bounded by closeGrace, for a socket refused after its handshake.
//   - inFlight counts the ServeHTTP calls and the socket goroutines, so that
//     Wait returns once both are done; from Wait on, new requests get 503.
//
// # Invariants
//
//   - The hub never blocks on a socket: SendEvent, Wake and Close take only
//     the client's mutex and the ready queue's, and never touch the
//     connection. A full queue closes its socket with 1013; nothing waits.
//   - Frames are written by the socket's current turn only (the library
//     serializes them with its own control frames: pongs and close replies
//     from Read, pings, the close handshake). The reader, the guard, the
//     keeper and the hub queue (client.Send, client.Close); before a client
//     exists, ServeHTTP and serve close the connection themselves.
//   - Ending a socket goes through client.stop (its context, then its
//     connection at once), from anywhere: a write error, the watchdog, an
//     unanswered ping, the close handshake's end, the server's end (stopAll).
//     Reads hang on no context, so stop is what ends a read.
//   - Lock order: socketReader.mu, then the hub's (Subscribe and Unsubscribe
//     run under it; the hub never takes it), then client.mu; the ready
//     queue's mutex is taken with no client.mu held.
//
// # Shutdown
//
// http.Server.Shutdown does not close hijacked connections, so
// cmd/shopstream/serve.go ends the sockets itself, in this order:
//
//  1. events.Hub.Shutdown closes every socket with 1001 (its writer sends the
//     close frame) and refuses new ones.
//  2. Handler.Wait refuses new requests and waits, up to the shutdown
//     deadline, for every handshake and socket goroutine to end.
//  3. The background loops end: Handler.Run (pings, watchdog, guard) and
//     Keeper.Run.
//  4. The base context given to NewHandler ends: stopAll stops any socket
//     left, and the workers end once the ready queue is empty; a socket
//     ready after that gets a goroutine of its own, so that it still ends.
package wsapi
