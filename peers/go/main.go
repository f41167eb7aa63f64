// echo-go - the echo server (RFC 862) as a Go programmer writes it: a goroutine per
// connection, on the net package.
//
// How it works
//
//	The main goroutine accepts; every connection gets a goroutine that reads up to 16 KiB,
//	writes it all back and repeats until the client half-closes (Read returns io.EOF) or the
//	connection fails. The code has the shape of the thread-per-connection server of
//	servers/thread.c, but the "blocking" calls only park the goroutine: underneath, the Go
//	runtime puts every socket in non-blocking mode, registers it with one epoll instance (the
//	netpoller) and runs the goroutines that became ready on a few OS threads (GOMAXPROCS, one
//	per CPU). So it is an event loop that looks like threads: a goroutine starts with a stack of a
//	few KiB that grows on demand, and a switch between goroutines is a function call in user
//	space, not a trip through the kernel's scheduler.
//
//	Back-pressure comes for free: while a client does not read its echo, Write blocks, so the
//	goroutine reads nothing more from that client and the kernel's buffers stop it.
//	SIGPIPE cannot kill the process: Go turns a write to a closed socket into an EPIPE error.
//
//	Stopping: SIGINT or SIGTERM closes the listener (Accept returns an error), then every
//	tracked connection (a blocked Read or Write returns at once), waits for the goroutines,
//	prints the summary and exits 0.
//
// What limits it
//
//	Every connection costs a goroutine - its stack, a few KiB that grow on demand - and a
//	16 KiB buffer whose pages cost memory once a read has touched them (an idle connection:
//	about 4.4 KiB, docs/peers.md). The Go scheduler and the garbage collector cost CPU the C
//	models do not pay. Accept does not retry when descriptors run out: it returns EMFILE, and
//	this server then waits 50 ms before accepting again (counted as accept_pauses=).
//
// Try it
//
//	echo-go --model go --port 7007 &
//	nc 127.0.0.1 7007                      # type; every line comes back
//	ls /proc/$(pgrep echo-go)/task         # a few OS threads, however many clients
//
// The command line and the protocol are echo-server's (docs/peers.md, docs/protocol.md).
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const (
	prog         = "echo-go"
	modelName    = "go"
	summary      = "a goroutine per connection on the net package (Go runtime netpoller)"
	bufSize      = 16 << 10 // ECHO_BUF_SIZE, as for every C model
	acceptPause  = 50 * time.Millisecond
	stopGrace    = 800 * time.Millisecond // how long a stop waits for the goroutines
	maxCostUS    = 1000000
	maxCostEvery = 1000000
	fdCeiling    = 1 << 20 // what echo-server raises RLIMIT_NOFILE to when privileged
)

func usage() {
	fmt.Printf(`Usage: %s --model go [options]
       %s --list [--json]

An RFC 862 echo server written in Go: a goroutine per connection. Once listening it prints
  listening on HOST:PORT model=go pid=PID
SIGINT or SIGTERM stops it: it closes the listener and every connection, prints a one-line
summary on stderr and exits 0.

Options:
  -m, --model NAME     must be "go"
  -H, --host ADDR      address to listen on, IPv4 or IPv6 (default 127.0.0.1)
  -p, --port N         TCP port, 0 = any free port (default 7007)
      --max-fds N      descriptor limit (RLIMIT_NOFILE); default: as high as allowed
      --msg-size S     the stream is made of S-byte messages (e.g. 128 or 4k)
      --work-us N      each complete message costs N us of CPU (thread CPU clock)
      --sleep-us N     each complete message then waits N us; both need --msg-size
      --cost-every N   only every Nth message of a connection costs (1 to 1,000,000;
                       default 1): message k costs when k %% N == 0, counted from 1 per
                       connection; needs --msg-size and --work-us or --sleep-us
  -l, --list           list the model; --json: as JSON, like echo-server --list --json
  -h, --help           show this help
`, prog, prog)
}

