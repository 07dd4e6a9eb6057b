package wsapi

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/events"
)

// wantProtocolError checks err is a *protocolError with code and a message
// containing msg.
func wantProtocolError(t *testing.T, err error, code, msg string) {
	t.Helper()
	var pe *protocolError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *protocolError", err, err)
	}
	if pe.Code != code || !strings.Contains(pe.Message, msg) {
		t.Fatalf("error = {%s %q}, want {%s ...%q...}", pe.Code, pe.Message, code, msg)
	}
}

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want request
	}{
		{"ping", `{"type":"ping"}`, request{Type: "ping"}},
		{"ping with whitespace", " \n{ \"type\" : \"ping\" }\r\n\t", request{Type: "ping"}},
		{"subscribe channel", `{"type":"subscribe","channel":"orders_changes"}`,
			request{Type: "subscribe", Channel: "orders_changes"}},
		{"subscribe channels", `{"type":"subscribe","channels":["orders_changes","products_changes"]}`,
			request{Type: "subscribe", Channels: []string{"orders_changes", "products_changes"}}},
		{"subscribe filter and actions", `{"type":"subscribe","channel":"orders_changes","filter":{"status":["pending","paid"],"customer_id":45},"actions":["created","updated"]}`,
			request{Type: "subscribe", Channel: "orders_changes",
				Filter:  map[string]json.RawMessage{"status": json.RawMessage(`["pending","paid"]`), "customer_id": json.RawMessage(`45`)},
				Actions: []string{"created", "updated"}}},
		{"subscribe since string", `{"type":"subscribe","channel":"orders_changes","since":"1042"}`,
			request{Type: "subscribe", Channel: "orders_changes", Since: json.RawMessage(`"1042"`)}},
		{"subscribe since number", `{"type":"subscribe","channel":"orders_changes","since":1042}`,
			request{Type: "subscribe", Channel: "orders_changes", Since: json.RawMessage(`1042`)}},
		{"unsubscribe", `{"type":"unsubscribe","channel":"orders_changes"}`,
			request{Type: "unsubscribe", Channel: "orders_changes"}},
		{"unknown type is the reader's business", `{"type":"hello"}`, request{Type: "hello"}},
		{"brackets inside strings do not count", `{"type":"ping","channel":"[[[[[[[[[[{{{{{{{{{{\"[[[[[[[[[["}`,
			request{Type: "ping", Channel: `[[[[[[[[[[{{{{{{{{{{"[[[[[[[[[[`}},
		{"nesting at the limit", `{"type":"subscribe","filter":{"a":[[[[[[1]]]]]]}}`,
			request{Type: "subscribe", Filter: map[string]json.RawMessage{"a": json.RawMessage(`[[[[[[1]]]]]]`)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeRequest([]byte(tt.in))
			if err != nil {
				t.Fatalf("decodeRequest: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeRequestInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		msg  string // part of the error message
	}{
		{"empty frame", ``, "malformed message"},
		{"not JSON", `hello`, "malformed message"},
		{"unknown field", `{"type":"subscribe","channel":"orders_changes","filters":{}}`, `unknown field "filters"`},
		{"trailing object", `{"type":"ping"}{"type":"ping"}`, "one JSON object per frame"},
		{"trailing garbage", `{"type":"ping"} x`, "one JSON object per frame"},
		{"trailing brace", `{"type":"ping"}}`, "one JSON object per frame"},
		{"trailing bracket", `{"type":"ping"}]`, "one JSON object per frame"},
		{"channel is a number", `{"type":"subscribe","channel":5}`, `field "channel" has the wrong type`},
		{"channels is a string", `{"type":"subscribe","channels":"orders_changes"}`, `field "channels" has the wrong type`},
		{"actions hold a number", `{"type":"subscribe","channel":"c","actions":[1]}`, `has the wrong type`},
		{"filter is a list", `{"type":"subscribe","channel":"c","filter":["a"]}`, `field "filter" has the wrong type`},
		{"type is a number", `{"type":1}`, `field "type" has the wrong type`},
		{"array message", `["ping"]`, "has the wrong type"},
		{"missing type", `{"channel":"orders_changes"}`, `missing "type"`},
		{"empty type", `{"type":""}`, `missing "type"`},
		{"null message", `null`, `missing "type"`},
		{"deep arrays", strings.Repeat("[", 10000), "nested too deeply"},
		{"deep objects", strings.Repeat(`{"a":`, 10000), "nested too deeply"},
		{"one past the limit", `{"type":"subscribe","filter":{"a":[[[[[[[1]]]]]]]}}`, "nested too deeply"},
		{"unterminated", `{"type":"ping"`, "malformed message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := decodeRequest([]byte(tt.in))
			if err == nil {
				t.Fatalf("decodeRequest = %+v, want error", r)
			}
			wantProtocolError(t, err, "invalid_request", tt.msg)
		})
	}
}

func TestRequestSince(t *testing.T) {
	tests := []struct {
		since   string // raw JSON; "" for absent
		want    int64
		resume  bool
		wantErr bool
	}{
		{since: "", want: 0, resume: false},
		{since: "null", want: 0, resume: false},
		{since: `"1042"`, want: 1042, resume: true},
		{since: `1042`, want: 1042, resume: true},
		{since: `"0"`, want: 0, resume: true},
		{since: `0`, want: 0, resume: true},
		{since: `"9223372036854775807"`, want: 9223372036854775807, resume: true},
		{since: `"abc"`, wantErr: true},
		{since: `-1`, wantErr: true},
		{since: `"-1"`, wantErr: true},
		{since: `1042.0`, wantErr: true},
		{since: `1e3`, wantErr: true},
		{since: `""`, wantErr: true},
		{since: `"9223372036854775808"`, wantErr: true},
		{since: `true`, wantErr: true},
		{since: `["1"]`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.since, func(t *testing.T) {
			r := request{Type: "subscribe", Channel: "orders_changes"}
			if tt.since != "" {
				r.Since = json.RawMessage(tt.since)
			}
			n, resume, err := r.since()
			if tt.wantErr {
				if err == nil {
					t.Fatalf("since() = %d, %v, want error", n, resume)
				}
				wantProtocolError(t, err, "invalid_request", `"since" must be an event id`)
				return
			}
			if err != nil {
				t.Fatalf("since(): %v", err)
			}
			if n != tt.want || resume != tt.resume {
				t.Errorf("since() = %d, %v, want %d, %v", n, resume, tt.want, tt.resume)
			}
		})
	}
	// Through the decoder, as a client sends it.
	r, err := decodeRequest([]byte(`{"type":"subscribe","channel":"c","since":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if n, resume, err := r.since(); n != 0 || resume || err != nil {
		t.Errorf("since null: %d, %v, %v", n, resume, err)
	}
}

func TestRequestChannelList(t *testing.T) {
	tests := []struct {
		name string
		r    request
		want []string
		msg  string
	}{
		{"channel", request{Channel: "orders_changes"}, []string{"orders_changes"}, ""},
		{"channels", request{Channels: []string{"a_changes", "b_changes"}}, []string{"a_changes", "b_changes"}, ""},
		{"both", request{Channel: "a_changes", Channels: []string{"b_changes"}}, nil, `not both`},
		{"neither", request{}, nil, `missing "channel"`},
		{"empty channels list", request{Channels: []string{}}, nil, `missing "channel"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.r.channelList()
			if tt.msg != "" {
				if err == nil {
					t.Fatalf("channelList() = %q, want error", got)
				}
				wantProtocolError(t, err, "invalid_request", tt.msg)
				return
			}
			if err != nil {
				t.Fatalf("channelList(): %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("channelList() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRequestSubscription(t *testing.T) {
	r, err := decodeRequest([]byte(`{"type":"subscribe","channel":"c","filter":{"status":"pending"},"actions":["updated","deleted"]}`))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := r.subscription()
	if err != nil {
		t.Fatalf("subscription(): %v", err)
	}
	if sub.Actions != events.ActionUpdated|events.ActionDeleted {
		t.Errorf("actions = %b", sub.Actions)
	}
	if len(sub.Filter) != 1 || len(sub.Filter["status"]) != 1 || string(sub.Filter["status"][0]) != `"pending"` {
		t.Errorf("filter = %q", sub.Filter)
	}
	for _, in := range []string{
		`{"type":"subscribe","channel":"c","filter":{"status":[]}}`,
		`{"type":"subscribe","channel":"c","filter":{"status":{"a":1}}}`,
		`{"type":"subscribe","channel":"c","actions":["upserted"]}`,
	} {
		r, err := decodeRequest([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if sub, err := r.subscription(); err == nil {
			t.Errorf("%s: subscription() = %+v, want error", in, sub)
		} else {
			wantProtocolError(t, err, "invalid_request", "")
		}
	}
}

func TestMsgError(t *testing.T) {
	for _, msg := range []string{
		"plain",
		`quote " and backslash \`,
		"new\nline\r\ttab",
		"control \x00\x01\x1f\x7f",
		"html <script>&</script>",
		"invalid utf-8 \xff\xfe",
		"line sep \u2028\u2029",
		"",
	} {
		b := msgError("invalid_request", msg)
		if !json.Valid(b) {
			t.Errorf("msgError(%q) is not valid JSON: %s", msg, b)
			continue
		}
		var got struct {
			Type, Code, Message string
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		want := strings.Map(func(r rune) rune { return r }, msg) // each invalid byte becomes U+FFFD
		if got.Type != "error" || got.Code != "invalid_request" || got.Message != want {
			t.Errorf("msgError(%q) decodes to %+v", msg, got)
		}
		if strings.ContainsAny(string(b), "\n\r\x00") {
			t.Errorf("msgError(%q) has raw control characters: %q", msg, b)
		}
	}
	if got, want := string(msgError("forbidden", `your role may not read "x"`)),
		`{"type":"error","code":"forbidden","message":"your role may not read \"x\""}`; got != want {
		t.Errorf("msgError:\n got %s\nwant %s", got, want)
	}
}

func TestServerMessages(t *testing.T) {
	est := time.FixedZone("EST", -5*60*60)
	tests := []struct {
		got, want string
	}{
		{string(msgPong(time.Date(2026, 1, 25, 5, 30, 0, 0, est))), `{"type":"pong","timestamp":"2026-01-25T10:30:00.000Z"}`},
		{string(msgPong(time.Date(2026, 1, 25, 10, 30, 0, 987654321, time.UTC))), `{"type":"pong","timestamp":"2026-01-25T10:30:00.987Z"}`},
		{string(msgConnected(42)), `{"type":"connected","message":"WebSocket connection established","userId":42}`},
		{string(msgSubscribed("orders_changes", 1042)), `{"type":"subscribed","channel":"orders_changes","position":"1042"}`},
		{string(msgUnsubscribed("orders_changes")), `{"type":"unsubscribed","channel":"orders_changes"}`},
		{string(msgResync("orders_changes")), `{"type":"resync_required","channel":"orders_changes"}`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got  %s\nwant %s", tt.got, tt.want)
		}
		if !json.Valid([]byte(tt.got)) {
			t.Errorf("not valid JSON: %s", tt.got)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"type":"ping"}`,
		`{"type":"subscribe","channel":"orders_changes"}`,
		`{"type":"subscribe","channels":["orders_changes","products_changes"]}`,
		`{"type":"subscribe","channel":"orders_changes","filter":{"status":["pending","paid"],"customer_id":45},"actions":["created","updated"]}`,
		`{"type":"subscribe","channel":"orders_changes","since":"1042"}`,
		`{"type":"subscribe","channel":"orders_changes","since":1042,"filter":{"total":22.50,"gift":true,"notes":null}}`,
		`{"type":"subscribe","channel":"orders_changes","channels":["x"],"since":-1}`,
		`{"type":"subscribe","channel":"c","filter":{"a":[[1]],"b":{"c":1},"d":[]}}`,
		`{"type":"unsubscribe","channel":"orders_changes"}`,
		`{"type":"unsubscribe","channels":["orders_changes"]}`,
		`{"type":"ping"}}`,
		`{"type":"ping","extra":1}`,
		`[[[[[[[[[[`,
		`{"type":"\"[[[[\\"}`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, perr := decodeRequest(b)
		if perr != nil {
			// The socket reader hands the error to the client as it is.
			if perr.Code == "" || !json.Valid(msgError(perr.Code, perr.Message)) {
				t.Fatalf("error %+v makes no valid error message", perr)
			}
			return
		}
		if r.Type == "" {
			t.Fatalf("no error and no type: %q", b)
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON: %q", b)
		}
		// Each helper's error is what the client is told: a code, and a
		// message that encodes.
		for _, call := range []func() *protocolError{
			func() *protocolError { _, perr := r.channelList(); return perr },
			func() *protocolError { _, _, perr := r.since(); return perr },
			func() *protocolError { _, perr := r.subscription(); return perr },
		} {
			if perr := call(); perr != nil && (perr.Code == "" || !json.Valid(msgError(perr.Code, perr.Message))) {
				t.Fatalf("error %+v makes no valid error message", perr)
			}
		}
		if n, resume, err := r.since(); err == nil && (n < 0 || (!resume && n != 0)) {
			t.Fatalf("since() = %d, %v", n, resume)
		}
	})
}
