package client

import (
	"strings"
	"testing"
	"time"
)

const updateMsg = `{"type":"event","id":"1043","channel":"order_changes","event":"order:updated",` +
	`"data":{"id":123,"status":"processing","changed_fields":{"status":"processing"}},` +
	`"previous":{"status":"pending"},"actor":"warehouse-sync","timestamp":"2026-01-25T10:30:00.000Z"}`

func TestDecodeBatchedFrame(t *testing.T) {
	frame := `{"type":"subscribed","channel":"order_changes","position":"1042"}` + "\n\n" +
		updateMsg + "\n" + `{"type":"resync_required","channel":"order_changes"}` + "\n"
	msgs, err := decodeFrame([]byte(frame))
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, m := range msgs {
		types = append(types, m.Type)
	}
	if got := strings.Join(types, ","); got != "subscribed,event,resync_required" {
		t.Fatalf("types: %s", got)
	}
	if msgs[0].Position != "1042" || string(msgs[1].raw) != updateMsg {
		t.Errorf("messages: %+v", msgs)
	}
}

func TestDecodeEvent(t *testing.T) {
	msgs, err := decodeFrame([]byte(updateMsg))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := msgs[0].event()
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 1, 25, 10, 30, 0, 0, time.UTC)
	if ev.ID != 1043 || ev.Channel != "order_changes" || ev.Entity != "order" || ev.Action != ActionUpdated ||
		ev.Name() != "order:updated" || ev.Actor != "warehouse-sync" || !ev.Timestamp.Equal(want) {
		t.Errorf("event: %+v", ev)
	}
	// Without a top-level changed_fields, Changed is data's.
	if string(ev.Changed) != `{"status":"processing"}` || string(ev.Previous) != `{"status":"pending"}` || string(ev.Raw) != updateMsg {
		t.Errorf("changed %s previous %s raw %s", ev.Changed, ev.Previous, ev.Raw)
	}

	// A table with a changed_fields column: shopstream's are at the top level.
	top := `{"type":"event","id":"7","channel":"order_changes","event":"order:updated",` +
		`"data":{"id":1,"changed_fields":"a column"},"changed_fields":{"notes":"x"},"previous":{"notes":null},"timestamp":"2026-01-25T10:30:00.000Z"}`
	msgs, _ = decodeFrame([]byte(top))
	if ev, err = msgs[0].event(); err != nil || string(ev.Changed) != `{"notes":"x"}` {
		t.Errorf("top-level changed_fields: %s, %v", ev.Changed, err)
	}
	created := `{"type":"event","id":"8","channel":"product_changes","event":"product:created","data":{"id":2},"timestamp":"2026-01-25T10:30:00.000Z"}`
	msgs, _ = decodeFrame([]byte(created))
	if ev, err = msgs[0].event(); err != nil || ev.Changed != nil || ev.Previous != nil || ev.Actor != "" {
		t.Errorf("created: %+v, %v", ev, err)
	}
}

func TestDecodeBadMessages(t *testing.T) {
	for _, frame := range []string{
		`not json`,
		`{"type":"subscribed"}` + "\n" + `{"type":`,
		`[1,2]`,
		`{"type":"event","id":1043}`,
	} {
		if _, err := decodeFrame([]byte(frame)); err == nil {
			t.Errorf("%q: want an error", frame)
		}
	}
	for _, msg := range []string{
		`{"type":"event","id":"x","channel":"c","event":"order:updated","timestamp":"2026-01-25T10:30:00.000Z"}`,
		`{"type":"event","id":"-4","channel":"c","event":"order:updated","timestamp":"2026-01-25T10:30:00.000Z"}`,
		`{"type":"event","id":"4","channel":"c","event":"orderupdated","timestamp":"2026-01-25T10:30:00.000Z"}`,
		`{"type":"event","id":"4","channel":"c","event":"order:updated","timestamp":"yesterday"}`,
		`{"type":"event","id":"4","channel":"c","event":"order:updated","data":[1],"timestamp":"2026-01-25T10:30:00.000Z"}`,
	} {
		msgs, err := decodeFrame([]byte(msg))
		if err != nil {
			t.Fatalf("%s: %v", msg, err)
		}
		if _, err := msgs[0].event(); err == nil {
			t.Errorf("%s: want an event error", msg)
		}
	}
}

