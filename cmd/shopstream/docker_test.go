package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/shopstream/shopstream/internal/pgcluster"
	"github.com/shopstream/shopstream/internal/pgtest"
	"github.com/shopstream/shopstream/internal/waitfor"
)

// No Docker engine runs here: these tests stand in for `docker compose
// config` and `docker build` by loading the files as Docker does (compose-go
// is the loader docker compose uses, schema validation included) and by
// running the image's health check command against the real server.

// runHealth runs `shopstream health args...` with env and returns its stdout
// and error.
func runHealth(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"health"}, args...), func(k string) string { return env[k] },
		strings.NewReader(""), &out, &errOut)
	return out.String(), err
}

func TestHealthCommand(t *testing.T) {
	t.Parallel()
	ctx := waitfor.Context(t)
	cluster, dbURL := ownCluster(ctx, t, pgcluster.Options{FastUnsafe: true})
	s := startServer(t, dbURL, nil)
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	// As in the image: LISTEN_ADDR on every interface, probed on loopback.
	env := map[string]string{"LISTEN_ADDR": "0.0.0.0:" + u.Port()}
	pollReadyz(t, s.URL, http.StatusOK)
	for _, args := range [][]string{nil, {"--ready"}, {"--url", s.URL}, {"--ready", "--url", s.URL}} {
		out, err := runHealth(t, env, args...)
		if err != nil || !strings.HasPrefix(out, "ok: GET "+s.URL+"/") || !strings.Contains(out, ": 200 {") {
			t.Errorf("health %v: %q, %v; want ok and 200", args, out, err)
		}
	}

	// The database goes away: alive, not ready, and the check says why.
	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	pollReadyz(t, s.URL, http.StatusServiceUnavailable)
	expectHeadLikeGet(t, s.URL+"/readyz", http.StatusServiceUnavailable)
	if out, err := runHealth(t, env); err != nil {
		t.Errorf("health with the database down: %v, want ok (the process serves)", err)
	} else if !strings.Contains(out, "/healthz: 200") {
		t.Errorf("health: %q", out)
	}
	_, err = runHealth(t, env, "--ready")
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "not_ready") {
		t.Errorf("health --ready with the database down: %v (exit %d), want exit 1 naming 503 not_ready", err, exitCode(err))
	}
	if err := cluster.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pollReadyz(t, s.URL, http.StatusOK)

	// Nothing listens: exit 1.
	s.Stop(t)
	if _, err := runHealth(t, env); err == nil || exitCode(err) != 1 {
		t.Errorf("health with the server stopped: %v, want exit 1", err)
	}
}

func TestHeadHealthEndpoints(t *testing.T) {
	t.Parallel()
	s := startServer(t, pgtest.NewDB(t), nil)
	pollReadyz(t, s.URL, http.StatusOK)
	for _, p := range []string{"/healthz", "/readyz"} {
		expectHeadLikeGet(t, s.URL+p, http.StatusOK)
	}
}

// expectHeadLikeGet checks that HEAD url answers GET's status (want) and
// Content-Type, without a body.
func expectHeadLikeGet(t *testing.T, url string, want int) {
	t.Helper()
	g := get(t, http.DefaultClient, url)
	g.Body.Close()
	resp, err := http.Head(url)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want || g.StatusCode != want || body.Len() != 0 {
		t.Errorf("HEAD %s: %d with %d body bytes; GET: %d; want %d for both, no body", url, resp.StatusCode, body.Len(), g.StatusCode, want)
	}
	if ct := resp.Header.Get("Content-Type"); ct != g.Header.Get("Content-Type") {
		t.Errorf("HEAD %s Content-Type %q, GET's %q", url, ct, g.Header.Get("Content-Type"))
	}
}

