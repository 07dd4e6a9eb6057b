package wsapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/shopstream/shopstream/internal/events"
	"github.com/shopstream/shopstream/internal/wire"
)

// request is a client message. Unknown fields are refused.
type request struct {
	Type     string                     `json:"type"`
	Channel  string                     `json:"channel,omitempty"`
	Channels []string                   `json:"channels,omitempty"`
	Filter   map[string]json.RawMessage `json:"filter,omitempty"`
	Actions  []string                   `json:"actions,omitempty"`
	Since    json.RawMessage            `json:"since,omitempty"`
}

// protocolError is an error the client is told about; the socket stays open.
// The request helpers return it as *protocolError, nil on success, so that the
// type says what the client is told. Never store one in an error variable: a
// nil *protocolError in an error interface is not nil.
type protocolError struct {
	Code    string
	Message string
}

func (e *protocolError) Error() string { return e.Code + ": " + e.Message }

func invalid(format string, args ...any) *protocolError {
	return &protocolError{Code: wire.CodeInvalidRequest, Message: fmt.Sprintf(format, args...)}
}

// maxDepth bounds the nesting of a client message; nothing valid nests deeper than 3.
const maxDepth = 8

// decodeRequest parses one client frame strictly: one JSON object, known fields,
// bounded nesting.
func decodeRequest(b []byte) (request, *protocolError) {
	var r request
	if perr := checkDepth(b, maxDepth); perr != nil {
		return r, perr
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, invalid("malformed message: %s", describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return r, invalid("malformed message: one JSON object per frame")
	}
	if r.Type == "" {
		return r, invalid(`missing "type"`)
	}
	return r, nil
}

func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Sprintf("field %q has the wrong type", typeErr.Field)
	}
	return err.Error()
}

// checkDepth refuses JSON nested deeper than max, before decoding it.
func checkDepth(b []byte, max int) *protocolError {
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			if depth++; depth > max {
				return invalid("message nested too deeply")
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// channelList returns the channels a subscribe or unsubscribe names.
func (r request) channelList() ([]string, *protocolError) {
	switch {
	case r.Channel != "" && len(r.Channels) > 0:
		return nil, invalid(`give "channel" or "channels", not both`)
	case r.Channel != "":
		return []string{r.Channel}, nil
	case len(r.Channels) > 0:
		return r.Channels, nil
	}
	return nil, invalid(`missing "channel"`)
}

// since parses the optional resume position: a string or a number of digits.
func (r request) since() (int64, bool, *protocolError) {
	if len(r.Since) == 0 || string(r.Since) == "null" {
		return 0, false, nil
	}
	s := string(r.Since)
	if unq, err := strconv.Unquote(s); err == nil {
		s = unq
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false, invalid(`"since" must be an event id`)
	}
	return n, true, nil
}

// subscription builds the hub subscription from filter and actions.
func (r request) subscription() (*events.Subscription, *protocolError) {
	f, err := events.ParseFilter(r.Filter)
	if err != nil {
		return nil, invalid("%s", err.Error())
	}
	a, err := events.ParseActions(r.Actions)
	if err != nil {
		return nil, invalid("%s", err.Error())
	}
	return &events.Subscription{Filter: f, Actions: a}, nil
}

// Server messages. They are built by hand: small, fixed shapes, hot paths.

func msgConnected(userID int64) []byte {
	return []byte(`{"type":"` + wire.TypeConnected + `","message":"WebSocket connection established","userId":` + strconv.FormatInt(userID, 10) + `}`)
}

func msgSubscribed(channel string, position int64) []byte {
	return []byte(`{"type":"` + wire.TypeSubscribed + `","channel":"` + channel + `","position":"` + strconv.FormatInt(position, 10) + `"}`)
}

func msgUnsubscribed(channel string) []byte {
	return []byte(`{"type":"` + wire.TypeUnsubscribed + `","channel":"` + channel + `"}`)
}

func msgResync(channel string) []byte {
	return []byte(`{"type":"` + wire.TypeResyncRequired + `","channel":"` + channel + `"}`)
}

func msgPong(now time.Time) []byte {
	return []byte(`{"type":"` + wire.TypePong + `","timestamp":"` + now.UTC().Format(wire.TimestampFormat) + `"}`)
}

// msgChannelError is an error about one channel the client subscribed to:
// forbidden when its rights to it were revoked.
func msgChannelError(code, channel, message string) []byte {
	b, _ := json.Marshal(struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Channel string `json:"channel"`
		Message string `json:"message"`
	}{wire.TypeError, code, channel, message})
	return b
}

func msgError(code, message string) []byte {
	b, _ := json.Marshal(struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}{wire.TypeError, code, message})
	return b
}
