package main

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/shopstream/shopstream/client"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// The client package end to end, against the real server and PostgreSQL.

func loggedInClient(t *testing.T, s *testServer, email string) *client.Client {
	t.Helper()
	c, err := client.New(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(waitfor.Context(t), email, testPassword); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

// nextMessage returns the stream's next message, failing when it ended.
func nextStreamMessage(t *testing.T, st *client.Stream) client.Message {
	t.Helper()
	m := waitfor.Receive(t, "a message from the stream", st.Messages())
	if m == nil {
		t.Fatalf("the stream ended: %v", st.Err())
	}
	return m
}

func nextClientEvent(t *testing.T, st *client.Stream) client.Event {
	t.Helper()
	for {
		switch m := nextStreamMessage(t, st).(type) {
		case client.Event:
			return m
		case client.Notice:
			t.Logf("notice: %s", m)
		}
	}
}

func rawField(t *testing.T, raw json.RawMessage, key string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not a JSON object: %s", raw)
	}
	return m[key]
}

func stopStream(t *testing.T, cancel context.CancelFunc, st *client.Stream) {
	t.Helper()
	cancel()
	for m := range st.Messages() {
		t.Logf("after cancel: %v", m)
	}
	if err := st.Err(); err != nil {
		t.Errorf("the stream ended with %v after its context", err)
	}
}

func TestClientStreamsTypedEventsAndResumes(t *testing.T) {
	db, s := tailSetup(t)
	c := loggedInClient(t, s, tailEmail)
	ctx, cancel := context.WithCancel(waitfor.Context(t))
	st, err := c.Stream(ctx, client.Subscription{Channel: client.Channel("order"), Actions: []string{client.ActionUpdated}})
	if err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, s, "order_changes")
	app := appConn(t, db, "warehouse-sync")
	before := time.Now().Add(-time.Minute)
	exec(t, app, `UPDATE orders SET status = 'processing' WHERE id = 7001`)

	ev := nextClientEvent(t, st)
	if ev.ID <= 0 || ev.Channel != "order_changes" || ev.Entity != "order" || ev.Action != client.ActionUpdated ||
		ev.Actor != "warehouse-sync" || ev.Timestamp.Before(before) {
		t.Errorf("event: %+v", ev)
	}
	if rawField(t, ev.Changed, "status") != "processing" || rawField(t, ev.Previous, "status") != "pending" ||
		rawField(t, ev.Data, "id") != float64(7001) || rawField(t, ev.Raw, "type") != client.TypeEvent {
		t.Errorf("changed %s previous %s data %s", ev.Changed, ev.Previous, ev.Data)
	}
	if got := st.Positions()["order_changes"]; got != ev.ID {
		t.Errorf("position %d, want %d", got, ev.ID)
	}
	stopStream(t, cancel, st)

	// Written while nobody listens; a new stream resuming after ev replays them.
	exec(t, app, `UPDATE orders SET status = 'shipped' WHERE id = 7001`)
	exec(t, app, `UPDATE orders SET notes = 'resumed' WHERE id = 7001`)
	ctx, cancel = context.WithCancel(waitfor.Context(t))
	defer cancel()
	st, err = c.Stream(ctx, client.Subscription{Channel: "order_changes", Since: ev.ID})
	if err != nil {
		t.Fatal(err)
	}
	shipped, resumed := nextClientEvent(t, st), nextClientEvent(t, st)
	if rawField(t, shipped.Changed, "status") != "shipped" || rawField(t, resumed.Changed, "notes") != "resumed" ||
		shipped.ID <= ev.ID || resumed.ID <= shipped.ID {
		t.Errorf("replay: %s (%d) then %s (%d) after %d", shipped.Changed, shipped.ID, resumed.Changed, resumed.ID, ev.ID)
	}
	stopStream(t, cancel, st)
}

func TestClientRevocationEndsOneChannel(t *testing.T) {
	db, s := tailSetup(t)
	createAdmin(t, db, "support@example.com", "support")
	c := loggedInClient(t, s, "support@example.com")
	ctx, cancel := context.WithCancel(waitfor.Context(t))
	defer cancel()
	st, err := c.Stream(ctx, client.Subscription{Channel: "customer_changes"}, client.Subscription{Channel: "order_changes"})
	if err != nil {
		t.Fatal(err)
	}
	waitSubscribed(t, s, "customer_changes")
	waitSubscribed(t, s, "order_changes")
	app := appConn(t, db, "ops")
	exec(t, app, `UPDATE shopstream.roles SET channels = '{order_changes,shipment_changes}' WHERE name = 'support'`)
	for {
		n, ok := nextStreamMessage(t, st).(client.Notice)
		if ok && n.Kind == client.NoticeRevoked {
			if n.Channel != "customer_changes" || n.Code != client.CodeForbidden {
				t.Fatalf("revocation: %+v", n)
			}
			break
		}
		t.Logf("before the revocation: %v", n)
	}
	exec(t, app, `UPDATE orders SET status = 'processing' WHERE id = 7001`)
	if ev := nextClientEvent(t, st); ev.Channel != "order_changes" || rawField(t, ev.Changed, "status") != "processing" {
		t.Errorf("after the revocation: %+v", ev)
	}
	stopStream(t, cancel, st)
}

func TestClientLoginRefused(t *testing.T) {
	_, s := tailSetup(t)
	c, err := client.New(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Login(waitfor.Context(t), tailEmail, "wrong password")
	var le *client.LoginError
	if !errors.Is(err, client.ErrInvalidCredentials) || !errors.As(err, &le) || le.Code != "invalid_credentials" {
		t.Fatalf("want ErrInvalidCredentials, got %v", err)
	}
	// Without a session the socket closes with 1008: with no credentials to
	// log in again with, the stream ends with ErrSessionEnded.
	st, err := c.Stream(waitfor.Context(t), client.Subscription{Channel: "order_changes"})
	if err != nil {
		t.Fatal(err)
	}
	for m := range st.Messages() {
		t.Logf("message: %v", m)
	}
	if err := st.Err(); !errors.Is(err, client.ErrSessionEnded) {
		t.Fatalf("want ErrSessionEnded, got %v", err)
	}
}
