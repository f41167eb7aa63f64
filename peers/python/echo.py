#!/usr/bin/env python3
"""echo-python - the echo server (RFC 862) as a Python programmer writes it: asyncio streams.

How it works
    accept_loop() starts one coroutine, serve(), per connection, all of them on one
    event loop (epoll, through the selectors module) in one thread. serve() reads up to 16 KiB
    from the connection's StreamReader, writes it to the StreamWriter and awaits drain(), until
    the client half-closes (read() returns b"") or the connection fails. An `await` is where
    the coroutine may give the loop back - but read() and drain() return at once while data is
    buffered and the socket takes the echo, so after a full 16 KiB read serve() yields
    explicitly: a client that streams megabytes holds the others up 16 KiB at a time.

    Back-pressure: writer.write() never blocks - it queues in the transport - and drain() is
    what waits until that queue is back under its high-water mark (64 KiB). Because serve()
    awaits drain() before it reads again, and the StreamReader stops reading the socket once it
    holds twice its limit (here 2 x 16 KiB), a client that does not read its echo costs this
    server a bounded buffer and then waits on the kernel's socket buffers.

    Descriptors: the server accepts with its own loop, accept_loop() (loop.sock_accept, then
    asyncio.open_connection(sock=...) for the streams), rather than asyncio.start_server():
    when accept() fails with EMFILE, asyncio's own accept loop (Python 3.11) schedules a retry
    for each of the up to 100 accepts it tries per wake-up, and those retries multiply - measured
    here: 15,000 failing accept() calls in 2 s and half a CPU, with 64 descriptors and 100
    clients. This one waits 50 ms, the pause of the C models, counts it in accept_pauses=, and
    tries again.

    Per-message costs: the CPU work (--work-us) is computation on the one thread and stalls
    every connection, as in any single event loop. The wait (--sleep-us) is what an asyncio
    programmer writes, `await asyncio.sleep()`: it parks only its connection's coroutine and
    the loop serves the others meanwhile (as Go's time.Sleep parks a goroutine and the C
    coroutine model's co_sleep a coroutine), so a thousand connections can wait at once.

    Stopping: SIGINT or SIGTERM closes the listener, aborts every connection and cancels every
    connection's coroutine (which ends a wait at once), prints the summary and exits 0. The
    handler is a plain signal.signal() one (not loop.add_signal_handler()), so that it also runs
    in the middle of the CPU work, which it cuts short. SIGPIPE cannot kill the process: Python
    ignores it at start-up.

What limits it
    One thread runs everything, and every step is interpreted Python: a coroutine switch, a
    bytes object per read, the StreamReader's own buffer (an extra copy). The per-message
    CPU work (--work-us) is pure-Python arithmetic measured on the thread CPU clock
    (time.thread_time_ns) and stalls every other connection, as in any single event loop.

Try it
    echo-python --model python --port 7007 &
    nc 127.0.0.1 7007                       # type; every line comes back
    ls /proc/$(pgrep -f echo.py)/task       # one thread, however many clients

The command line and the protocol are echo-server's (docs/peers.md, docs/protocol.md).
"""
import asyncio
import errno
import json
import os
import re
import resource
import signal
import socket
import sys
import time

PROG = "echo-python"
MODEL = "python"
SUMMARY = "asyncio streams on one event loop, with drain() back-pressure"
READ_SIZE = 16 * 1024          # ECHO_BUF_SIZE, as for every C model
ACCEPT_PAUSE_S = 0.05          # the wait after EMFILE, as for every C model
MAX_COST_US = 1_000_000
MAX_COST_EVERY = 1_000_000
FD_CEILING = 1 << 20           # what echo-server raises RLIMIT_NOFILE to when privileged

USAGE = f"""Usage: {PROG} --model python [options]
       {PROG} --list [--json]

An RFC 862 echo server written with Python's asyncio streams. Once listening it prints
  listening on HOST:PORT model=python pid=PID
SIGINT or SIGTERM stops it: it closes the listener and every connection, prints a one-line
summary on stderr and exits 0.

Options:
  -m, --model NAME     must be "python"
  -H, --host ADDR      address to listen on, IPv4 or IPv6 (default 127.0.0.1)
  -p, --port N         TCP port, 0 = any free port (default 7007)
      --max-fds N      descriptor limit (RLIMIT_NOFILE); default: as high as allowed
      --msg-size S     the stream is made of S-byte messages (e.g. 128 or 4k)
      --work-us N      each complete message costs N us of CPU (thread CPU clock)
      --sleep-us N     each complete message then waits N us; both need --msg-size
      --cost-every N   only every Nth message of a connection costs (1 to 1,000,000;
                       default 1): message k costs when k % N == 0, counted from 1 per
                       connection; needs --msg-size and --work-us or --sleep-us
  -l, --list           list the model; --json: as JSON, like echo-server --list --json
  -h, --help           show this help
"""


def usage_error(msg):
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(2)


