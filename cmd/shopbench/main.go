// Command shopbench is shopstream's benchmark suite: it starts the real server
// as a subprocess against DATABASE_URL (make bench runs it under cmd/devdb),
// drives it from this process, and writes docs/benchmarks.md and
// docs/latency.svg.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shopstream/shopstream/internal/wire"
)

const (
	benchEmail    = "bench@example.com"
	benchPassword = "shopbench-password-1"
)

type options struct {
	quick      bool
	bin        string
	out        string
	svg        string
	gobench    string
	scenarios  string
	levelDur   time.Duration
	pgbenchDur int
	sockets    []int
	rates      []int
	bulkRows   int
	idleSocks  int
	msgBudget  int
	// customLevels: -sockets or -rates was given, so the fixed extra level is left out
	customLevels bool
	cpuProfile   string
	logins       int
}

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "relay" || os.Args[1] == "write") {
		run := runRelay
		if os.Args[1] == "write" {
			run = runWriterProc
		}
		if err := run(); err != nil {
			fmt.Fprintln(os.Stderr, "shopbench:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	var sockets, rates string
	flag.BoolVar(&o.quick, "quick", false, "shorter runs: pgbench 5 s, levels 3 s, 100 and 1,000 sockets, 1,000 idle sockets, 20,000 bulk rows")
	flag.StringVar(&o.bin, "bin", ".bin/shopstream", "the shopstream binary")
	flag.StringVar(&o.out, "out", "docs/benchmarks.md", "report file")
	flag.StringVar(&o.svg, "svg", "docs/latency.svg", "latency plot")
	flag.StringVar(&o.gobench, "gobench", "", "file with the output of the Go benchmarks to include")
	flag.StringVar(&o.scenarios, "scenarios", "write,fanout,idle,bulk,bigrows,logins", "comma-separated scenarios to run")
	flag.IntVar(&o.logins, "logins", 1000, "concurrent logins of the login flood")
	flag.StringVar(&sockets, "sockets", "", "socket counts for fan-out (default 100,1000,10000; -quick 100,1000)")
	flag.StringVar(&rates, "rates", "100,1000,5000,0", "offered events/s per fan-out level; 0 is unthrottled (saturation)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this load generator to the file")
	idle := flag.Int("idle", 0, "idle sockets of the idle scenario (default 10,000; -quick 1,000)")
	flag.IntVar(&o.msgBudget, "msgs", 0, "messages (events × sockets) a fan-out level may ask for, twice that with batch (default 1,500,000; -quick 400,000)")
	flag.Parse()
	if o.msgBudget == 0 {
		o.msgBudget = 1500000
		if o.quick {
			o.msgBudget = 400000
		}
	}
	o.levelDur, o.pgbenchDur, o.bulkRows, o.idleSocks = 10*time.Second, 20, 100000, 10000
	o.customLevels = sockets != "" || rates != "100,1000,5000,0"
	if sockets == "" {
		sockets = "100,1000,10000"
		if o.quick {
			sockets = "100,1000"
		}
	}
	if o.quick {
		o.levelDur, o.pgbenchDur, o.bulkRows, o.idleSocks = 3*time.Second, 5, 20000, 1000
	}
	if *idle > 0 {
		o.idleSocks = *idle
	}
	o.sockets = intList(sockets)
	o.rates = intList(rates)
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "shopbench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "shopbench:", err)
		os.Exit(1)
	}
}

func intList(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			n, err := strconv.Atoi(f)
			if err != nil {
				fmt.Fprintln(os.Stderr, "shopbench: bad number", f)
				os.Exit(2)
			}
			out = append(out, n)
		}
	}
	return out
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s shopbench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// epoch is when this process started (it names the run's markers).
var epoch = time.Now()

// now is CLOCK_MONOTONIC in ns: the one clock of every process on this
// machine, so the writer process's commit times and this process's arrivals
// compare directly. The wall clock does not do: a virtual machine's clock
// stepped 15 s between the two processes' starts once, and every latency of
// that run came out near -15 s.
func now() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(fmt.Sprintf("clock_gettime(CLOCK_MONOTONIC): %v", err))
	}
	return ts.Nano()
}

