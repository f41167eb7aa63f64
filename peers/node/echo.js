#!/usr/bin/env node
/*
 * echo-node - the echo server (RFC 862) as a Node.js programmer writes it: the `net` module,
 * one event loop (libuv, the library of servers/libuv.c), callbacks per connection.
 *
 * How it works
 *   net.createServer() gives every accepted connection to onConnection(), which sets three
 *   callbacks on it: 'data' (a chunk arrived: write it back), 'end' (the client half-closed:
 *   end our side once everything queued is written) and 'close'. All of it runs on one thread:
 *   libuv's epoll loop wakes up, calls into JavaScript, and JavaScript returns to the loop.
 *
 *   Back-pressure is the program's job. socket.write() never blocks: it queues the chunk in
 *   the socket's user-space buffer and returns false once that buffer is over its high-water
 *   mark (16 KiB). A server that ignored the return value would buffer without bound for a
 *   client that does not read. So on false we pause() the socket (libuv stops reading it, the
 *   kernel buffers fill and the client's sends block), and resume() on 'drain', when the queue
 *   has been written. (socket.pipe(socket) would do the same; it is spelled out here.)
 *
 *   Descriptors: when accept() fails with EMFILE, libuv does not pause. It closes a descriptor
 *   it keeps in reserve, accepts the pending connections and closes them at once, reopens the
 *   reserve - clients are turned away, and JavaScript never hears of it. Node cannot pause
 *   accepting either. So this server keeps itself under the limit: its budget of connections
 *   is the descriptor limit minus what the process holds once listening, minus a reserve. A
 *   client beyond the budget is parked (paused, up to 4 of them) for at most 50 ms - the C
 *   models' pause - in case a connection closes meanwhile (counted as accept_pauses=), then
 *   turned away (shed=).
 *
 *   Stopping: SIGINT or SIGTERM closes the listener and destroys every connection, prints the
 *   summary and exits 0. SIGPIPE cannot kill the process: Node ignores it at start-up.
 *
 * What limits it
 *   One thread for everything: JavaScript callbacks, (de)allocating a Buffer per chunk (libuv
 *   reads up to 64 KiB at a time, not 16 KiB as the C models do), the garbage collector.
 *   Per-message costs (--msg-size, --work-us, --sleep-us) are not offered: Node has no clock
 *   of the thread's own CPU time, and synchronous work cannot be cut short by a signal (its
 *   handler runs on this same loop), so the stop contract could not be kept. Node has no
 *   setrlimit() either: --max-fds is applied with prlimit(1), from util-linux.
 *
 * Try it
 *   echo-node --model node --port 7007 &
 *   nc 127.0.0.1 7007                      # type; every line comes back
 *   ls /proc/$(pgrep -f echo.js)/task      # node's threads: the loop, V8's and libuv's helpers
 *
 * The command line and the protocol are echo-server's (docs/peers.md, docs/protocol.md).
 */
'use strict';

const net = require('net');
const fs = require('fs');
const { execFileSync } = require('child_process');

const PROG = 'echo-node';
const MODEL = 'node';
const SUMMARY = 'the net module on one libuv event loop, with write()/drain back-pressure';
const FD_CEILING = 1 << 20; // what echo-server raises RLIMIT_NOFILE to when privileged
const FD_RESERVE = 8;       // descriptors kept free under the limit (libuv's reserve, DNS, ...)
const PARK_MS = 50;         // how long a client beyond the budget may wait for a free slot
const PARK_MAX = FD_RESERVE / 2;

function usage() {
    process.stdout.write(`Usage: ${PROG} --model node [options]
       ${PROG} --list [--json]

An RFC 862 echo server written for Node.js: the net module, one event loop. Once listening it
prints
  listening on HOST:PORT model=node pid=PID
SIGINT or SIGTERM stops it: it closes the listener and every connection, prints a one-line
summary on stderr and exits 0.

Options:
  -m, --model NAME     must be "node"
  -H, --host ADDR      address to listen on, IPv4 or IPv6 (default 127.0.0.1)
  -p, --port N         TCP port, 0 = any free port (default 7007)
      --max-fds N      descriptor limit (RLIMIT_NOFILE, set with prlimit); default: as high
                       as allowed
  -l, --list           list the model; --json: as JSON, like echo-server --list --json
  -h, --help           show this help
Per-message costs (--msg-size, --work-us, --sleep-us, --cost-every) are not supported by this peer.
`);
}