func usageError(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "%s: %s\n", prog, fmt.Sprintf(format, args...))
	os.Exit(2)
}

type config struct {
	host                     string
	port                     int
	maxFDs                   int
	msgSize, workUS, sleepUS int
	costEvery                int // 0: not given (every message costs)
}

// parseUint reads N or, with suffixes, a size such as 4k (x1024) or 1m.
func parseUint(opt, s string, min, max int, sizes bool) int {
	mult := 1
	if sizes && len(s) > 1 {
		switch s[len(s)-1] {
		case 'k', 'K':
			mult, s = 1<<10, s[:len(s)-1]
		case 'm', 'M':
			mult, s = 1<<20, s[:len(s)-1]
		}
	}
	v, err := strconv.Atoi(s)
	// Digits only (Atoi also takes a sign), and the range checked before multiplying: v*mult
	// wraps around for a large v (18014398509481985k would read as 1024).
	if err != nil || s[0] == '+' || s[0] == '-' || v > max/mult || v*mult < min {
		usageError("%s: '%s' is not a number from %d to %d", opt, s, min, max)
	}
	return v * mult
}

func parseArgs(args []string) config {
	cfg := config{host: "127.0.0.1", port: 7007}
	model, list, json := "", false, false
	for i := 0; i < len(args); i++ {
		opt, val, hasVal := args[i], "", false
		if strings.HasPrefix(opt, "--") {
			if eq := strings.IndexByte(opt, '='); eq > 0 {
				opt, val, hasVal = opt[:eq], opt[eq+1:], true
			}
		}
		value := func() string {
			if hasVal {
				return val
			}
			if i+1 >= len(args) {
				usageError("option '%s' needs a value", opt)
			}
			i++
			return args[i]
		}
		switch opt {
		case "-m", "--model":
			model = value()
		case "-H", "--host":
			cfg.host = value()
		case "-p", "--port":
			cfg.port = parseUint("--port", value(), 0, 65535, false)
		case "--max-fds":
			cfg.maxFDs = parseUint("--max-fds", value(), 16, fdCeiling, false)
		case "--msg-size":
			cfg.msgSize = parseUint("--msg-size", value(), 1, 1<<26, true)
		case "--work-us":
			cfg.workUS = parseUint("--work-us", value(), 0, maxCostUS, false)
		case "--sleep-us":
			cfg.sleepUS = parseUint("--sleep-us", value(), 0, maxCostUS, false)
		case "--cost-every":
			cfg.costEvery = parseUint("--cost-every", value(), 1, maxCostEvery, false)
		case "-l", "--list":
			list = true
		case "--json":
			json = true
		case "-h", "--help":
			usage()
			os.Exit(0)
		default:
			if strings.HasPrefix(opt, "-") {
				usageError("unknown option '%s'", opt)
			}
			usageError("unexpected argument '%s'", opt)
		}
		if hasVal && (opt == "-l" || opt == "--list" || opt == "--json") {
			usageError("option '%s' takes no value", opt)
		}
	}
	if json && !list {
		usageError("--json goes with --list")
	}
	if list {
		printList(json)
		os.Exit(0)
	}
	if model == "" {
		usageError("--model is required; --list shows the models")
	}
	if model != modelName {
		usageError("unknown model '%s'; this server is the '%s' peer", model, modelName)
	}
	if (cfg.workUS > 0 || cfg.sleepUS > 0) && cfg.msgSize == 0 {
		usageError("--work-us and --sleep-us need --msg-size")
	}
	if cfg.costEvery > 0 && (cfg.msgSize == 0 || (cfg.workUS == 0 && cfg.sleepUS == 0)) {
		usageError("--cost-every needs --msg-size and a cost (--work-us or --sleep-us)")
	}
	return cfg
}