def parse_uint(opt, text, lo, hi, sizes=False):
    mult = 1
    if sizes and len(text) > 1 and text[-1] in "kKmM":
        mult, text = (1024 if text[-1] in "kK" else 1024 * 1024), text[:-1]
    # ASCII digits only: str.isdigit() is also true of '²', which int() then refuses.
    if not re.fullmatch(r"[0-9]+", text) or not lo <= int(text) * mult <= hi:
        usage_error(f"{opt}: '{text}' is not a number from {lo} to {hi}")
    return int(text) * mult


def parse_args(args):
    cfg = {"host": "127.0.0.1", "port": 7007, "max_fds": 0, "msg_size": 0, "work_us": 0,
           "sleep_us": 0, "cost_every": 0}
    model, listing, as_json = None, False, False
    i = 0
    while i < len(args):
        opt, val = args[i], None
        if opt.startswith("--") and "=" in opt:
            opt, val = opt.split("=", 1)

        def value():
            nonlocal i
            if val is not None:
                return val
            if i + 1 >= len(args):
                usage_error(f"option '{opt}' needs a value")
            i += 1
            return args[i]

        if opt in ("-m", "--model"):
            model = value()
        elif opt in ("-H", "--host"):
            cfg["host"] = value()
        elif opt in ("-p", "--port"):
            cfg["port"] = parse_uint("--port", value(), 0, 65535)
        elif opt == "--max-fds":
            cfg["max_fds"] = parse_uint("--max-fds", value(), 16, FD_CEILING)
        elif opt == "--msg-size":
            cfg["msg_size"] = parse_uint("--msg-size", value(), 1, 1 << 26, sizes=True)
        elif opt == "--work-us":
            cfg["work_us"] = parse_uint("--work-us", value(), 0, MAX_COST_US)
        elif opt == "--sleep-us":
            cfg["sleep_us"] = parse_uint("--sleep-us", value(), 0, MAX_COST_US)
        elif opt == "--cost-every":
            cfg["cost_every"] = parse_uint("--cost-every", value(), 1, MAX_COST_EVERY)
        elif opt in ("-l", "--list", "--json", "-h", "--help"):
            if val is not None:
                usage_error(f"option '{opt}' takes no value")
            if opt in ("-h", "--help"):
                sys.stdout.write(USAGE)
                sys.exit(0)
            listing, as_json = listing or opt != "--json", as_json or opt == "--json"
        elif opt.startswith("-"):
            usage_error(f"unknown option '{opt}'")
        else:
            usage_error(f"unexpected argument '{opt}'")
        i += 1
    if as_json and not listing:
        usage_error("--json goes with --list")
    if listing:
        print_list(as_json)
        sys.exit(0)
    if model is None:
        usage_error("--model is required; --list shows the models")
    if model != MODEL:
        usage_error(f"unknown model '{model}'; this server is the '{MODEL}' peer")
    if (cfg["work_us"] or cfg["sleep_us"]) and not cfg["msg_size"]:
        usage_error("--work-us and --sleep-us need --msg-size")
    if cfg["cost_every"] and not (cfg["msg_size"] and (cfg["work_us"] or cfg["sleep_us"])):
        usage_error("--cost-every needs --msg-size and a cost (--work-us or --sleep-us)")
    return cfg


def print_list(as_json):
    """The model, the way `echo-server --list [--json]` writes its models."""
    if not as_json:
        print(f"{'MODEL':<13} {'KIND':<11} {'THREADS':<9} {'MAX_CONNS':<9} SUMMARY")
        print(f"{MODEL:<13} {'event-loop':<11} {'-':<9} {'-':<9} {SUMMARY}")
        return
    doc = {"version": 1, "models": [{
        "name": MODEL, "summary": SUMMARY, "kind": "event-loop", "threads_meaning": None,
        "serves_one_connection_per_thread": False, "default_threads": None,
        "max_connections": 0, "kernel_limits": [], "listener_per_thread": False,
        "supports_costs": True}]}
    print(json.dumps(doc, indent=2))  # "key": value, as common/json.c writes it


def set_fd_limit(n):
    """--max-fds N, or the raise echo-server does for every model: to 1,048,576 (or
    fs.nr_open) when privileged, else the soft limit up to the hard one."""
    if n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        return
    want = FD_CEILING
    try:
        with open("/proc/sys/fs/nr_open") as f:
            want = min(want, int(f.read()))
    except (OSError, ValueError):
        pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (OSError, ValueError):
            pass
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Costs:
    """The per-message cost of docs/protocol.md: paid when the byte that completes a costly
    message arrives, before it is echoed - the CPU work on this (the only) thread, the wait by
    the connection's coroutine alone. With --cost-every N, message k of a connection
    (numbered from 1) costs when k % N == 0."""

    def __init__(self, msg_size, work_us, sleep_us, cost_every=1):
        self.msg_size, self.work_ns, self.sleep_s = msg_size, work_us * 1000, sleep_us / 1e6
        self.every = cost_every or 1
        self.aborted = False  # set by the stop signal's handler, even mid-cost

    async def pay(self, received, n):
        """Spends the cost of every costly message that n new bytes complete, after `received`
        bytes of the connection; returns the new count of bytes received."""
        if not self.msg_size:
            return 0
        total = received + n
        # Messages received // S + 1 .. total // S complete now; the multiples of N cost.
        costly = total // self.msg_size // self.every - received // self.msg_size // self.every
        for _ in range(costly):
            if self.aborted:
                break
            self.burn()
            if self.sleep_s and not self.aborted:
                await asyncio.sleep(self.sleep_s)  # this connection waits; the loop serves on
        return total

    def burn(self):
        if not self.work_ns:
            return
        deadline = time.thread_time_ns() + self.work_ns
        x = 1
        while time.thread_time_ns() < deadline and not self.aborted:
            for _ in range(32):  # a few microseconds of dependent multiply-adds (an LCG)
                x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF


class EchoServer:
    def __init__(self, cfg):
        self.cfg = cfg
        self.costs = Costs(cfg["msg_size"], cfg["work_us"], cfg["sleep_us"], cfg["cost_every"])
        self.connections = self.bytes_echoed = self.accept_pauses = 0
        self.writers = {}  # every open connection's StreamWriter -> bytes queued to it
        self.stopping = False

    async def serve(self, reader, writer):
        """The whole life of one connection."""
        if self.stopping:
            writer.transport.abort()
            return
        self.connections += 1
        self.writers[writer] = 0
        received = 0  # bytes of this connection so far: its messages are numbered from them
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if not data or self.stopping:
                    break  # the client half-closed, and every byte went back; or the stop
                if self.costs.msg_size:  # no coroutine per read without costs
                    received = await self.costs.pay(received, len(data))
                writer.write(data)
                self.writers[writer] += len(data)
                await writer.drain()  # waits while the client does not take its echo
                if len(data) == READ_SIZE:
                    # A full read: more is probably buffered, and neither read() nor drain()
                    # gives the loop back while it is. Yield, so that a client streaming
                    # megabytes holds the others up for 16 KiB at a time, not for all of it.
                    await asyncio.sleep(0)
        except (ConnectionError, OSError):
            pass  # a reset ends this connection only
        finally:
            queued = self.writers.pop(writer, None)
            if queued is not None:
                self.bytes_echoed += queued - writer.transport.get_write_buffer_size()
            writer.close()  # flushes what is still queued, then closes

    async def accept_loop(self, sock):
        while not self.stopping:
            try:
                conn, _ = await self.loop.sock_accept(sock)
            except OSError as e:
                if self.stopping:
                    return
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.accept_pauses += 1  # out of descriptors: let some close, keep serving
                    await asyncio.sleep(ACCEPT_PAUSE_S)
                continue  # ECONNABORTED and the like belong to one client
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # limit: the StreamReader stops reading the socket at twice this much buffered.
            reader, writer = await asyncio.open_connection(sock=conn, limit=READ_SIZE)
            self.tasks.add(t := asyncio.ensure_future(self.serve(reader, writer)))
            t.add_done_callback(self.tasks.discard)

    def begin_stop(self):
        self.acceptor.cancel()
        self.listener.close()
        for writer, queued in list(self.writers.items()):
            self.bytes_echoed += queued - writer.transport.get_write_buffer_size()
            del self.writers[writer]
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()  # ends a --sleep-us wait at once
        if not self.stopped.done():
            self.stopped.set_result(None)

    def on_signal(self, signum, frame):
        if self.stopping:
            os._exit(1)  # a second signal: exit at once
        self.stopping = True
        self.costs.aborted = True
        self.loop.call_soon_threadsafe(self.begin_stop)

    async def run(self):
        self.loop = asyncio.get_running_loop()
        self.stopped = self.loop.create_future()
        self.tasks = set()
        host, port = self.cfg["host"], self.cfg["port"]
        try:
            family, _, _, _, addr = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(4096)
        except OSError as e:
            print(f"{PROG}: cannot listen on {host}:{port}: {e.strerror or e}", file=sys.stderr)
            sys.exit(1)
        sock.setblocking(False)
        self.listener = sock
        self.acceptor = asyncio.ensure_future(self.accept_loop(sock))
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.on_signal)
        name = sock.getsockname()
        where = f"[{name[0]}]:{name[1]}" if family == socket.AF_INET6 else f"{name[0]}:{name[1]}"
        print(f"listening on {where} model={MODEL} pid={os.getpid()}", flush=True)
        await self.stopped


def main():
    cfg = parse_args(sys.argv[1:])
    try:
        set_fd_limit(cfg["max_fds"])
    except (OSError, ValueError) as e:
        print(f"{PROG}: --max-fds {cfg['max_fds']}: {e}", file=sys.stderr)
        sys.exit(1)
    if not cfg["host"] or cfg["host"].startswith("-"):
        usage_error(f"--host: cannot resolve '{cfg['host']}'")
    srv = EchoServer(cfg)
    try:
        socket.getaddrinfo(cfg["host"], cfg["port"], type=socket.SOCK_STREAM)
    except OSError:
        usage_error(f"--host: cannot resolve '{cfg['host']}'")
    asyncio.run(srv.run())
    print(f"{PROG}: stopped model={MODEL} connections={srv.connections} "
          f"bytes_echoed={srv.bytes_echoed} shed=0 accept_pauses={srv.accept_pauses}",
          file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