function usageError(msg) {
    process.stderr.write(`${PROG}: ${msg}\n`);
    process.exit(2);
}

function parseUint(opt, s, min, max) {
    if (!/^[0-9]+$/.test(s) || Number(s) < min || Number(s) > max)
        usageError(`${opt}: '${s}' is not a number from ${min} to ${max}`);
    return Number(s);
}

function parseArgs(args) {
    const cfg = { host: '127.0.0.1', port: 7007, maxFds: 0 };
    let model = null, list = false, json = false;
    for (let i = 0; i < args.length; i++) {
        let opt = args[i], val = null;
        const eq = opt.indexOf('=');
        if (opt.startsWith('--') && eq > 0) {
            val = opt.slice(eq + 1);
            opt = opt.slice(0, eq);
        }
        const value = () => {
            if (val !== null)
                return val;
            if (i + 1 >= args.length)
                usageError(`option '${opt}' needs a value`);
            return args[++i];
        };
        const flag = () => {
            if (val !== null)
                usageError(`option '${opt}' takes no value`);
            return true;
        };
        switch (opt) {
        case '-m': case '--model': model = value(); break;
        case '-H': case '--host': cfg.host = value(); break;
        case '-p': case '--port': cfg.port = parseUint('--port', value(), 0, 65535); break;
        case '--max-fds': cfg.maxFds = parseUint('--max-fds', value(), 16, FD_CEILING); break;
        case '--msg-size': case '--work-us': case '--sleep-us': case '--cost-every':
            usageError(`${opt}: per-message costs are not supported by the node peer`);
            break;
        case '-l': case '--list': list = flag(); break;
        case '--json': json = flag(); break;
        case '-h': case '--help': usage(); process.exit(0); break;
        default:
            usageError(opt.startsWith('-') ? `unknown option '${opt}'`
                                           : `unexpected argument '${opt}'`);
        }
    }
    if (json && !list)
        usageError('--json goes with --list');
    if (list) {
        printList(json);
        process.exit(0);
    }
    if (model === null)
        usageError('--model is required; --list shows the models');
    if (model !== MODEL)
        usageError(`unknown model '${model}'; this server is the '${MODEL}' peer`);
    if (net.isIP(cfg.host) === 0 && cfg.host !== 'localhost')
        usageError(`--host: '${cfg.host}' is not an IPv4 or IPv6 address`);
    return cfg;
}

/* The model, the way `echo-server --list [--json]` writes its models. */
function printList(json) {
    if (!json) {
        const row = (...c) => c.map((s, i) => i < 4 ? s.padEnd([13, 11, 9, 9][i]) : s).join(' ');
        process.stdout.write(row('MODEL', 'KIND', 'THREADS', 'MAX_CONNS', 'SUMMARY') + '\n' +
                             row(MODEL, 'event-loop', '-', '-', SUMMARY) + '\n');
        return;
    }
    const doc = {
        version: 1,
        models: [{
            name: MODEL,
            summary: SUMMARY,
            kind: 'event-loop',
            threads_meaning: null,
            serves_one_connection_per_thread: false,
            default_threads: null,
            max_connections: 0,
            kernel_limits: [],
            listener_per_thread: false,
            supports_costs: false,
        }],
    };
    /* JSON.stringify(doc, null, 2) writes "key": value, as common/json.c does. */
    process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
}