// printList writes the model the way `echo-server --list [--json]` writes its models.
func printList(json bool) {
	if !json {
		fmt.Printf("%-13s %-11s %-9s %-9s %s\n", "MODEL", "KIND", "THREADS", "MAX_CONNS", "SUMMARY")
		fmt.Printf("%-13s %-11s %-9s %-9s %s\n", modelName, "threads", "-", "-", summary)
		return
	}
	fmt.Printf(`{
  "version": 1,
  "models": [
    {
      "name": "%s",
      "summary": "%s",
      "kind": "threads",
      "threads_meaning": null,
      "serves_one_connection_per_thread": false,
      "default_threads": null,
      "max_connections": 0,
      "kernel_limits": [],
      "listener_per_thread": false,
      "supports_costs": true
    }
  ]
}
`, modelName, summary)
}

// setFDLimit applies --max-fds, or raises the limit the way echo-server does for every model:
// to 1,048,576 (or fs.nr_open) when privileged, else the soft limit to the hard one.
func setFDLimit(n int) error {
	if n > 0 {
		return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: uint64(n), Max: uint64(n)})
	}
	want := uint64(fdCeiling)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && v < want {
			want = v
		}
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return nil
	}
	if rl.Max < want && syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}) == nil {
		return nil
	}
	if rl.Cur < rl.Max { // Go 1.19 already does this at start-up; harmless to repeat
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	return nil
}

// --- the per-message cost (docs/protocol.md) ------------------------------------------------

type costs struct {
	msgSize  int
	every    int // message k of a connection (from 1) costs when k % every == 0
	work     time.Duration
	sleep    time.Duration
	aborted  atomic.Bool   // set once, at stop: a cost in progress ends early
	stopping chan struct{} // closed at stop: wakes a cost's sleep
}

// threadCPU reads this OS thread's CPU clock (CLOCK_THREAD_CPUTIME_ID), through a raw system
// call: the syscall package has no clock_gettime, and this module has no dependencies.
func threadCPU() time.Duration {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}

var burnSink uint64

// burn spends d of CPU time on the calling goroutine's thread. The goroutine is locked to its
// thread meanwhile, so that the thread CPU clock is the goroutine's.
func (c *costs) burn(d time.Duration) {
	if d == 0 {
		return
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	deadline := threadCPU() + d
	x := burnSink | 1
	for threadCPU() < deadline && !c.aborted.Load() {
		for i := 0; i < 512; i++ { // about a microsecond of dependent multiply-adds (an LCG)
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	burnSink = x
}

// pay spends the cost of every costly message the n new bytes complete; received counts the
// connection's bytes so far (its messages are numbered from it: 1, 2, 3 ...). The cost is paid
// before the bytes are echoed.
func (c *costs) pay(received *int64, n int) {
	if c.msgSize == 0 {
		return
	}
	before, total := *received, *received+int64(n)
	*received = total
	size, every := int64(c.msgSize), int64(c.every)
	// Messages before/size+1 .. total/size complete now; the multiples of every cost.
	costly := total/size/every - before/size/every
	for m := costly; m > 0 && !c.aborted.Load(); m-- {
		c.burn(c.work)
		if c.sleep > 0 {
			t := time.NewTimer(c.sleep)
			select {
			case <-t.C:
			case <-c.stopping:
				t.Stop()
			}
		}
	}
}

// --- the server -----------------------------------------------------------------------------

type server struct {
	ln    net.Listener
	costs *costs

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	stopping bool
	wg       sync.WaitGroup

	connections, bytesEchoed, acceptPauses atomic.Uint64
}

// track registers a connection so that a stop can close it, and its goroutine so that a stop
// can wait for it; false once stopping (under the same lock as the stop, so none slips past).
func (s *server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// serve is the whole life of one connection.
func (s *server) serve(c net.Conn) {
	defer s.wg.Done()
	defer c.Close()
	defer s.untrack(c)
	s.connections.Add(1)
	buf := make([]byte, bufSize)
	var echoed uint64
	var received int64
	defer func() { s.bytesEchoed.Add(echoed) }()
	for {
		n, err := c.Read(buf)
		if n > 0 {
			s.costs.pay(&received, n)
			w, werr := c.Write(buf[:n]) // blocks while the client does not read: back-pressure
			echoed += uint64(w)
			if werr != nil {
				return // reset, or closed by a stop
			}
		}
		if err == io.EOF {
			return // the client half-closed and has had every byte back: close
		}
		if err != nil {
			return
		}
	}
}

// acceptLoop runs until the listener is closed.
func (s *server) acceptLoop(stop <-chan struct{}) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-stop:
				return
			default:
			}
			// Out of descriptors (EMFILE, ENFILE) or memory: the pending clients stay in the
			// backlog; wait for connections to close instead of retrying at once, which would
			// spin. Any other error (rare: Go retries ECONNABORTED and EINTR itself) gets the
			// same short wait, so that no error can make this loop spin either.
			if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) &&
				!errors.Is(err, syscall.ENOBUFS) && !errors.Is(err, syscall.ENOMEM) {
				fmt.Fprintf(os.Stderr, "%s: accept: %v\n", prog, err)
			}
			s.acceptPauses.Add(1)
			t := time.NewTimer(acceptPause)
			select {
			case <-t.C:
			case <-stop:
				t.Stop()
				return
			}
			continue
		}
		if !s.track(c) {
			c.Close() // accepted just as the stop began
			return
		}
		go s.serve(c)
	}
}

