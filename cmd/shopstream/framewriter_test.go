package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// TestFrameWriterSetting: with WS_FRAME_WRITER unset, coalesced or library,
// a real socket receives the exact event of a write on another connection,
// and one larger than net/http's 4 KiB buffer whole; the log says which
// write path the socket took.
func TestFrameWriterSetting(t *testing.T) {
	for _, tc := range []struct{ value, coalesced string }{
		{"", "coalesced=true"}, {"coalesced", "coalesced=true"}, {"library", "coalesced=false"},
	} {
		t.Run("WS_FRAME_WRITER="+tc.value, func(t *testing.T) {
			t.Parallel()
			s, _, ws := setup(t, map[string]string{"WS_FRAME_WRITER": tc.value})
			ws.subscribe("order_changes")
			app := appConn(t, s.DBURL, "storefront")
			exec(t, app, "SET TimeZone = 'UTC'")
			order := entityCases[0]
			exec(t, app, order.insert)
			expectEvent(t, ws.read(), fmt.Sprintf(`{"channel":"order_changes","event":"order:created","data":%s,"actor":"storefront"}`, order.created))
			notes := strings.Repeat("0123456789", 3000) // a 30 KB frame
			exec(t, app, `UPDATE orders SET notes = $1 WHERE id = 1001`, notes)
			m := ws.read()
			data, _ := m["data"].(map[string]any)
			if m["event"] != "order:updated" || data["notes"] != notes {
				t.Fatalf("want order:updated with %d bytes of notes, got event %v with notes of %d bytes", len(notes), m["event"], len(fmt.Sprint(data["notes"])))
			}
			waitfor.Until(t, "the socket's log line", func() bool { return strings.Contains(s.Log.String(), `msg="socket opened"`) })
			for _, line := range strings.Split(s.Log.String(), "\n") {
				if strings.Contains(line, `msg="socket opened"`) && !strings.Contains(line, tc.coalesced) {
					t.Errorf("socket opened without %s: %s", tc.coalesced, line)
				}
			}
		})
	}
}

// TestFrameWriterBadValue: serve refuses to start with a WS_FRAME_WRITER
// that is neither coalesced nor library, and says why.
func TestFrameWriterBadValue(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	env := map[string]string{"DATABASE_URL": db, "LISTEN_ADDR": "127.0.0.1:0", "WS_FRAME_WRITER": "plain"}
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), waitfor.Deadline)
	defer cancel()
	err := run(ctx, []string{"serve"}, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `WS_FRAME_WRITER: want coalesced or library, got "plain"`) {
		t.Fatalf("serve with WS_FRAME_WRITER=plain: %v, want the config error", err)
	}
}
