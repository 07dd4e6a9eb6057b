package contract

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
)

func load(t *testing.T) *Spec {
	t.Helper()
	s, err := Load("../../docs")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func jsonHeader(extra ...string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	for i := 0; i+1 < len(extra); i += 2 {
		h.Set(extra[i], extra[i+1])
	}
	return h
}

func TestResponses(t *testing.T) {
	s := load(t)
	user := `{"user":{"id":1,"email":"a@example.com","name":"A","role":"admin"}}`
	stats := `{"success":true,"data":{"connectedClients":1,"activeChannels":["order_changes"],"subscriptions":{"order_changes":1},` +
		`"eventsPublished":2,"eventsDelivered":2,"lastEventId":"7","lastEventAt":"2026-01-25T10:30:00.123Z","lastEventAgeSeconds":0.5,` +
		`"sequencerLeader":true,"listenerConnected":true}}`
	tests := []struct {
		name, method, path string
		status             int
		header             http.Header
		body               string
		wantErr            string // "" when valid
	}{
		{"me", "GET", "/api/auth/me", 200, jsonHeader(), user, ""},
		{"login", "POST", "/api/auth/login", 200, jsonHeader("Set-Cookie", "shopstream_session=x"), user, ""},
		{"stats", "GET", "/api/v1/ws/stats", 200, jsonHeader(), stats, ""},
		{"stats without events", "GET", "/api/v1/ws/stats", 200, jsonHeader(),
			strings.NewReplacer(`"2026-01-25T10:30:00.123Z"`, "null", "0.5", "null").Replace(stats), ""},
		{"logout", "POST", "/api/auth/logout", 204, http.Header{}, "", ""},
		{"throttled", "POST", "/api/auth/login", 429, jsonHeader("Retry-After", "30"), `{"error":"too_many_attempts","message":"wait"}`, ""},
		{"unknown path", "GET", "/nope", 404, http.Header{"Content-Type": {"text/plain"}}, "404 page not found", ""},
		{"HEAD as GET", "HEAD", "/healthz", 200, jsonHeader(), "", ""},
		{"client script", "GET", "/shopstream.js", 200, http.Header{"Content-Type": {"text/javascript; charset=utf-8"}}, "export {}", ""},

		{"user without role", "GET", "/api/auth/me", 200, jsonHeader(), `{"user":{"id":1,"email":"a","name":"A"}}`, "missing property 'role'"},
		{"extra field", "GET", "/api/auth/me", 200, jsonHeader(), `{"user":{"id":1,"email":"a","name":"A","role":"admin"},"token":"x"}`, "additional"},
		{"error as text", "GET", "/api/auth/me", 401, http.Header{"Content-Type": {"text/plain"}}, "unauthorized", "Content-Type text/plain"},
		{"unknown error code", "GET", "/api/auth/me", 401, jsonHeader(), `{"error":"nope","message":"x"}`, "/error"},
		{"undescribed status", "GET", "/api/auth/me", 418, jsonHeader(), `{"error":"error","message":"x"}`, "no such response"},
		{"no Retry-After", "POST", "/api/auth/login", 429, jsonHeader(), `{"error":"too_many_attempts","message":"wait"}`, "Retry-After"},
		{"no cookie", "POST", "/api/auth/login", 200, jsonHeader(), user, "Set-Cookie"},
		{"undescribed path", "GET", "/admin", 200, http.Header{"Content-Type": {"text/html"}}, "<p>", "not described"},
		{"undescribed method", "DELETE", "/api/auth/me", 200, jsonHeader(), user, "method is not described"},
		{"body on 204", "POST", "/api/auth/logout", 204, jsonHeader(), "{}", "none is described"},
		{"not JSON", "GET", "/healthz", 200, jsonHeader(), `{"status":`, "not JSON"},
		{"bad timestamp", "GET", "/api/v1/ws/stats", 200, jsonHeader(), strings.Replace(stats, "2026-01-25T10:30:00.123Z", "yesterday", 1), "date-time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.CheckResponse(tc.method, tc.path, tc.status, tc.header, []byte(tc.body))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("valid response refused: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("invalid response accepted, want an error with %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q does not mention %q", err, tc.wantErr)
			case err != nil && !strings.Contains(err.Error(), tc.path):
				t.Fatalf("error %q does not name the path", err)
			}
		})
	}
	if got := s.Unseen([]string{"GET /api/auth/me 200", "GET /api/auth/me 401"}); len(got) != 1 || got[0] != "GET /api/auth/me 401" {
		t.Fatalf("only valid responses count as seen: unseen %v", got)
	}
}

