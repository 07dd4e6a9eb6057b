package config

import (
	"strings"
	"testing"
)

// WS_FRAME_WRITER is coalesced unless set to library; any other value is an
// error naming the variable and the choices.
func TestFrameWriter(t *testing.T) {
	get := func(v string) func(string) string {
		return func(k string) string {
			if k == "WS_FRAME_WRITER" {
				return v
			}
			return ""
		}
	}
	for v, want := range map[string]string{"": "coalesced", "coalesced": "coalesced", " library ": "library"} {
		c, err := Load(get(v))
		if err != nil {
			t.Fatalf("WS_FRAME_WRITER=%q: %v", v, err)
		}
		if c.FrameWriter != want {
			t.Errorf("WS_FRAME_WRITER=%q: FrameWriter %q, want %q", v, c.FrameWriter, want)
		}
	}
	for _, v := range []string{"Library", "plain", "coalesced,library"} {
		_, err := Load(get(v))
		if err == nil || !strings.Contains(err.Error(), "WS_FRAME_WRITER: want coalesced or library") {
			t.Errorf("WS_FRAME_WRITER=%q: err %v", v, err)
		}
	}
}