// runNonce ends every marker of this run (see eventMarker).
var runNonce = "." + strconv.FormatInt(epoch.UnixNano(), 36)

func run(o options) error {
	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		return errors.New("DATABASE_URL is not set (run under .bin/devdb)")
	}
	raiseNofile()
	ctx := context.Background()
	rep := &report{opts: o, started: time.Now()}
	rep.collectEnv(ctx, dbURL)

	if out, err := shopstreamCmd(o.bin, dbURL, "migrate", "--demo"); err != nil {
		return fmt.Errorf("migrate: %v\n%s", err, out)
	}
	if out, err := shopstreamCmd(o.bin, dbURL, "admin", "create", "--email", benchEmail, "--name", "Bench", "--role", "admin", "--password", benchPassword); err != nil {
		if out2, err2 := shopstreamCmd(o.bin, dbURL, "admin", "passwd", "--email", benchEmail, "--password", benchPassword); err2 != nil {
			return fmt.Errorf("admin create: %v\n%s\n%s", err, out, out2)
		}
	}
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer db.Close(ctx)
	if err := seedOrders(ctx, db); err != nil {
		return fmt.Errorf("seeding orders: %w", err)
	}
	srv, err := startServer(o.bin, dbURL)
	if err != nil {
		return err
	}
	defer func() { srv.stop() }()
	want := map[string]bool{}
	for _, s := range strings.Split(o.scenarios, ",") {
		want[strings.TrimSpace(s)] = true
	}

	if want["write"] {
		logf("scenario 1: write path")
		rep.write, err = writePath(ctx, o, db, dbURL, &srv)
		if err != nil {
			rep.errs = append(rep.errs, "write path: "+err.Error())
			logf("write path: %v", err)
		}
		rep.write.attachedAtEnd = triggersAttached(ctx, db)
	}
	if want["fanout"] {
		logf("scenario 2: fan-out")
		rep.fanout, rep.profile, err = fanout(ctx, o, srv, dbURL)
		if err != nil {
			rep.errs = append(rep.errs, "fan-out: "+err.Error())
			logf("fan-out: %v", err)
		}
		logf("scenario 2b: fan-out, the baseline (pg_notify trigger and a minimal relay)")
		rep.baseline, err = baselineFanout(ctx, o, dbURL)
		if err != nil {
			rep.errs = append(rep.errs, "baseline fan-out: "+err.Error())
			logf("baseline fan-out: %v", err)
		}
	}
	if want["idle"] {
		logf("scenario 3: quiet service and idle memory (fresh server)")
		srv.stop()
		if srv, err = startServer(o.bin, dbURL); err != nil {
			return err
		}
		rep.idle, err = idleMemory(ctx, o, srv, db)
		if err != nil {
			rep.errs = append(rep.errs, "idle memory: "+err.Error())
			logf("idle memory: %v", err)
		}
	}
	if want["bulk"] {
		logf("scenario 4: bulk")
		rep.bulk, err = bulk(ctx, o, srv, db)
		if err != nil {
			rep.errs = append(rep.errs, "bulk: "+err.Error())
			logf("bulk: %v", err)
		}
	}
	if want["bigrows"] {
		logf("scenario 5: big rows (fresh server)")
		srv.stop() // the instance that orders the log applies its own MAX_EVENT_BYTES
		rep.bigrows, err = bigRows(ctx, o, dbURL, db)
		if err != nil {
			rep.errs = append(rep.errs, "big rows: "+err.Error())
			logf("big rows: %v", err)
		}
	}
	if want["logins"] {
		logf("scenario 7: login flood (fresh server)")
		srv.stop()
		rep.logins, err = logins(ctx, o, dbURL)
		if err != nil {
			rep.errs = append(rep.errs, "login flood: "+err.Error())
			logf("login flood: %v", err)
		}
	}
	rep.finished = time.Now()
	if o.gobench != "" {
		if b, err := os.ReadFile(o.gobench); err == nil {
			rep.gobench = string(b)
		}
	}
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(o.svg, []byte(latencySVG(rep.fanout)), 0o644); err != nil {
		return err
	}
	md := rep.markdown()
	if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
		return err
	}
	logf("wrote %s and %s", o.out, o.svg)
	return nil
}

