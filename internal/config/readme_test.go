package config

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeListsEveryVariable keeps the README's Configuration table and
// Vars in step: every variable is a row, with its default.
func TestReadmeListsEveryVariable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, v := range Vars {
		row := "| `" + v.Name + "` |"
		i := strings.Index(readme, row)
		if i < 0 {
			t.Errorf("README's Configuration table has no row for %s", v.Name)
			continue
		}
		line, _, _ := strings.Cut(readme[i:], "\n")
		if v.Default != "" && !strings.HasPrefix(v.Default, "(") && !strings.Contains(line, "`"+strings.Fields(v.Default)[0]+"`") {
			t.Errorf("README's row for %s does not show the default %q: %s", v.Name, v.Default, line)
		}
	}
}
