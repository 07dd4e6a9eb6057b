package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeQuote marks a README code block as a verbatim excerpt of a file of the
// repository: <!-- quote: examples/react-dashboard/src/Live.tsx --> on the
// line before the fence.
var readmeQuote = regexp.MustCompile("(?s)<!-- quote: (\\S+) -->\n```[a-z]*\n(.*?)\n```")

// readmeSnippet is any tsx or ts block, with the quote marker before it if any.
var readmeSnippet = regexp.MustCompile("(?s)(<!-- quote: \\S+ -->\n)?```(?:tsx|ts)\n(.*?)\n```")

// readmeQuoteProblems checks readme against the files under root: every
// quoted block is whole lines of its file, verbatim; every file of mustQuote
// is quoted; and no React or Vite snippet stands unmarked (it would drift).
func readmeQuoteProblems(readme []byte, root string, mustQuote []string) []string {
	var problems []string
	quoted := map[string]bool{}
	for _, m := range readmeQuote.FindAllSubmatch(readme, -1) {
		path, block := string(m[1]), string(m[2])
		quoted[path] = true
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(path)))
		if err != nil {
			problems = append(problems, "README quotes "+path+": "+err.Error())
			continue
		}
		if !strings.Contains("\n"+string(src), "\n"+block+"\n") {
			problems = append(problems, "README's quote of "+path+" is not whole lines of the file, verbatim:\n"+block)
		}
	}
	for _, path := range mustQuote {
		if !quoted[path] {
			problems = append(problems, "README does not quote "+path)
		}
	}
	for _, m := range readmeSnippet.FindAllSubmatch(readme, -1) {
		body := string(m[2])
		if len(m[1]) == 0 && (strings.Contains(body, "useShopstream") || strings.Contains(body, "defineConfig")) {
			problems = append(problems, "README has a React or Vite snippet that quotes no file:\n"+body)
		}
	}
	return problems
}

// TestReadmeQuotes: the README's React snippets are the example app's code
// (examples/react-dashboard), verbatim, so the README shows what
// TestReactExample runs. The doctored copies show the check catches a drift.
func TestReadmeQuotes(t *testing.T) {
	t.Parallel()
	const root = "../.."
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	must := []string{"examples/react-dashboard/src/Live.tsx", "examples/react-dashboard/vite.config.ts"}

	t.Run("README", func(t *testing.T) {
		for _, p := range readmeQuoteProblems(readme, root, must) {
			t.Error(p)
		}
	})

	// The quoted line of Live.tsx every doctored copy changes.
	const line = "    storage: sessionStorage, // a reload resumes where the page stopped\n"
	if n := strings.Count(string(readme), line); n != 1 {
		t.Fatalf("README holds the line %q %d times, want once (the doctored copies change it)", line, n)
	}
	doctored := []struct {
		name   string
		readme string
		live   string // Live.tsx's text, "" for the real file
		want   string
	}{
		{"the README's snippet drifts", strings.Replace(string(readme), line, "    storage: localStorage,\n", 1), "", "quote of examples/react-dashboard/src/Live.tsx is not"},
		{"the example's code drifts", string(readme), "storage: localStorage", "quote of examples/react-dashboard/src/Live.tsx is not"},
		{"a snippet loses its marker", strings.Replace(string(readme), "<!-- quote: examples/react-dashboard/src/Live.tsx -->\n", "", 1), "", "quotes no file"},
		{"a quoted file is gone", strings.Replace(string(readme), "quote: examples/react-dashboard/vite.config.ts", "quote: examples/react-dashboard/vite.config.js", 1), "", "vite.config.js: open"},
	}
	for _, tc := range doctored {
		t.Run(tc.name, func(t *testing.T) {
			dir := root
			if tc.live != "" {
				dir = doctoredExample(t, root, strings.TrimSpace(line), tc.live)
			}
			problems := readmeQuoteProblems([]byte(tc.readme), dir, must)
			if !strings.Contains(strings.Join(problems, "\n"), tc.want) {
				t.Errorf("the doctored copy passes the check (problems: %q), want one with %q", problems, tc.want)
			}
		})
	}
}

// doctoredExample copies the example's quoted files into a temporary tree,
// Live.tsx with old replaced by repl, and returns the tree's root.
func doctoredExample(t *testing.T, root, old, repl string) string {
	t.Helper()
	dir := t.TempDir()
	for _, path := range []string{"examples/react-dashboard/src/Live.tsx", "examples/react-dashboard/vite.config.ts"} {
		b, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(path, "Live.tsx") {
			if !strings.Contains(string(b), old) {
				t.Fatalf("%s lacks %q", path, old)
			}
			b = []byte(strings.Replace(string(b), old, repl, 1))
		}
		dst := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