func raiseNofile() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		logf("getrlimit: %v", err)
		return
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		logf("setrlimit: %v", err)
	}
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	logf("RLIMIT_NOFILE %d", l.Cur)
}

func shopstreamCmd(bin, dbURL string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "LOG_LEVEL=warn")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// seedOrders makes sure orders 1..10000 exist.
func seedOrders(ctx context.Context, db *pgx.Conn) error {
	_, err := db.Exec(ctx, `INSERT INTO public.orders (id, order_number, total, customer_id)
		SELECT g, 'BENCH-' || g, (g % 500) + 0.99, g % 1000 FROM generate_series(1, 10000) g
		ON CONFLICT (id) DO NOTHING`)
	if err != nil {
		return err
	}
	_, err = db.Exec(ctx, `SELECT setval(pg_get_serial_sequence('public.orders', 'id'), greatest(10000, (SELECT max(id) FROM public.orders)))`)
	return err
}

// server is the shopstream subprocess.
type server struct {
	cmd       *exec.Cmd
	pid       int
	base      string // http://127.0.0.1:port
	debug     string // 127.0.0.1:port for pprof
	cookie    string // "name=value"
	stderr    *bytes.Buffer
	exited    chan struct{}
	stopped   bool
	cookieHdr http.Header
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startServer(bin, dbURL string, extraEnv ...string) (*server, error) {
	return startProc(bin, []string{"serve"}, dbURL, extraEnv...)
}

// startProc starts bin with args as a server on a free port, waits for its
// /readyz and logs in.
func startProc(bin string, args []string, dbURL string, extraEnv ...string) (*server, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	dbg, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{base: "http://" + addr, debug: dbg, stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "LISTEN_ADDR="+addr, "SHOPSTREAM_ENV=development",
		"LOG_LEVEL=warn", "DEBUG_ADDR="+dbg, "WS_SEND_QUEUE=65536",
		// one session for every socket (the brief): lift the per-user and per-instance caps
		"WS_MAX_SOCKETS_PER_USER=1000000", "WS_MAX_SOCKETS=1000000")
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdout = io.Discard
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.cmd, s.pid = cmd, cmd.Process.Pid
	go func() { _ = cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-s.exited:
			return nil, errors.New("server exited during start")
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("server not ready after 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.login(); err != nil {
		s.stop()
		return nil, err
	}
	logf("server pid %d on %s (pprof on %s)", s.pid, addr, dbg)
	return s, nil
}

func (s *server) login() error {
	body, _ := json.Marshal(map[string]string{"email": benchEmail, "password": benchPassword})
	req, _ := http.NewRequest("POST", s.base+wire.LoginPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("login: %d %s", resp.StatusCode, b)
	}
	for _, c := range resp.Cookies() {
		if c.Value != "" {
			s.cookie = c.Name + "=" + c.Value
		}
	}
	if s.cookie == "" {
		return errors.New("login: no cookie")
	}
	s.cookieHdr = http.Header{"Cookie": {s.cookie}}
	return nil
}

func (s *server) stop() {
	if s == nil || s.stopped {
		return
	}
	s.stopped = true
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// procCPU returns utime+stime of pid in seconds.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// fields after the ")" of comm: state is field 3; utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

func procPPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// procStatusKiB returns a field of /proc/PID/status in KiB (VmRSS, VmHWM).
func procStatusKiB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line[len(field)+1:])
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// pgCPU sums the CPU seconds of the postmaster and all its children.
func pgCPU(postmaster int) float64 {
	if postmaster == 0 {
		return 0
	}
	total := procCPU(postmaster)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if procPPID(pid) == postmaster {
			total += procCPU(pid)
		}
	}
	return total
}

// findPostmaster returns the PID of the postmaster db is connected to (the
// parent of its backend), when it runs on this machine.
func findPostmaster(ctx context.Context, db *pgx.Conn) int {
	var backend int
	if err := db.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return 0
	}
	return procPPID(backend)
}