/* The soft RLIMIT_NOFILE, from /proc (Node itself raises it to the hard limit at start-up). */
function fdLimit() {
    const m = /^Max open files\s+(\d+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : Infinity;
}

/* --max-fds N, or the same raise echo-server does when privileged: with prlimit(1), on our own
 * process, since Node has no setrlimit(). */
function setFdLimit(n) {
    let want = n;
    if (!n) {
        if (process.getuid() !== 0)
            return;
        want = FD_CEILING;
        try {
            want = Math.min(want, Number(fs.readFileSync('/proc/sys/fs/nr_open', 'utf8')));
        } catch (e) { /* keep the ceiling */ }
        if (fdLimit() >= want)
            return;
    }
    try {
        execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${want}:${want}`],
                     { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
        if (n) {
            process.stderr.write(`${PROG}: --max-fds ${n}: prlimit failed: ` +
                                 `${(e.stderr || e.message).toString().trim()}\n`);
            process.exit(1);
        }
    }
}

function main() {
    const cfg = parseArgs(process.argv.slice(2));
    setFdLimit(cfg.maxFds);

    const conns = new Set();
    const parked = new Set(); /* clients waiting for a slot: {sock, timer} */
    const stats = { connections: 0, bytesEchoed: 0, shed: 0, acceptPauses: 0 };
    let stopping = false;
    let budget = Infinity;    /* connections we can hold: set once listening */

    function onConnection(sock) {
        if (stopping) {
            sock.destroy();
            return;
        }
        if (conns.size < budget) {
            serve(sock);
            return;
        }
        /* Out of descriptors (see the header): wait a little for one, or turn the client away. */
        if (parked.size >= PARK_MAX) {
            stats.shed++;
            sock.destroy();
            return;
        }
        stats.acceptPauses++;
        sock.pause();
        sock.on('error', () => {});
        const p = { sock, timer: setTimeout(() => {
            parked.delete(p);
            stats.shed++;
            sock.destroy();
        }, PARK_MS) };
        sock.on('close', () => { clearTimeout(p.timer); parked.delete(p); });
        parked.add(p);
    }

    /* A connection closed: a parked client, if any, takes its place. */
    function unpark() {
        for (const p of parked) {
            if (conns.size >= budget || stopping)
                return;
            clearTimeout(p.timer);
            parked.delete(p);
            serve(p.sock);
        }
    }

    function serve(sock) {
        stats.connections++;
        conns.add(sock);
        sock.on('data', (chunk) => {
            if (!sock.write(chunk))
                sock.pause(); /* the client is not taking its echo: read no more from it */
        });
        sock.on('drain', () => sock.resume());
        /* Half-close: end() sends our FIN once every queued byte is written; the socket closes
         * when both directions are done. */
        sock.on('end', () => sock.end());
        /* A reset or any error ends this connection only ('close' follows). */
        sock.on('error', () => {});
        sock.on('close', () => {
            conns.delete(sock);
            stats.bytesEchoed += sock.bytesWritten;
            unpark();
        });
        sock.resume(); /* a parked client was paused */
    }

    /* allowHalfOpen: 'end' does not close our side, so we can finish the echo first. */
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, onConnection);
    server.on('error', (e) => {
        if (!server.listening) {
            process.stderr.write(`${PROG}: cannot listen on ${cfg.host}:${cfg.port}: ${e.message}\n`);
            process.exit(1);
        }
        process.stderr.write(`${PROG}: ${e.message}\n`); /* accept errors: keep serving */
    });

    function stop() {
        if (stopping) {
            process.exit(1); /* a second signal: exit at once */
        }
        stopping = true;
        server.close();
        for (const p of parked)
            p.sock.destroy();
        for (const sock of conns) {
            stats.bytesEchoed += sock.bytesWritten;
            conns.delete(sock);
            sock.destroy();
        }
        process.stderr.write(`${PROG}: stopped model=${MODEL} connections=${stats.connections} ` +
                             `bytes_echoed=${stats.bytesEchoed} shed=${stats.shed} ` +
                             `accept_pauses=${stats.acceptPauses}\n`,
                             () => process.exit(0));
    }
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);

    server.listen({ host: cfg.host, port: cfg.port, backlog: 4096 }, () => {
        /* Every connection holds one descriptor: stay under the limit (see the header). */
        const held = fs.readdirSync('/proc/self/fd').length;
        budget = Math.max(fdLimit() - held - FD_RESERVE, 1);
        const a = server.address();
        const host = a.family === 'IPv6' || a.family === 6 ? `[${a.address}]` : a.address;
        process.stdout.write(`listening on ${host}:${a.port} model=${MODEL} pid=${process.pid}\n`);
    });
}

main();