func TestServerFrames(t *testing.T) {
	s := load(t)
	event := `{"type":"event","id":"1043","channel":"order_changes","event":"order:updated","data":{"id":1,"changed_fields":{"status":"paid"}},` +
		`"previous":{"status":"pending"},"actor":"warehouse","timestamp":"2026-01-25T10:30:00.000Z"}`
	tests := []struct {
		name, frame string
		batch       bool
		want        string // the message names, or "" when invalid
	}{
		{"connected", `{"type":"connected","message":"WebSocket connection established","userId":1}`, false, "connected"},
		{"event", event, false, "event"},
		{"marker", `{"type":"event","id":"9","channel":"product_changes","event":"product:updated","data":{"id":7},` +
			`"too_large":{"reason":"size","bytes":2000,"limit":1000},"timestamp":"2026-01-25T10:30:00.000Z"}`, false, "tooLarge"},
		{"revoked", `{"type":"error","code":"forbidden","channel":"customer_changes","message":"no longer"}`, false, "revoked"},
		{"error", `{"type":"error","code":"invalid_request","message":"bad"}`, false, "error"},
		{"batch", `{"type":"pong","timestamp":"2026-01-25T10:30:00.000Z"}` + "\n" + `{"type":"unsubscribed","channel":"order_changes"}`, true, "pong unsubscribed"},

		{"position as number", `{"type":"subscribed","channel":"order_changes","position":1042}`, false, ""},
		{"unknown channel", `{"type":"subscribed","channel":"orders","position":"1"}`, false, ""},
		{"event without timestamp", strings.Replace(event, `,"timestamp":"2026-01-25T10:30:00.000Z"`, "", 1), false, ""},
		{"timestamp without milliseconds", strings.Replace(event, "00.000Z", "00Z", 1), false, ""},
		{"update without previous", strings.Replace(event, `"previous":{"status":"pending"},`, "", 1), false, ""},
		{"insert with previous", strings.Replace(event, "order:updated", "order:created", 1), false, ""},
		{"unknown field", strings.Replace(event, `"actor"`, `"secret":1,"actor"`, 1), false, ""},
		{"unknown type", `{"type":"hello"}`, false, ""},
		{"event on another entity's channel", strings.Replace(event, "order:updated", "product:updated", 1), false, ""},
		{"unknown error code", `{"type":"error","code":"oops","message":"bad"}`, false, ""},
		{"two messages without batch", `{"type":"pong","timestamp":"2026-01-25T10:30:00.000Z"}` + "\n" + `{"type":"pong","timestamp":"2026-01-25T10:30:00.000Z"}`, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			names, err := s.CheckServerFrame([]byte(tc.frame), tc.batch)
			switch {
			case tc.want != "" && err != nil:
				t.Fatalf("valid frame refused: %v", err)
			case tc.want == "" && err == nil:
				t.Fatalf("invalid frame accepted as %v", names)
			case tc.want != "" && strings.Join(names, " ") != tc.want:
				t.Fatalf("matched %v, want %s", names, tc.want)
			}
		})
	}
}

func TestClientMessages(t *testing.T) {
	s := load(t)
	for frame, want := range map[string]string{
		`{"type":"subscribe","channel":"order_changes"}`:                                                              "subscribe",
		`{"type":"subscribe","channels":["order_changes","product_changes"],"since":12}`:                              "subscribe",
		`{"type":"subscribe","channel":"order_changes","filter":{"status":["pending"],"customer_id":45},"since":"1"}`: "subscribe",
		`{"type":"unsubscribe","channel":"order_changes"}`:                                                            "unsubscribe",
		`{"type":"ping"}`: "ping",
		`{"type":"subscribe","channel":"order_changes","channels":["order_changes"]}`: "",
		`{"type":"subscribe"}`: "",
		`{"type":"subscribe","channel":"order_changes","filter":{"a":{"b":1}}}`: "",
		`{"type":"subscribe","channel":"order_changes","actions":["changed"]}`:  "",
		`{"type":"ping","extra":1}`: "",
	} {
		got, err := s.ClassifyClientMessage([]byte(frame))
		if got != want || (want == "") != (err != nil) {
			t.Errorf("%s: got %q (%v), want %q", frame, got, err, want)
		}
	}
}