func main() {
	cfg := parseArgs(os.Args[1:])
	if err := setFDLimit(cfg.maxFDs); err != nil {
		fmt.Fprintf(os.Stderr, "%s: --max-fds %d: %v\n", prog, cfg.maxFDs, err)
		os.Exit(1)
	}
	// Registered before listening, so that no signal can arrive unhandled once we are up.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	// An address that does not resolve is a bad command line (exit 2), as for echo-server;
	// a failure to listen on one that does is not (exit 1).
	if _, err := net.LookupHost(cfg.host); err != nil {
		usageError("--host: cannot resolve '%s'", cfg.host)
	}
	where := net.JoinHostPort(cfg.host, strconv.Itoa(cfg.port))
	ln, err := net.Listen("tcp", where)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: cannot listen on %s: %v\n", prog, where, err)
		os.Exit(1)
	}
	stop := make(chan struct{})
	every := cfg.costEvery
	if every == 0 {
		every = 1 // not given: every message costs
	}
	s := &server{
		ln:    ln,
		conns: make(map[net.Conn]struct{}),
		costs: &costs{msgSize: cfg.msgSize, every: every,
			work:  time.Duration(cfg.workUS) * time.Microsecond,
			sleep: time.Duration(cfg.sleepUS) * time.Microsecond, stopping: stop},
	}
	// ln.Addr() prints IPv6 as [::1]:PORT, as echo-server does.
	fmt.Printf("listening on %s model=%s pid=%d\n", ln.Addr(), modelName, os.Getpid())
	go s.acceptLoop(stop)

	<-sigs
	signal.Reset() // a second signal ends the process at once: Ctrl-C always works
	s.mu.Lock()
	s.stopping = true
	s.costs.aborted.Store(true)
	close(stop)
	ln.Close()
	for c := range s.conns {
		c.Close() // a Read or Write blocked on it returns at once
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(stopGrace):
		fmt.Fprintf(os.Stderr, "%s: connections still closing after %v; exiting\n", prog, stopGrace)
	}
	fmt.Fprintf(os.Stderr, "%s: stopped model=%s connections=%d bytes_echoed=%d shed=0 accept_pauses=%d\n",
		prog, modelName, s.connections.Load(), s.bytesEchoed.Load(), s.acceptPauses.Load())
	os.Exit(0)
}