func TestDecodeRevocation(t *testing.T) {
	frame := `{"type":"error","code":"forbidden","channel":"customer_changes","message":"your role may no longer read customer_changes"}`
	msgs, err := decodeFrame([]byte(frame))
	if err != nil {
		t.Fatal(err)
	}
	if m := msgs[0]; m.Type != TypeError || m.Code != CodeForbidden || m.Channel != "customer_changes" || m.Message == "" {
		t.Errorf("revocation: %+v", m)
	}
}

func TestFullJitterBounds(t *testing.T) {
	delay := FullJitter(time.Second, 30*time.Second)
	for n := -1; n < 100; n++ {
		d := delay(n)
		ceil := min(30*time.Second, time.Second<<min(max(n, 0), 5))
		if d < 0 || d >= ceil {
			t.Errorf("attempt %d: %s outside [0, %s)", n, d, ceil)
		}
	}
	if d := FullJitter(0, time.Second)(3); d != 0 {
		t.Errorf("a zero minimum: %s", d)
	}
}

// FuzzDecodeFrame feeds untrusted frames to the decoder: it must not panic,
// and whatever it returns as an event must keep its invariants.
func FuzzDecodeFrame(f *testing.F) {
	f.Add([]byte(updateMsg))
	f.Add([]byte(`{"type":"subscribed","channel":"order_changes","position":"1"}` + "\n" + updateMsg))
	f.Add([]byte(`{"type":"error","code":"forbidden","channel":"x","message":"m"}`))
	f.Add([]byte("\n\n{}\n"))
	f.Fuzz(func(t *testing.T, frame []byte) {
		msgs, _ := decodeFrame(frame)
		for _, m := range msgs {
			if strings.Contains(string(m.raw), "\n") {
				t.Fatalf("a message spans lines: %q", m.raw)
			}
			if m.Type != TypeEvent {
				continue
			}
			ev, err := m.event()
			if err != nil {
				continue
			}
			if ev.ID <= 0 || ev.Entity == "" || ev.Action == "" || len(ev.Raw) == 0 {
				t.Fatalf("bad event %+v from %q", ev, m.raw)
			}
		}
	})
}

func TestDecodeEventMessage(t *testing.T) {
	ev, err := DecodeEvent([]byte(updateMsg))
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != 1043 || ev.Name() != "order:updated" || string(ev.Changed) != `{"status":"processing"}` || string(ev.Raw) != updateMsg {
		t.Errorf("event: %+v", ev)
	}
	if got := ev.Timestamp.UTC().Format(TimestampFormat); got != "2026-01-25T10:30:00.000Z" {
		t.Errorf("timestamp formats back as %s", got)
	}
	for _, bad := range []string{
		``,
		`{"type":"subscribed","channel":"order_changes","position":"1"}`,
		updateMsg + "\n" + updateMsg,
		`{"type":"event","id":"x","event":"order:updated","timestamp":"2026-01-25T10:30:00.000Z"}`,
		`not json`,
	} {
		if ev, err := DecodeEvent([]byte(bad)); err == nil {
			t.Errorf("DecodeEvent(%q) = %+v, want an error", bad, ev)
		}
	}
}

func TestFields(t *testing.T) {
	fields, err := Fields([]byte(`{"sku":"TEA-9","id":9,"tags":["a",{"b":1}],"sku":"again","price":null}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fields {
		got = append(got, f.Name+"="+string(f.Value))
	}
	if want := `sku="TEA-9" id=9 tags=["a",{"b":1}] sku="again" price=null`; strings.Join(got, " ") != want {
		t.Errorf("fields in order:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if v, ok := Lookup(fields, "sku"); !ok || string(v) != `"TEA-9"` {
		t.Errorf(`Lookup(sku) = %s, %v: want the first`, v, ok)
	}
	if _, ok := Lookup(fields, "missing"); ok {
		t.Error("Lookup found a field that is not there")
	}
	for _, empty := range []string{``, `null`, `{}`} {
		if f, err := Fields([]byte(empty)); err != nil || len(f) != 0 {
			t.Errorf("Fields(%q) = %v, %v: want none", empty, f, err)
		}
	}
	for _, bad := range []string{`[1]`, `"x"`, `{"a":}`, `{"a":1`} {
		if f, err := Fields([]byte(bad)); err == nil {
			t.Errorf("Fields(%q) = %v, want an error", bad, f)
		}
	}
}
