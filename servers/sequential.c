/*
 * sequential.c - the iterative server: one client at a time.
 *
 * How it works
 *   The classic first server of every socket course:
 *
 *       for (;;) {
 *           fd = accept(listener);          // wait for the next client
 *           while ((n = recv(fd, buf)) > 0) // echo until it half-closes
 *               send(fd, buf, n);
 *           close(fd);
 *       }
 *
 *   One thread, blocking calls, no shared state: the simplest correct server there is.
 *
 * What limits it
 *   While one client is connected, nobody else is served. Later clients complete the TCP
 *   handshake (the kernel does that) and wait in the listen backlog - their connect() succeeds,
 *   their bytes are buffered, but no echo comes back until every earlier client has closed. Once
 *   the backlog (--backlog, capped by net.core.somaxconn) is full, new SYNs are dropped and
 *   clients retry for seconds. Throughput is one connection's round-trip rate; an idle client
 *   stalls everyone. It is the baseline that shows what concurrency buys.
 *
 * Try it
 *   echo-server --model sequential --port 7007
 *   nc 127.0.0.1 7007          # type lines: they come back
 *   nc 127.0.0.1 7007          # in a second terminal: silent until the first nc exits
 */
#include "server.h"

static int sequential_run(struct server *srv)
{
    int fd;
    /* server_accept() turns negative once a stop is requested. */
    while ((fd = server_accept(srv)) >= 0)
        server_serve_blocking(srv, fd); /* the connection's whole life, on this thread */
    return 0;
}

const struct server_model model_sequential = {
    .name = "sequential",
    .summary = "one client at a time: accept, echo until EOF, then the next",
    .kind = MODEL_ITERATIVE,
    .run = sequential_run,
};
