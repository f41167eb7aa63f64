/*
 * example.c - the smallest model there is: a template to copy, and the fixture with which the
 * tests prove that a new model needs one file and one line (tests/extra_model_test.sh).
 *
 * How it works
 *   One client at a time, like sequential.c: server_accept() waits for a connection (and turns
 *   negative when the server stops), server_serve_blocking() echoes it until the client is
 *   done. Everything else - options, listener, signals, summary - is the harness's.
 *
 * Try it
 *   echo-server --model example --port 7007
 *   nc 127.0.0.1 7007
 */
#include "server.h"

static int example_run(struct server *srv)
{
    int fd;
    while ((fd = server_accept(srv)) >= 0)
        server_serve_blocking(srv, fd);
    return 0;
}

const struct server_model model_example = {
    .name = "example",
    .summary = "a template: one client at a time, in ten lines",
    .kind = MODEL_ITERATIVE,
    .run = example_run,
};