// dockerfile returns the instructions of the repository's Dockerfile, with
// continuation lines joined, as [keyword, rest] pairs.
func dockerfile(t *testing.T) [][2]string {
	t.Helper()
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out [][2]string
	var cont string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if l, ok := strings.CutSuffix(line, `\`); ok {
			cont += l + " "
			continue
		}
		line, cont = cont+line, ""
		kw, rest, _ := strings.Cut(line, " ")
		out = append(out, [2]string{strings.ToUpper(kw), strings.TrimSpace(rest)})
	}
	return out
}

// execForm parses an instruction's JSON array (exec form); nil if it is not one.
func execForm(s string) []string {
	var args []string
	if json.Unmarshal([]byte(s), &args) != nil {
		return nil
	}
	return args
}

func TestDockerfileHealthcheck(t *testing.T) {
	t.Parallel()
	var entrypoint, check []string
	var copied string
	for _, in := range dockerfile(t) {
		switch in[0] {
		case "ENTRYPOINT":
			entrypoint = execForm(in[1])
		case "COPY":
			if f := strings.Fields(in[1]); len(f) == 3 && f[0] == "--from=build" && f[1] == "/out/shopstream" {
				copied = f[2]
			}
		case "HEALTHCHECK":
			_, cmd, ok := strings.Cut(in[1], "CMD ")
			if !ok {
				t.Fatalf("HEALTHCHECK without CMD: %q", in[1])
			}
			if check = execForm(strings.TrimSpace(cmd)); check == nil {
				t.Fatalf("HEALTHCHECK CMD is not the exec form (the image has no shell): %q", cmd)
			}
		}
	}
	if copied == "" || len(entrypoint) == 0 || entrypoint[0] != copied {
		t.Fatalf("ENTRYPOINT %q is not the binary copied into the image (%q)", entrypoint, copied)
	}
	if len(check) < 2 || check[0] != copied || check[1] != "health" {
		t.Fatalf("HEALTHCHECK CMD %q, want [%q, \"health\", ...]", check, copied)
	}

	// The check's own arguments, run against the real server.
	s := startServer(t, pgtest.NewDB(t), nil)
	pollReadyz(t, s.URL, http.StatusOK)
	u, _ := url.Parse(s.URL)
	var out, errOut bytes.Buffer
	env := map[string]string{"LISTEN_ADDR": "0.0.0.0:" + u.Port()}
	if err := run(context.Background(), check[1:], func(k string) string { return env[k] }, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("the HEALTHCHECK command %q fails against a ready server: %v", check, err)
	}
}

// loadCompose loads docker-compose.yml as docker compose would, with env as
// the environment.
func loadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	abs, err := filepath.Abs("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs, Content: b}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("shopstream", true) })
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, map[string]string{})
	pg, ok := p.Services["postgres"]
	if !ok {
		t.Fatal("no postgres service")
	}
	hc := pg.HealthCheck
	if hc == nil || len(hc.Test) < 2 || hc.Test[0] != "CMD" || hc.Test[1] != "pg_isready" {
		t.Fatalf("postgres healthcheck %+v, want [CMD pg_isready ...]", hc)
	}
	// TCP, not the Unix socket the image's first-run setup serves alone.
	if i := slices.Index(hc.Test, "-h"); i < 0 || i+1 >= len(hc.Test) || hc.Test[i+1] != "127.0.0.1" {
		t.Errorf("pg_isready %q does not check TCP (-h 127.0.0.1)", hc.Test)
	}

	app, ok := p.Services["shopstream"]
	if !ok {
		t.Fatal("no shopstream service")
	}
	if dep := app.DependsOn["postgres"]; dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("shopstream depends_on postgres with condition %q, want %q", dep.Condition, types.ServiceConditionHealthy)
	}
	for name, svc := range p.Services {
		if svc.Restart != types.RestartPolicyUnlessStopped && !strings.HasPrefix(svc.Restart, types.RestartPolicyOnFailure) {
			t.Errorf("%s: restart %q, want unless-stopped or on-failure", name, svc.Restart)
		}
		for _, port := range svc.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s:%d on %q, want 127.0.0.1 by default", name, port.Published, port.Target, port.HostIP)
			}
		}
	}
	if len(app.Ports) != 1 || app.Ports[0].Target != 3000 || app.Ports[0].Published != "3000" {
		t.Errorf("shopstream ports %+v, want 127.0.0.1:3000:3000", app.Ports)
	}
	if app.Environment["LISTEN_ADDR"] == nil || *app.Environment["LISTEN_ADDR"] != "0.0.0.0:3000" {
		t.Errorf("shopstream LISTEN_ADDR %v, want 0.0.0.0:3000 (reachable through the published port)", app.Environment["LISTEN_ADDR"])
	}
	if app.HealthCheck != nil && app.HealthCheck.Disable {
		t.Error("the compose file disables the image's health check")
	}

	// The documented override.
	p = loadCompose(t, map[string]string{"SHOPSTREAM_BIND": "0.0.0.0", "SHOPSTREAM_PORT": "8080"})
	if got := p.Services["shopstream"].Ports; len(got) != 1 || got[0].HostIP != "0.0.0.0" || got[0].Published != "8080" {
		t.Errorf("with SHOPSTREAM_BIND and SHOPSTREAM_PORT: %+v", got)
	}
}

// dockerignored reports whether the context path rel (slash-separated) is
// left out by patterns, following .dockerignore's rules: a pattern matches
// the path or one of its parents, "**" any number of directories, a leading
// "!" re-includes, the last match wins.
func dockerignored(patterns []string, rel string) bool {
	ignored := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = path.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/"))
		for q := rel; q != "."; q = path.Dir(q) {
			if globMatch(p, q) {
				ignored = !neg
				break
			}
		}
	}
	return ignored
}

func globMatch(pattern, name string) bool {
	if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
		parts := strings.Split(name, "/")
		for i := range parts {
			if globMatch(rest, strings.Join(parts[i:], "/")) {
				return true
			}
		}
		return false
	}
	ok, _ := path.Match(pattern, name)
	return ok
}

func TestDockerignore(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	for _, out := range []string{".data/pg/PG_VERSION", ".bin/shopstream", ".git/HEAD", "web/client/node_modules/typescript/package.json",
		"node_modules/x", "cmd/shopstream/shopstream.test"} {
		if !dockerignored(patterns, out) {
			t.Errorf(".dockerignore lets %s into the build context", out)
		}
	}
	// What the build needs: the module, every package and what go:embed takes.
	for _, in := range []string{"go.mod", "go.sum", "cmd/shopstream/main.go", "internal/events/hub.go", "client/client.go",
		"migrations/embed.go", "migrations/demo", "web/embed.go", "web/static/index.html", "web/client/shopstream.js", "web/client/shopstream.d.ts"} {
		if dockerignored(patterns, in) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", in)
		}
		if _, err := os.Stat(filepath.Join("../..", in)); err != nil {
			t.Errorf("%s is not in the repository (update this test): %v", in, err)
		}
	}
}
