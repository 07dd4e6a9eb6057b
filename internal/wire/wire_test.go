package wire

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// protocolDirs are the packages that speak the socket protocol: in them, a
// string literal that is exactly a message type or an error code is a second
// spelling of a wire name.
var protocolDirs = []string{"client", "cmd/shopbench", "internal/events", "internal/wsapi"}

// notWireNames are words that are also used, in the protocol packages, for
// something other than the wire: metric and log labels of a closed socket.
var notWireNames = map[string]bool{TypeError: true}

// inlineType is a hand-written message with its type spelled out.
var inlineType = regexp.MustCompile(`"type":\s*"[a-z]`)

// TestWireNamesHaveOneHome reads every non-test Go file of the module outside
// this package and fails on a string literal that spells a wire name itself:
// the channel suffix, the subprotocol, a message written with its type, or,
// in the protocol packages, a message type or error code. Comments may name
// them; tests may keep literal JSON (they check the contract from outside).
func TestWireNamesHaveOneHome(t *testing.T) {
	root := moduleRoot(t)
	exact := map[string]bool{}
	for _, n := range []string{
		TypeSubscribe, TypeUnsubscribe, TypePing, TypeConnected, TypeSubscribed, TypeUnsubscribed,
		TypeEvent, TypeResyncRequired, TypePong, TypeError,
		CodeInvalidRequest, CodeUnknownChannel, CodeForbidden, CodeSubscriptionLimit, CodeRateLimited, CodeInternal,
	} {
		if !notWireNames[n] {
			exact[n] = true
		}
	}
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "internal/wire" || strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		files++
		protocol := false
		for _, dir := range protocolDirs {
			protocol = protocol || filepath.ToSlash(filepath.Dir(rel)) == dir
		}
		for _, lit := range stringLiterals(t, path) {
			v, pos := lit.value, rel+":"+strconv.Itoa(lit.line)
			switch {
			case strings.Contains(v, ChannelSuffix):
				t.Errorf("%s: %q spells the channel suffix: use wire.Channel or wire.ChannelSuffix", pos, v)
			case strings.Contains(v, BatchSubprotocol):
				t.Errorf("%s: %q spells the subprotocol: use wire.BatchSubprotocol", pos, v)
			case inlineType.MatchString(v):
				t.Errorf("%s: %q writes a message type: build it from wire.Type*", pos, v)
			case protocol && exact[v]:
				t.Errorf("%s: %q is a wire name: use the constant of package wire", pos, v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read only %d Go files under %s: the walk missed the module", files, root)
	}
}

type literal struct {
	value string
	line  int
}

func stringLiterals(t *testing.T, path string) []literal {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	var out []literal
	ast.Inspect(f, func(n ast.Node) bool {
		if _, ok := n.(*ast.ImportSpec); ok {
			return false
		}
		if b, ok := n.(*ast.BasicLit); ok && b.Kind == token.STRING {
			if v, err := strconv.Unquote(b.Value); err == nil {
				out = append(out, literal{v, fset.Position(b.Pos()).Line})
			}
		}
		return true
	})
	return out
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the package")
		}
		dir = parent
	}
}

func TestChannelAndEntity(t *testing.T) {
	if got := Channel("order"); got != "order_changes" {
		t.Errorf(`Channel("order") = %q`, got)
	}
	for in, want := range map[string]string{"order_changes": "order", "order": "order", "x_changes_changes": "x_changes"} {
		if got := Entity(in); got != want {
			t.Errorf("Entity(%q) = %q, want %q", in, got, want)
		}
	}
}