// TestExamplesMatch checks the examples the descriptions show: every message
// example is an instance of its own message and of no other.
func TestExamplesMatch(t *testing.T) {
	s := load(t)
	_, doc, err := readDoc("../../docs/asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	msgs := node{val: any(doc)}.child("components").child("messages")
	n := 0
	for _, name := range msgs.keys() {
		ex, _ := msgs.child(name).child("examples").val.([]any)
		if len(ex) == 0 {
			t.Errorf("message %s has no example", name)
		}
		for _, e := range ex {
			b, _ := json.Marshal(e.(map[string]any)["payload"])
			ms := s.socket.server
			if _, isClient := map[string]bool{"subscribe": true, "unsubscribe": true, "ping": true}[name]; isClient {
				ms = s.socket.client
			}
			got, err := match(ms, b, true) // exactly one message matches
			if err == nil {
				_, err = match(append(append([]*message{}, s.socket.client...), s.socket.server...), b, true)
			}
			if err != nil || got != name {
				t.Errorf("example of %s: %s: matched %q, %v", name, b, got, err)
			}
			n++
		}
	}
	if n < 12 {
		t.Fatalf("only %d examples", n)
	}
}

func TestEveryOperationIsListed(t *testing.T) {
	s := load(t)
	ops := strings.Join(s.Operations(), "\n")
	for _, want := range []string{"POST /api/auth/login", "POST /api/auth/logout", "GET /api/auth/me", "GET /api/v1/ws/stats",
		"GET /healthz", "GET /readyz", "GET /metrics", "GET /ws", "GET /shopstream.js",
		"message subscribe", "message unsubscribe", "message ping", "message connected", "message subscribed",
		"message unsubscribed", "message pong", "message resyncRequired", "message error", "message revoked",
		"message event", "message tooLarge"} {
		if !strings.Contains(ops+"\n", want+"\n") {
			t.Errorf("%s is not described", want)
		}
	}
}

func BenchmarkCheckEventFrame(b *testing.B) {
	s, err := Load("../../docs")
	if err != nil {
		b.Fatal(err)
	}
	frame := []byte(`{"type":"event","id":"1043","channel":"product_changes","event":"product:updated","data":{"id":1,"sku":"BULK-1","name":"p1","stock":1,` +
		`"price":null,"created_at":"2026-01-25T10:30:00.000Z","changed_fields":{"stock":1}},"previous":{"stock":0},"actor":"import","timestamp":"2026-01-25T10:30:00.000Z"}`)
	for b.Loop() {
		if _, err := s.CheckServerFrame(frame, true); err != nil {
			b.Fatal(err)
		}
	}
}

// TestREADMEProtocolExamples checks the messages the README's socket section
// shows (its json blocks) against docs/asyncapi.yaml: each is a client or a
// server message.
func TestREADMEProtocolExamples(t *testing.T) {
	s := load(t)
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## The socket")
	if !ok {
		t.Fatal("README has no socket section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	n := 0
	for _, block := range strings.Split(section, "```json\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		dec := json.NewDecoder(strings.NewReader(block))
		for dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				t.Fatalf("README example is not JSON: %v\n%s", err, block)
			}
			if _, err := s.ClassifyClientMessage(raw); err != nil {
				if _, err := s.CheckServerFrame(raw, false); err != nil {
					t.Errorf("README example %s is no message of docs/asyncapi.yaml: %v", raw, err)
				}
			}
			n++
		}
	}
	if n < 10 {
		t.Fatalf("found only %d examples in the README's socket section", n)
	}
}
